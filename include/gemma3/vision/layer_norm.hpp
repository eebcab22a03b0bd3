// SigLIP's LayerNorm, as the plain definition computes it (transformers 4.51.3 modeling_siglip.py:
// nn.LayerNorm with weight and bias).
#pragma once

#include "gemma3/build_mode.hpp"

#include <cmath>

#include "gemma3/tensor.hpp"

namespace gemma3::inline GEMMA3_MODE::plain {

// Standard LayerNorm (population variance) with weight and bias: the SigLIP encoder's norm.
template <typename T>
Mat<T> layer_norm(const ConstMatRef<T>& x, const Vec<T>& w, const Vec<T>& b, double eps) {
  Mat<T> y(x.rows(), x.cols());
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    const T mean = x.row(r).mean();
    const auto centred = (x.row(r).array() - mean).matrix();
    const T var = centred.squaredNorm() / T(x.cols());
    y.row(r) = (centred / std::sqrt(var + T(eps))).cwiseProduct(w.transpose()) + b.transpose();
  }
  return y;
}

}  // namespace gemma3::inline GEMMA3_MODE::plain
