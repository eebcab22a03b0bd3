// The Gemma 3 text decoder: embedding, the stack of decoder layers, the final norm and the LM head.
//
// Two ways to run it:
//   * whole: `forward(ids)` returns the logits of every position (a fresh cache sized to the input);
//     `forward(ids, cache)` prefills or decodes the next tokens into a KV cache;
//   * one step at a time, on the caller's buffers, for stepping through in a debugger:
//       Mat<float> x = model.embed(ids);
//       for (auto& layer : model.layers()) layer.forward(x, cache.layer(layer.index()), pos0, groups, obs);
//       cache.advance(ids.size());
//       Mat<float> logits = model.lm_head(model.final_norm(x));
#pragma once

#include <cmath>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "gemma3/checkpoint.hpp"
#include "gemma3/config.hpp"
#include "gemma3/error.hpp"
#include "gemma3/kernels/ops.hpp"
#include "gemma3/observer.hpp"
#include "gemma3/text/decoder_layer.hpp"
#include "gemma3/text/kv_cache.hpp"
#include "gemma3/text/mask.hpp"
#include "gemma3/text/rope.hpp"
#include "gemma3/weights.hpp"

namespace gemma3 {

template <typename T = float>
class TextModel {
 public:
  // The weights are views: the Checkpoint they come from must outlive the model.
  // `backend` picks the kernels of the float path (double always runs the reference).
  TextModel(const TextConfig& cfg, const TextWeights& w, Backend backend = Backend::Fast)
      : cfg_(cfg), w_(w), backend_(std::is_same_v<T, float> ? backend : Backend::Reference) {
    validate(cfg);
    const Rope<T> local(cfg.rope_local, cfg.head_dim), global(cfg.rope_global, cfg.head_dim);
    for (int64_t i = 0; i < cfg.num_hidden_layers; ++i)
      layers_.emplace_back(cfg, i, w.layers.at(i), layer_kind(cfg, i) == LayerKind::Local ? local : global,
                           backend_);
    norm_ = w.norm.vec<T>();
    // sqrt(hidden) is an f32 buffer in the reference, cast to the compute dtype (spec §2.1).
    embed_scale_ = T(std::sqrt(double(cfg.hidden_size)));
  }
  explicit TextModel(const Checkpoint& ck, Backend backend = Backend::Fast)
      : TextModel(ck.config().text, ck.weights().text, backend) {}

  const TextConfig& config() const { return cfg_; }
  const TextWeights& weights() const { return w_; }
  const std::vector<DecoderLayer<T>>& layers() const { return layers_; }
  T embed_scale() const { return embed_scale_; }
  Backend backend() const { return backend_; }

  // The scaled embeddings of `ids` [n, hidden]: E[id] · sqrt(hidden).
  Mat<T> embed(std::span<const int32_t> ids) const {
    check_ids(ids);
    Mat<T> x(static_cast<Eigen::Index>(ids.size()), cfg_.hidden_size);
    for (std::size_t t = 0; t < ids.size(); ++t)
      x.row(t) = w_.embed_tokens.rows_as<T>(ids[t], 1) * embed_scale_;
    return x;
  }

  // Runs every layer on x [n, hidden] (n new tokens at positions cache.length() ...) in place and
  // advances the cache.
  template <typename Obs = NullObserver>
  void forward_layers(MatRef<T> x, KVCache<T>& cache, std::span<const int32_t> groups, Obs& obs) const {
    const int64_t n = x.rows();
    if (n == 0) throw InvalidArgument("inputs", "empty sequence");
    if (static_cast<int64_t>(groups.size()) != n)
      throw InvalidArgument("groups", "one image group per token expected");
    cache.check_room(n);
    const int64_t pos0 = cache.length();
    notify(obs, [] { return std::string("model.inputs_embeds"); }, x);
    for (const auto& layer : layers_) layer.forward(x, cache.layer(layer.index()), pos0, groups, obs);
    cache.advance(n);
  }

  Mat<T> final_norm(const ConstMatRef<T>& x) const { return ref::rms_norm<T>(x, norm_, cfg_.rms_norm_eps); }

  // Logits [n, vocab] = normed · lm_headᵀ (tied: the embedding), soft-capped if the config says so.
  Mat<T> lm_head(const ConstMatRef<T>& normed) const {
    Mat<T> logits = linear<T>(normed, w_.lm_head, backend_);
    if (cfg_.final_logit_softcapping) ref::soft_cap<T>(logits, *cfg_.final_logit_softcapping);
    return logits;
  }

  // Embeds `ids`, runs them through the layers into `cache`, returns the logits of every new position
  // (or of the last one only when `all_logits` is false: what generation needs).
  template <typename Obs = NullObserver>
  Mat<T> forward(std::span<const int32_t> ids, KVCache<T>& cache, Obs& obs, bool all_logits = true) const {
    Mat<T> x = embed(ids);
    return forward_embeddings(x, std::vector<int32_t>(ids.size(), -1), cache, obs, all_logits);
  }
  Mat<T> forward(std::span<const int32_t> ids, KVCache<T>& cache, bool all_logits = true) const {
    NullObserver none;
    return forward(ids, cache, none, all_logits);
  }

  // The whole sequence at once, from position 0: logits [n, vocab].
  template <typename Obs = NullObserver>
  Mat<T> forward(std::span<const int32_t> ids, Obs& obs) const {
    if (ids.empty()) throw InvalidArgument("ids", "empty sequence");
    check_length(static_cast<int64_t>(ids.size()));
    KVCache<T> cache(cfg_, static_cast<int64_t>(ids.size()));
    return forward(ids, cache, obs);
  }
  Mat<T> forward(std::span<const int32_t> ids) const {
    NullObserver none;
    return forward(ids, none);
  }

  // From decoder inputs (text embeddings with image soft tokens merged in): layers, norm, head.
  template <typename Obs = NullObserver>
  Mat<T> forward_embeddings(MatRef<T> x, std::span<const int32_t> groups, KVCache<T>& cache, Obs& obs,
                            bool all_logits = true) const {
    forward_layers(x, cache, groups, obs);
    Mat<T> normed = final_norm(all_logits ? ConstMatRef<T>(x) : ConstMatRef<T>(x.bottomRows(1)));
    notify(obs, [] { return std::string("model.norm"); }, normed);
    Mat<T> logits = lm_head(normed);
    notify(obs, [] { return std::string("lm_head"); }, logits);
    return logits;
  }

  void check_length(int64_t n) const {
    if (n > cfg_.max_position_embeddings)
      throw InvalidArgument("ids", "sequence of " + std::to_string(n) +
                                       " tokens exceeds max_position_embeddings " +
                                       std::to_string(cfg_.max_position_embeddings));
  }

 private:
  void check_ids(std::span<const int32_t> ids) const {
    if (ids.empty()) throw InvalidArgument("ids", "empty sequence");
    for (std::size_t t = 0; t < ids.size(); ++t)
      if (ids[t] < 0 || ids[t] >= cfg_.vocab_size)
        throw InvalidArgument("ids", "token id " + std::to_string(ids[t]) + " at position " +
                                         std::to_string(t) + " is outside the vocabulary [0, " +
                                         std::to_string(cfg_.vocab_size) + ")");
  }

  TextConfig cfg_;
  TextWeights w_;
  Backend backend_;
  std::vector<DecoderLayer<T>> layers_;
  Vec<T> norm_;
  T embed_scale_;
};

}  // namespace gemma3
