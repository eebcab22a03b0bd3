// One Gemma 3 decoder layer: pre- and post-norms around attention and around the MLP, each branch
// added to the residual stream (the Gemma 3 report, section 2; transformers 4.51.3
// modeling_gemma3.py Gemma3DecoderLayer).
#pragma once

#include "gemma3/build_mode.hpp"

#include <cmath>
#include <span>

#include "gemma3/config.hpp"
#include "gemma3/observer.hpp"
#include "gemma3/text/attention.hpp"
#include "gemma3/text/functions.hpp"
#include "gemma3/text/kv_cache.hpp"
#include "gemma3/text/mlp.hpp"
#include "gemma3/text/rope.hpp"
#include "gemma3/weights.hpp"

namespace gemma3::inline GEMMA3_MODE {

template <typename T>
class DecoderLayer {
 public:
  DecoderLayer(const TextConfig& cfg, int64_t index, const LayerWeights& w, const Rope<T>& rope,
               Backend backend = Backend::Plain)
      : index_(index), eps_(cfg.rms_norm_eps), w_(w) {
    input_layernorm_ = w.input_layernorm.vec<T>();
    post_attention_layernorm_ = w.post_attention_layernorm.vec<T>();
    pre_feedforward_layernorm_ = w.pre_feedforward_layernorm.vec<T>();
    post_feedforward_layernorm_ = w.post_feedforward_layernorm.vec<T>();
    attn_ = AttentionParams<T>{.kind = layer_kind(cfg, index),
                               .window = cfg.sliding_window,
                               .heads = cfg.num_attention_heads,
                               .kv_heads = cfg.num_key_value_heads,
                               .head_dim = cfg.head_dim,
                               .scale = T(1) / std::sqrt(T(cfg.query_pre_attn_scalar)),
                               .softcap = cfg.attn_logit_softcapping,
                               .eps = cfg.rms_norm_eps,
                               .q_norm = w.q_norm.vec<T>(),
                               .k_norm = w.k_norm.vec<T>(),
                               .rope = rope,
                               .backend = backend};
  }

  int64_t index() const { return index_; }
  LayerKind kind() const { return attn_.kind; }
  const LayerWeights& weights() const { return w_; }

  // Runs the layer on the residual stream x [n, hidden] of n new tokens at positions
  // [pos0, pos0 + n), in place; reads and extends this layer's KV cache. `obs` (may be null) sees
  // the sites it asked for. Stepping by hand? Stepper (gemma3/stepper.hpp) does the bookkeeping.
  void forward(MatRef<T> x, LayerKVCache<T>& cache, int64_t pos0, std::span<const int32_t> groups,
               Observer<T>* obs = nullptr) const {
    const detail::LayerTap<T> tap{obs, int32_t(index_), pos0};
    Mat<T> h = plain::rms_norm<T>(x, input_layernorm_, eps_);
    tap(SiteKind::InputLayernorm, MatRef<T>(h));
    h = self_attention<T>(h, w_, attn_, cache, pos0, groups, tap);
    h = plain::rms_norm<T>(h, post_attention_layernorm_, eps_);
    tap(SiteKind::PostAttentionLayernorm, MatRef<T>(h));
    x += h;
    tap(SiteKind::AttnResidual, x);

    h = plain::rms_norm<T>(x, pre_feedforward_layernorm_, eps_);
    tap(SiteKind::PreFeedforwardLayernorm, MatRef<T>(h));
    h = mlp<T>(h, w_, attn_.backend, tap);
    h = plain::rms_norm<T>(h, post_feedforward_layernorm_, eps_);
    tap(SiteKind::PostFeedforwardLayernorm, MatRef<T>(h));
    x += h;
    tap(SiteKind::Residual, x);
  }

 private:
  int64_t index_;
  double eps_;
  LayerWeights w_;
  Vec<T> input_layernorm_, post_attention_layernorm_, pre_feedforward_layernorm_,
      post_feedforward_layernorm_;
  AttentionParams<T> attn_;
};

}  // namespace gemma3::inline GEMMA3_MODE
