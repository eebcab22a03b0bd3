// The plain matrix product the model is defined with, the twin every fast product is tested
// against. The model's other functions (RMSNorm, GELU, softmax; LayerNorm for SigLIP) are part of
// its definition and live beside it: text/functions.hpp, vision/layer_norm.hpp.
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "gemma3/error.hpp"
#include "gemma3/tensor.hpp"

namespace gemma3::inline GEMMA3_MODE::plain {

// x as a product with quantized weights takes it (quant.hpp): each token's blocks of 32 quantized
// to int8 with one scale each, and decoded again.
template <typename T>
Mat<T> quantized_activations(const ConstMatRef<T>& x) {
  const int64_t in = x.cols();
  if (in % 32 != 0)
    throw InvalidArgument("activations", "have " + std::to_string(in) +
                                             " columns, not whole blocks of 32 for a product "
                                             "with quantized weights");
  Mat<T> out(x.rows(), in);
  std::vector<float> row(static_cast<std::size_t>(in)), back(row.size());
  quant::Activations a;  // one row's, reused
  quant::resize_activations(a, 1, in);
  for (int64_t t = 0; t < x.rows(); ++t) {
    for (int64_t i = 0; i < in; ++i) row[std::size_t(i)] = float(x(t, i));
    quant::quantize_activation_blocks(row.data(), 0, 0, in / 32, a);
    quant::dequantize_activation_row(a.q.data(), a.d.data(), in, back.data());
    for (int64_t i = 0; i < in; ++i) out(t, i) = T(back[std::size_t(i)]);
  }
  return out;
}

// y = x · Wᵀ for a weight W stored [out, in] as published (nn.Linear orientation), in any
// checkpoint dtype. W is widened to T a block of rows at a time, so the working memory stays small
// for the 262144-row LM head while Eigen's GEMM does the arithmetic. A quantized W multiplies
// quantized activations (quant.hpp: part of what a product with quantized weights is, as in
// llama.cpp).
template <typename T>
Mat<T> linear(const ConstMatRef<T>& x_in, const TensorView& w) {
  constexpr int64_t kBlockRows = 512;
  const int64_t out = w.rows();
  Mat<T> quantized;
  if (is_quantized(w.dtype)) quantized = quantized_activations<T>(x_in);
  const ConstMatRef<T> x = is_quantized(w.dtype) ? ConstMatRef<T>(quantized) : x_in;
  Mat<T> y(x.rows(), out);
  for (int64_t r0 = 0; r0 < out; r0 += kBlockRows) {
    const int64_t n = std::min(kBlockRows, out - r0);
    const Mat<T> block = w.rows_as<T>(r0, n);  // [n, in]
    y.middleCols(r0, n).noalias() = x * block.transpose();
  }
  return y;
}

}  // namespace gemma3::inline GEMMA3_MODE::plain
