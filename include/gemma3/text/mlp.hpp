// The GeGLU feed-forward block: down( gelu_tanh(gate(m)) ⊙ up(m) ) (the Gemma 3 report, section 2;
// transformers 4.51.3 modeling_gemma3.py Gemma3MLP with hidden_activation gelu_pytorch_tanh).
#pragma once

#include "gemma3/build_mode.hpp"

#include <array>
#include <type_traits>

#include "gemma3/kernels/ops.hpp"
#include "gemma3/observer.hpp"
#include "gemma3/text/functions.hpp"
#include "gemma3/weights.hpp"

namespace gemma3::inline GEMMA3_MODE {

// The fast backend runs the fused block (fast::mlp: the activations never leave the GEMM's packed
// layout) unless a site inside it is asked for in this layer. Then it runs the same kernels
// unfused — bit-identical, a test holds it — so that gate, up and gelu(gate) can be announced; only
// an edited gelu(gate) changes the arithmetic (it is multiplied by up as the edit left it).
template <typename T>
Mat<T> mlp(const ConstMatRef<T>& m, const LayerWeights& w, Backend backend,
           const detail::LayerTap<T>& tap) {
  bool fast = false;
  if constexpr (std::is_same_v<T, float>) fast = backend != Backend::Plain;
  const bool inside =
      tap.wants(SiteKind::MlpGate) || tap.wants(SiteKind::MlpUp) || tap.wants(SiteKind::MlpAct);
  Mat<T> down;  // [n, hidden]
  if constexpr (std::is_same_v<T, float>)
    if (fast && !inside)
      down = fast::mlp(m, w.gate_proj, w.up_proj, w.down_proj, matmul_inputs(backend));
  if (!fast || inside) {
    // gate and up read the same m: one call (one pass over both matrices on the fast path).
    auto gate_up = linear<T>(m, std::array{&w.gate_proj, &w.up_proj}, backend);
    Mat<T>& gate = gate_up[0];  // [n, intermediate]
    Mat<T>& up = gate_up[1];    // [n, intermediate]
    tap(SiteKind::MlpGate, MatRef<T>(gate));
    tap(SiteKind::MlpUp, MatRef<T>(up));
    Mat<T> act;  // gelu_tanh(gate) ⊙ up
    if constexpr (std::is_same_v<T, float>)
      if (fast && !tap.edits(SiteKind::MlpAct)) {
        if (tap.wants(SiteKind::MlpAct)) {
          Mat<T> gelu = fast::gelu_tanh(gate);  // the kernel's own gelu: its product with 1
          tap(SiteKind::MlpAct, MatRef<T>(gelu));
        }
        act = fast::gelu_tanh_mul(gate, up);
      }
    if (act.size() == 0) {
      act = plain::gelu_tanh<T>(gate);
      tap(SiteKind::MlpAct, MatRef<T>(act));
      act.array() *= up.array();
    }
    down = linear<T>(act, w.down_proj, backend);
  }
  tap(SiteKind::Mlp, MatRef<T>(down));
  return down;
}

}  // namespace gemma3::inline GEMMA3_MODE
