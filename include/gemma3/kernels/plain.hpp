// The plain matrix product the model is defined with, the twin every fast product is tested
// against. The model's other functions (RMSNorm, GELU, softmax; LayerNorm for SigLIP) are part of
// its definition and live beside it: text/functions.hpp, vision/layer_norm.hpp.
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>

#include "gemma3/tensor.hpp"

namespace gemma3::inline GEMMA3_MODE::plain {

// y = x · Wᵀ for a weight W stored [out, in] as published (nn.Linear orientation), in any
// checkpoint dtype. W is widened to T a block of rows at a time, so the working memory stays small
// for the 262144-row LM head while Eigen's GEMM does the arithmetic.
template <typename T>
Mat<T> linear(const ConstMatRef<T>& x, const TensorView& w) {
  constexpr int64_t kBlockRows = 512;
  const int64_t out = w.rows();
  Mat<T> y(x.rows(), out);
  for (int64_t r0 = 0; r0 < out; r0 += kBlockRows) {
    const int64_t n = std::min(kBlockRows, out - r0);
    const Mat<T> block = w.rows_as<T>(r0, n);  // [n, in]
    y.middleCols(r0, n).noalias() = x * block.transpose();
  }
  return y;
}

}  // namespace gemma3::inline GEMMA3_MODE::plain
