// The Gemma 3 text decoder: embedding, the stack of decoder layers, the final norm and the LM head
// (transformers 4.51.3 modeling_gemma3.py Gemma3ForCausalLM).
//
// Ways to run it:
//   * whole: `forward(ids)` returns the logits of every position (a fresh cache sized to the
//   input);
//     `forward(ids, cache)` prefills or decodes the next tokens into a KV cache; LogitRows says
//     which positions get logits (all, the last, some, none);
//   * observed: `forward(ids, observer)` announces the sites the observer asked for (observer.hpp),
//     `run_with_cache(ids, sites)` returns the logits and a Capture of those sites;
//   * a layer at a time: Stepper (gemma3/stepper.hpp) owns the position, cache and observer.
#pragma once

#include <cmath>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "gemma3/build_mode.hpp"
#include "gemma3/checkpoint.hpp"
#include "gemma3/config.hpp"
#include "gemma3/error.hpp"
#include "gemma3/kernels/ops.hpp"
#include "gemma3/observer.hpp"
#include "gemma3/text/decoder_layer.hpp"
#include "gemma3/text/functions.hpp"
#include "gemma3/text/kv_cache.hpp"
#include "gemma3/text/mask.hpp"
#include "gemma3/text/rope.hpp"
#include "gemma3/weights.hpp"

namespace gemma3::inline GEMMA3_MODE {

// Which positions of a forward call get logits: the rows of the returned matrix, in order. The LM
// head is the largest product of a step (vocab x hidden), so a caller that needs one row should not
// pay for T of them (T x 262144 floats is 631 MB at T = 602).
class LogitRows {
 public:
  static LogitRows all() { return LogitRows(Kind::All, {}); }
  static LogitRows last() { return LogitRows(Kind::Last, {}); }
  static LogitRows none() { return LogitRows(Kind::Some, {}); }
  // The calls' tokens at these indices (negative ones count from the end: -1 is the last).
  static LogitRows at(std::vector<int64_t> indices) {
    return LogitRows(Kind::Some, std::move(indices));
  }

  bool is_all() const { return kind_ == Kind::All; }
  // The row indices among a call's n tokens; InvalidArgument "logits" for one out of range.
  std::vector<int64_t> resolve(int64_t n) const {
    if (kind_ == Kind::All) {
      std::vector<int64_t> rows(std::size_t(n), 0);
      for (int64_t i = 0; i < n; ++i) rows[std::size_t(i)] = i;
      return rows;
    }
    if (kind_ == Kind::Last) return {n - 1};
    std::vector<int64_t> rows;
    for (const int64_t i : indices_) {
      if (i < -n || i >= n)
        throw InvalidArgument("logits", "position " + std::to_string(i) +
                                            " is outside the call's " + std::to_string(n) +
                                            " tokens");
      rows.push_back(i < 0 ? n + i : i);
    }
    return rows;
  }

 private:
  enum class Kind { All, Last, Some };
  LogitRows(Kind k, std::vector<int64_t> indices) : kind_(k), indices_(std::move(indices)) {}
  Kind kind_;
  std::vector<int64_t> indices_;
};

// What run_with_cache returns: the logits and the captured sites.
template <typename T>
struct RunWithCache {
  Mat<T> logits;
  Capture<T> captured;
};

template <typename T = float>
class TextModel {
 public:
  // The weights are views: the Checkpoint they come from must outlive the model.
  // `backend` picks the kernels of the float path (double always runs the plain path).
  TextModel(const TextConfig& cfg, const TextWeights& w, Backend backend = Backend::Fast);
  explicit TextModel(const Checkpoint& ck, Backend backend = Backend::Fast)
      : TextModel(ck.config().text, ck.weights().text, backend) {}

  const TextConfig& config() const { return cfg_; }
  const TextWeights& weights() const { return w_; }
  const std::vector<DecoderLayer<T>>& layers() const { return layers_; }
  T embed_scale() const { return embed_scale_; }
  Backend backend() const { return backend_; }

  // The scaled embeddings of `ids` [n, hidden]: E[id] · sqrt(hidden).
  Mat<T> embed(std::span<const int32_t> ids) const;

  // Tokens a long prompt is run through the layers at a time (never splitting an image's run):
  // the activations of a step are then bounded by a chunk's (the MLP's alone are 4 · T ·
  // intermediate bytes twice: 1.8 GB for a 32K-token prompt of the 1B), while the weights are still
  // reused across hundreds of tokens per pass. A prompt of at most this many tokens runs whole.
  static constexpr int64_t kDefaultPrefillChunk = 512;
  int64_t prefill_chunk() const { return prefill_chunk_; }
  void set_prefill_chunk(int64_t tokens) {
    if (tokens < 1)
      throw InvalidArgument("prefill_chunk",
                            "must be at least 1 token, got " + std::to_string(tokens));
    prefill_chunk_ = tokens;
  }

  // Runs every layer on x [n, hidden] (n new tokens at positions cache.length() ...) in place, a
  // chunk at a time, and advances the cache. `groups` gives each token's image (-1 for text;
  // text/mask.hpp).
  void forward_layers(MatRef<T> x, KVCache<T>& cache, std::span<const int32_t> groups,
                      Observer<T>* obs = nullptr) const;

  Mat<T> final_norm(const ConstMatRef<T>& x) const;

  // Logits [n, vocab] = normed · lm_headᵀ (tied: the embedding), soft-capped if the config says so.
  Mat<T> lm_head(const ConstMatRef<T>& normed) const;

  // Embeds `ids`, runs them through the layers into `cache` (after what it holds) and returns the
  // logits of the rows asked for.
  Mat<T> forward(std::span<const int32_t> ids, KVCache<T>& cache,
                 const LogitRows& rows = LogitRows::all()) const {
    return forward_ids(ids, cache, nullptr, rows);
  }
  Mat<T> forward(std::span<const int32_t> ids, KVCache<T>& cache, Observer<T>& obs,
                 const LogitRows& rows = LogitRows::all()) const {
    return forward_ids(ids, cache, &obs, rows);
  }

  // The whole sequence at once, from position 0, with a cache of its length.
  Mat<T> forward(std::span<const int32_t> ids, const LogitRows& rows = LogitRows::all()) const {
    KVCache<T> cache = cache_for(ids);
    return forward_ids(ids, cache, nullptr, rows);
  }
  Mat<T> forward(std::span<const int32_t> ids, Observer<T>& obs,
                 const LogitRows& rows = LogitRows::all()) const {
    KVCache<T> cache = cache_for(ids);
    return forward_ids(ids, cache, &obs, rows);
  }

  // forward(ids) that also captures `sites` (TransformerLens's run_with_cache).
  RunWithCache<T> run_with_cache(std::span<const int32_t> ids, SiteSet sites,
                                 const LogitRows& rows = LogitRows::all()) const {
    RunWithCache<T> r{Mat<T>(), Capture<T>(std::move(sites))};
    r.logits = forward(ids, r.captured, rows);
    return r;
  }

  // From decoder inputs x [n, hidden] (text embeddings with image soft tokens merged in): layers,
  // final norm and LM head for the rows asked for. `obs` may be null.
  Mat<T> forward_embeddings(MatRef<T> x, std::span<const int32_t> groups, KVCache<T>& cache,
                            Observer<T>* obs, const LogitRows& rows = LogitRows::all()) const;

  void check_length(int64_t n) const {
    if (n > cfg_.max_position_embeddings)
      throw InvalidArgument("ids", "sequence of " + std::to_string(n) +
                                       " tokens exceeds max_position_embeddings " +
                                       std::to_string(cfg_.max_position_embeddings));
  }

 private:
  // The text path embeds a chunk at a time: the decoder input of a long prompt never exists whole.
  Mat<T> forward_ids(std::span<const int32_t> ids, KVCache<T>& cache, Observer<T>* obs,
                     const LogitRows& rows) const;

  // The decoder over n tokens in chunks of prefill_chunk() (an image's run never split), each chunk
  // through every layer before the next: `input(c0, len)` gives the decoder input rows [c0, c0 +
  // len), to be updated in place; `done(c0, x)` sees each chunk's output.
  template <typename Input, typename Done>
  void run_chunks(int64_t n, std::span<const int32_t> groups, KVCache<T>& cache, Observer<T>* obs,
                  Input&& input, Done&& done) const {
    if (n == 0) throw InvalidArgument("inputs", "empty sequence");
    if (static_cast<int64_t>(groups.size()) != n)
      throw InvalidArgument("groups", "one image group per token expected");
    cache.check_room(n);
    if (obs) obs->on_forward(cache.length(), n);
    for (int64_t c0 = 0; c0 < n;) {
      int64_t c1 = std::min(n, c0 + prefill_chunk_);
      while (c1 < n && groups[c1] >= 0 && groups[c1] == groups[c1 - 1])
        ++c1;  // an image stays whole
      MatRef<T> x = input(c0, c1 - c0);
      const int64_t pos0 = cache.length();
      announce(obs, Site::inputs_embeds(), x, {.pos0 = pos0});
      for (const auto& layer : layers_)
        layer.forward(x, cache.layer(layer.index()), pos0, groups.subspan(c0, c1 - c0), obs);
      cache.advance(c1 - c0);
      done(c0, x);
      c0 = c1;
    }
  }

  // run_chunks, then the final norm and LM head of the rows asked for: only those rows of the last
  // residual stream are kept (all of the final norm when it is observed, a chunk at a time).
  // A decode step on the fast path runs on one held team of threads (kernels/team.hpp: its
  // hundred-odd kernels without a fork and join each); the values are the same. Below
  // kGemmMinTokens every kernel a step runs is a Team::parallel body; the prefill GEMM's and the
  // vision tower's are not (held, they would run on one thread).
  template <typename Input>
  Mat<T> forward_chunks(int64_t n, std::span<const int32_t> groups, KVCache<T>& cache,
                        Observer<T>* obs, const LogitRows& rows, Input&& input) const {
    Mat<T> logits;
    const auto forward = [&] { logits = forward_chunks_now(n, groups, cache, obs, rows, input); };
    if (backend_ != Backend::Plain && n < fast::kGemmMinTokens)
      fast::Team::hold(forward);
    else
      forward();
    return logits;
  }
  template <typename Input>
  Mat<T> forward_chunks_now(int64_t n, std::span<const int32_t> groups, KVCache<T>& cache,
                            Observer<T>* obs, const LogitRows& rows, Input& input) const {
    const std::vector<int64_t> picked = rows.resolve(n);
    std::vector<int64_t> row_of(std::size_t(n), -1);  // token -> row of `kept`
    for (std::size_t r = 0; r < picked.size(); ++r) row_of[std::size_t(picked[r])] = int64_t(r);
    const bool observed = obs && obs->wants(Site::final_norm());
    Mat<T> kept(int64_t(picked.size()),
                cfg_.hidden_size);  // the picked rows: residual, or normed when observed
    run_chunks(n, groups, cache, obs, input, [&](int64_t c0, const MatRef<T>& x) {
      Mat<T> normed;
      if (observed) {
        normed = final_norm(x);
        announce(obs, Site::final_norm(), MatRef<T>(normed), {.pos0 = cache.length() - x.rows()});
      }
      for (int64_t r = 0; r < x.rows(); ++r)
        if (const int64_t k = row_of[std::size_t(c0 + r)]; k >= 0) {
          if (observed)
            kept.row(k) = normed.row(r);
          else
            kept.row(k) = x.row(r);
        }
    });
    if (picked.empty()) return Mat<T>(0, cfg_.vocab_size);
    Mat<T> logits = lm_head(observed ? kept : final_norm(kept));
    announce(obs, Site::logits(), MatRef<T>(logits), {.pos0 = cache.length() - n});
    return logits;
  }

  KVCache<T> cache_for(std::span<const int32_t> ids) const;

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
  int64_t prefill_chunk_ = kDefaultPrefillChunk;
};

// The members with real work, out of the class: not inline, so that in the compiled mode
// (build_mode.hpp) the explicit instantiations in gemma3::kernels are the only ones.

template <typename T>
TextModel<T>::TextModel(const TextConfig& cfg, const TextWeights& w, Backend backend)
    : cfg_(cfg), w_(w), backend_(std::is_same_v<T, float> ? backend : Backend::Plain) {
  validate(cfg);
  const Rope<T> local(cfg.rope_local, cfg.head_dim), global(cfg.rope_global, cfg.head_dim);
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i)
    layers_.emplace_back(cfg, i, w.layers.at(i),
                         layer_kind(cfg, i) == LayerKind::Local ? local : global, backend_);
  norm_ = w.norm.vec<T>();
  // sqrt(hidden) is an f32 buffer in transformers, cast to the compute dtype (transformers 4.51.3
  // modeling_gemma3.py Gemma3TextScaledWordEmbedding).
  embed_scale_ = T(std::sqrt(double(cfg.hidden_size)));
}

template <typename T>
Mat<T> TextModel<T>::embed(std::span<const int32_t> ids) const {
  check_ids(ids);
  Mat<T> x(static_cast<Eigen::Index>(ids.size()), cfg_.hidden_size);
  for (std::size_t t = 0; t < ids.size(); ++t)
    x.row(t) = w_.embed_tokens.rows_as<T>(ids[t], 1) * embed_scale_;
  return x;
}

template <typename T>
void TextModel<T>::forward_layers(MatRef<T> x, KVCache<T>& cache, std::span<const int32_t> groups,
                                  Observer<T>* obs) const {
  run_chunks(
      x.rows(), groups, cache, obs,
      [&](int64_t c0, int64_t n) { return MatRef<T>(x.middleRows(c0, n)); },
      [](int64_t, const MatRef<T>&) {});
}

template <typename T>
Mat<T> TextModel<T>::final_norm(const ConstMatRef<T>& x) const {
  return plain::rms_norm<T>(x, norm_, cfg_.rms_norm_eps);
}

template <typename T>
Mat<T> TextModel<T>::lm_head(const ConstMatRef<T>& normed) const {
  Mat<T> logits = linear<T>(normed, w_.lm_head, backend_);
  if (cfg_.final_logit_softcapping) plain::soft_cap<T>(logits, *cfg_.final_logit_softcapping);
  return logits;
}

template <typename T>
Mat<T> TextModel<T>::forward_embeddings(MatRef<T> x, std::span<const int32_t> groups,
                                        KVCache<T>& cache, Observer<T>* obs,
                                        const LogitRows& rows) const {
  return forward_chunks(x.rows(), groups, cache, obs, rows,
                        [&](int64_t c0, int64_t n) { return MatRef<T>(x.middleRows(c0, n)); });
}

template <typename T>
Mat<T> TextModel<T>::forward_ids(std::span<const int32_t> ids, KVCache<T>& cache, Observer<T>* obs,
                                 const LogitRows& rows) const {
  check_ids(ids);
  const std::vector<int32_t> groups(ids.size(), -1);
  Mat<T> x;
  return forward_chunks(int64_t(ids.size()), groups, cache, obs, rows, [&](int64_t c0, int64_t n) {
    x = embed(ids.subspan(std::size_t(c0), std::size_t(n)));
    return MatRef<T>(x);
  });
}

template <typename T>
KVCache<T> TextModel<T>::cache_for(std::span<const int32_t> ids) const {
  if (ids.empty()) throw InvalidArgument("ids", "empty sequence");
  check_length(static_cast<int64_t>(ids.size()));
  return KVCache<T>(cfg_, static_cast<int64_t>(ids.size()));
}

#if GEMMA3_EXTERN_TEMPLATES
extern template class DecoderLayer<float>;
extern template class DecoderLayer<double>;
extern template class TextModel<float>;
extern template class TextModel<double>;
#endif

}  // namespace gemma3::inline GEMMA3_MODE
