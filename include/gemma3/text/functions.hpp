// The model's functions other than the matrix products, as the plain definition computes them:
// Gemma's RMSNorm, GELU (tanh approximation), the row softmax and soft-capping. The SigLIP tower's
// LayerNorm is in vision/layer_norm.hpp. All work on row-major activations, one row per token; the
// fast path calls these too where it has no kernel of its own, and its kernels (GeluTanhMul, the
// online softmax of AttendQuery) are tested against them.
#pragma once

#include "gemma3/build_mode.hpp"

#include <cmath>
#include <limits>

#include "gemma3/tensor.hpp"

namespace gemma3::inline GEMMA3_MODE::plain {

// Gemma RMSNorm over each row: y = x · rsqrt(mean(x²) + eps) · (1 + w), computed in T and the
// weight offset applied before any downcast (transformers 4.51.3 modeling_gemma3.py Gemma3RMSNorm).
// `w` stores w, not 1
// + w.
template <typename T>
Mat<T> rms_norm(const ConstMatRef<T>& x, const Vec<T>& w, double eps) {
  Mat<T> y(x.rows(), x.cols());
  const auto one_plus_w = (w.array() + T(1)).matrix().transpose();
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    const T mean_square = x.row(r).squaredNorm() / T(x.cols());
    const T inv_rms = T(1) / std::sqrt(mean_square + T(eps));
    y.row(r) = (x.row(r) * inv_rms).cwiseProduct(one_plus_w);
  }
  return y;
}

// GELU, tanh approximation: 0.5·u·(1 + tanh(sqrt(2/π)·(u + 0.044715·u³))) (gelu_pytorch_tanh, the
// hidden_activation of every Gemma 3 config), over a whole matrix of pre-activations as one
// vectorised Eigen expression.
template <typename T>
Mat<T> gelu_tanh(const ConstMatRef<T>& u) {
  const T sqrt_2_over_pi = T(0.7978845608028654);
  const auto a = u.array();
  return (T(0.5) * a * (T(1) + (sqrt_2_over_pi * (a + T(0.044715) * a.cube())).tanh())).matrix();
}

// Softmax of each row in place; entries equal to -inf get probability 0. A row that is entirely
// -inf would be 0/0: the masks never produce one (every query sees itself).
template <typename T>
void softmax_rows(MatRef<T> s) {
  for (Eigen::Index r = 0; r < s.rows(); ++r) {
    const T max = s.row(r).maxCoeff();
    // Masked scores (-inf) must get probability exactly 0. Eigen's vectorised exp clamps its
    // argument (to about -88 in float), so exp(-inf) would give a masked key a denormal weight
    // (~1e-40).
    s.row(r) = (s.row(r).array() == -std::numeric_limits<T>::infinity())
                   .select(T(0), (s.row(r).array() - max).exp());
    s.row(r) /= s.row(r).sum();
  }
}

// cap · tanh(x / cap): Gemma 2-style soft-capping, used only by configs that set it.
template <typename T>
void soft_cap(MatRef<T> x, double cap) {
  x = (x.array() / T(cap)).tanh() * T(cap);
}

}  // namespace gemma3::inline GEMMA3_MODE::plain
