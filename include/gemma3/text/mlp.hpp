// The GeGLU feed-forward block: down( gelu_tanh(gate(m)) ⊙ up(m) ) (spec §2.3, HF-mod Gemma3MLP).
#pragma once

#include <array>
#include <string>
#include <type_traits>

#include "gemma3/kernels/ops.hpp"
#include "gemma3/observer.hpp"
#include "gemma3/weights.hpp"

namespace gemma3 {

template <typename T, typename Obs, typename Name>
Mat<T> mlp(const ConstMatRef<T>& m, const LayerWeights& w, Backend backend, Obs& obs,
           const Name& name) {
  if constexpr (std::is_same_v<T, float> && !Obs::enabled)  // nothing to observe: fused
    if (backend != Backend::Reference)
      return fast::mlp(m, w.gate_proj, w.up_proj, w.down_proj, matmul_inputs(backend));
  // gate and up read the same m: one call (one pass over both matrices on the fast path).
  auto gate_up = linear<T>(m, std::array{&w.gate_proj, &w.up_proj}, backend);
  Mat<T>& gate = gate_up[0];  // [n, intermediate]
  Mat<T>& up = gate_up[1];    // [n, intermediate]
  notify(
      obs, [&] { return name("mlp.gate_proj"); }, gate);
  notify(
      obs, [&] { return name("mlp.up_proj"); }, up);
  Mat<T> act = ref::gelu_tanh<T>(gate);  // gelu_tanh(gate) ⊙ up
  notify(
      obs, [&] { return name("mlp.act_fn"); }, act);
  act.array() *= up.array();
  Mat<T> down = linear<T>(act, w.down_proj, backend);  // [n, hidden]
  notify(
      obs, [&] { return name("mlp"); }, down);
  return down;
}

}  // namespace gemma3
