// One Gemma 3 decoder layer (spec §2.3): pre- and post-norms around attention and around the MLP,
// each branch added to the residual stream.
#pragma once

#include <cmath>
#include <span>
#include <string>

#include "gemma3/config.hpp"
#include "gemma3/kernels/reference.hpp"
#include "gemma3/observer.hpp"
#include "gemma3/text/attention.hpp"
#include "gemma3/text/kv_cache.hpp"
#include "gemma3/text/mlp.hpp"
#include "gemma3/text/rope.hpp"
#include "gemma3/weights.hpp"

namespace gemma3 {

template <typename T>
class DecoderLayer {
 public:
  DecoderLayer(const TextConfig& cfg, int64_t index, const LayerWeights& w, const Rope<T>& rope,
               Backend backend = Backend::Reference)
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
  // [pos0, pos0 + n), in place; reads and extends this layer's KV cache.
  template <typename Obs = NullObserver>
  void forward(MatRef<T> x, LayerKVCache<T>& cache, int64_t pos0, std::span<const int32_t> groups,
               Obs& obs) const {
    auto name = [this](const char* what) {
      return "model.layers." + std::to_string(index_) + "." + what;
    };
    Mat<T> h = ref::rms_norm<T>(x, input_layernorm_, eps_);
    notify(obs, [&] { return name("input_layernorm"); }, h);
    h = self_attention<T>(h, w_, attn_, cache, pos0, groups, obs, name);
    h = ref::rms_norm<T>(h, post_attention_layernorm_, eps_);
    notify(obs, [&] { return name("post_attention_layernorm"); }, h);
    x += h;
    notify(obs, [&] { return name("attn_residual"); }, x);

    h = ref::rms_norm<T>(x, pre_feedforward_layernorm_, eps_);
    notify(obs, [&] { return name("pre_feedforward_layernorm"); }, h);
    h = mlp<T>(h, w_, attn_.backend, obs, name);
    h = ref::rms_norm<T>(h, post_feedforward_layernorm_, eps_);
    notify(obs, [&] { return name("post_feedforward_layernorm"); }, h);
    x += h;
    notify(obs, [&] { return "model.layers." + std::to_string(index_); }, x);
  }

 private:
  int64_t index_;
  double eps_;
  LayerWeights w_;
  Vec<T> input_layernorm_, post_attention_layernorm_, pre_feedforward_layernorm_,
      post_feedforward_layernorm_;
  AttentionParams<T> attn_;
};

}  // namespace gemma3
