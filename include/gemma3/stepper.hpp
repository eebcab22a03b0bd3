// Stepper: the decoder a stage at a time, for layer-by-layer work and for stepping through in a
// debugger. It owns what a forward pass threads through its layers — the position, the KV cache,
// the tokens' image groups and the observer — so the caller writes only the stages:
//
//   Stepper<float> step(model, /*context=*/64);
//   step.embed(ids);                                        // x = E[ids] · sqrt(hidden) (+ images)
//   for (int64_t i = 0; i < step.num_layers(); ++i)
//     step.layer(i);                                        // x += attention(...); x += mlp(...)
//   const Mat<float>& normed = step.final_norm();           // RMSNorm of x
//   Mat<float> logits = step.logits();                      // [n, vocab]
//   step.embed(next_ids);                                   // the next chunk, after the first
//
// The result is bit-identical to forward() on the same tokens: the same layer code, in the same
// order (a stepper runs each chunk it is given whole; forward() splits a prompt longer than
// TextModel::prefill_chunk(), so step such a prompt in chunks of that size to match it). Each stage
// checks that it comes in order and says which stage was expected otherwise.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "gemma3/build_mode.hpp"
#include "gemma3/error.hpp"
#include "gemma3/multimodal.hpp"
#include "gemma3/observer.hpp"
#include "gemma3/text/kv_cache.hpp"
#include "gemma3/text/mask.hpp"
#include "gemma3/text/model.hpp"

namespace gemma3::inline GEMMA3_MODE {

template <typename T = float>
class Stepper {
 public:
  // A stepper over a text model, with a KV cache of `context` positions. `obs` (may be null) sees
  // the sites it asked for, as in forward().
  Stepper(const TextModel<T>& model, int64_t context, Observer<T>* obs = nullptr)
      : text_(&model), cache_(model.config(), context), obs_(obs) {}
  // Over the whole model: embed() then takes images.
  Stepper(const Gemma3<T>& model, int64_t context, Observer<T>* obs = nullptr)
      : text_(&model.text()), model_(&model), cache_(model.config().text, context), obs_(obs) {}

  const TextModel<T>& model() const { return *text_; }
  int64_t num_layers() const { return int64_t(text_->layers().size()); }
  // The position of the chunk's first token (the cache's length before it).
  int64_t position() const { return pos0_; }
  // The layer that runs next (num_layers() once all have).
  int64_t next_layer() const { return next_layer_; }
  const KVCache<T>& cache() const { return cache_; }
  // The residual stream [n, hidden] of the current chunk, after the last stage that ran. Writable:
  // editing it between stages edits the pass.
  Mat<T>& residual() { return x_; }
  const Mat<T>& residual() const { return x_; }
  void set_observer(Observer<T>* obs) { obs_ = obs; }

  // Starts the next chunk: the embeddings of `ids` (and the soft tokens of their images) at the
  // positions after what the cache holds. The previous chunk must have run through every layer.
  Stepper& embed(std::span<const int32_t> ids, const ImageEmbeddings<T>& images = {});

  // Runs layer i (the next one) on the residual stream. After the last layer the chunk's keys and
  // values count as cached.
  Stepper& layer(int64_t i);
  // Runs the remaining layers up to (not including) `end`, all of them by default.
  Stepper& layers(int64_t end = -1) {
    for (const int64_t stop = end < 0 ? num_layers() : end; next_layer_ < stop;) layer(next_layer_);
    return *this;
  }

  // The final RMSNorm of the residual stream [n, hidden], once every layer has run.
  const Mat<T>& final_norm();

  // Logits of the chunk's rows asked for [rows, vocab].
  Mat<T> logits(const LogitRows& rows = LogitRows::all());

  // Empties the cache: the next chunk starts at position 0.
  void reset() {
    cache_.clear();
    x_.resize(0, 0);
    normed_.resize(0, 0);
    pos0_ = 0;
    next_layer_ = 0;
  }

 private:
  bool in_chunk() const { return x_.rows() > 0 && next_layer_ < num_layers(); }
  bool chunk_done() const { return x_.rows() > 0 && next_layer_ == num_layers(); }

  const TextModel<T>* text_;
  const Gemma3<T>* model_ = nullptr;
  KVCache<T> cache_;
  Observer<T>* obs_;
  Mat<T> x_, normed_;
  std::vector<int32_t> groups_;
  int64_t pos0_ = 0, next_layer_ = 0;
};

// The stages, out of the class (not inline: see text/model.hpp).

template <typename T>
Stepper<T>& Stepper<T>::embed(std::span<const int32_t> ids, const ImageEmbeddings<T>& images) {
  if (in_chunk())
    throw InvalidArgument("stepper", "embed: the chunk at position " + std::to_string(pos0_) +
                                         " has run " + std::to_string(next_layer_) + " of " +
                                         std::to_string(num_layers()) +
                                         " layers; run the rest first");
  if (!images.empty() && !model_)
    throw InvalidArgument(
        "images", "this stepper runs a text model; construct it from a Gemma3 model for images");
  x_ = model_ ? model_->embed(ids, images) : text_->embed(ids);
  cache_.check_room(x_.rows());
  groups_ = image_groups(ids, model_ ? model_->image_token_id() : -1);
  pos0_ = cache_.length();
  next_layer_ = 0;
  normed_.resize(0, 0);
  if (obs_) obs_->on_forward(pos0_, x_.rows());
  announce(obs_, Site::inputs_embeds(), MatRef<T>(x_), {.pos0 = pos0_});
  return *this;
}

template <typename T>
Stepper<T>& Stepper<T>::layer(int64_t i) {
  if (!in_chunk()) throw InvalidArgument("stepper", "layer: embed a chunk first");
  if (i != next_layer_)
    throw InvalidArgument("layer", "layer " + std::to_string(i) + " cannot run now: layer " +
                                       std::to_string(next_layer_) + " is next");
  text_->layers()[std::size_t(i)].forward(x_, cache_.layer(i), pos0_, groups_, obs_);
  if (++next_layer_ == num_layers()) cache_.advance(x_.rows());
  return *this;
}

template <typename T>
const Mat<T>& Stepper<T>::final_norm() {
  if (!chunk_done())
    throw InvalidArgument("stepper", "final_norm: run every layer first (next is " +
                                         std::to_string(next_layer_) + ")");
  if (normed_.size() == 0) {
    normed_ = text_->final_norm(x_);
    announce(obs_, Site::final_norm(), MatRef<T>(normed_), {.pos0 = pos0_});
  }
  return normed_;
}

template <typename T>
Mat<T> Stepper<T>::logits(const LogitRows& rows) {
  const Mat<T>& normed = final_norm();
  Mat<T> out = rows.is_all()
                   ? text_->lm_head(normed)
                   : text_->lm_head(Mat<T>(normed(rows.resolve(normed.rows()), Eigen::all)));
  announce(obs_, Site::logits(), MatRef<T>(out), {.pos0 = pos0_});
  return out;
}

#if GEMMA3_EXTERN_TEMPLATES
extern template class Stepper<float>;
extern template class Stepper<double>;
#endif

}  // namespace gemma3::inline GEMMA3_MODE
