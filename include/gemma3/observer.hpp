// Observers: see (and optionally edit) every named intermediate of a forward pass, without touching
// the model code.
//
// Model functions take an observer by reference and announce each intermediate with `notify`. With
// the default NullObserver the calls compile to nothing (its `enabled` is false, so not even the name
// string is built). Any other observer derives from Observer<T> and receives a writable reference to
// the live buffer: editing it edits the forward pass (zero a head, add a steering vector, ...).
//
// Names follow the published module paths (transformers' modeling_gemma3.py), e.g.
//   model.inputs_embeds                          [T, hidden]       decoder input
//   model.layers.3.input_layernorm               [T, hidden]
//   model.layers.3.self_attn.q_proj / k_proj / v_proj
//   model.layers.3.self_attn.q_norm / k_norm     [T, heads*head_dim] after the per-head RMSNorm
//   model.layers.3.self_attn.q_rope / k_rope     after RoPE (what the cache stores for k)
//   model.layers.3.self_attn.attn_weights        [heads*T, S] softmax probabilities, head-major
//   model.layers.3.self_attn.attn_output         [T, heads*head_dim] before o_proj
//   model.layers.3.self_attn                     [T, hidden] o_proj output
//   model.layers.3.post_attention_layernorm, .attn_residual, .pre_feedforward_layernorm
//   model.layers.3.mlp.gate_proj / up_proj / act_fn (gelu(gate)) / model.layers.3.mlp
//   model.layers.3.post_feedforward_layernorm
//   model.layers.3                               [T, hidden] residual stream after the layer
//   model.norm                                   [T, hidden] after the final norm
//   lm_head                                      [T, vocab] logits
#pragma once

#include <functional>
#include <string>
#include <utility>

#include "gemma3/tensor.hpp"

namespace gemma3 {

// Observes nothing, costs nothing.
struct NullObserver {
  static constexpr bool enabled = false;
};

// Base of every real observer.
template <typename T>
class Observer {
 public:
  static constexpr bool enabled = true;
  virtual ~Observer() = default;
  virtual void observe(const std::string& name, MatRef<T> value) = 0;
};

// An observer from a callable: FunctionObserver<float> obs([](const std::string& n, auto v) {...});
template <typename T>
class FunctionObserver : public Observer<T> {
 public:
  explicit FunctionObserver(std::function<void(const std::string&, MatRef<T>)> f) : f_(std::move(f)) {}
  void observe(const std::string& name, MatRef<T> value) override { f_(name, value); }

 private:
  std::function<void(const std::string&, MatRef<T>)> f_;
};

// Announces `value` under the name `make_name()` builds, only when the observer is enabled.
template <typename Obs, typename MakeName, typename M>
inline void notify(Obs& obs, MakeName&& make_name, M& value) {
  if constexpr (Obs::enabled) obs.observe(make_name(), value);
}

}  // namespace gemma3
