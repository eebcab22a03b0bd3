// The GeGLU feed-forward block: down( gelu_tanh(gate(m)) ⊙ up(m) ) (spec §2.3, HF-mod Gemma3MLP).
#pragma once

#include <string>

#include "gemma3/kernels/ops.hpp"
#include "gemma3/observer.hpp"
#include "gemma3/weights.hpp"

namespace gemma3 {

template <typename T, typename Obs, typename Name>
Mat<T> mlp(const ConstMatRef<T>& m, const LayerWeights& w, Backend backend, Obs& obs, const Name& name) {
  Mat<T> gate = linear<T>(m, w.gate_proj, backend);  // [n, intermediate]
  Mat<T> up = linear<T>(m, w.up_proj, backend);      // [n, intermediate]
  notify(obs, [&] { return name("mlp.gate_proj"); }, gate);
  notify(obs, [&] { return name("mlp.up_proj"); }, up);
  Mat<T> act = ref::gelu_tanh<T>(gate);
  notify(obs, [&] { return name("mlp.act_fn"); }, act);
  act.array() *= up.array();
  Mat<T> down = linear<T>(act, w.down_proj, backend);  // [n, hidden]
  notify(obs, [&] { return name("mlp"); }, down);
  return down;
}

}  // namespace gemma3
