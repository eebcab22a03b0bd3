// The fast path: the same operations as kernels/reference.hpp, on the SIMD kernels (kernels/simd.hpp)
// and OpenMP. Float only; the double "gold" mode always runs the reference path.
//
// Determinism: work is split with static schedules and every output element is computed by one
// thread in a fixed order, so results do not depend on the number of threads at all.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include <omp.h>

#include "gemma3/kernels/dispatch.hpp"
#include "gemma3/kernels/reference.hpp"
#include "gemma3/tensor.hpp"

namespace gemma3::fast {

// Below this many tokens a matrix product runs as one GEMV per token (weights streamed once per
// token); from here on, the packed GEMM (weights widened once, reused across tokens) wins.
inline constexpr int64_t kGemmMinTokens = 4;

namespace detail {
// y = W·x for one token: the rows of W split over threads in blocks (each weight byte read once).
inline void gemv(const TensorView& w, const float* x, float* y) {
  const int64_t rows = w.rows(), in = w.cols();
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (rows + kBlock - 1) / kBlock;
  if (w.dtype == DType::BF16) {
    Vec<float> x_even((in + 1) / 2), x_odd(in / 2 + 1);
    for (int64_t i = 0; i < in / 2; ++i) x_even[i] = x[2 * i], x_odd[i] = x[2 * i + 1];
    if (in % 2) x_even[in / 2] = x[in - 1];
    const auto* wp = reinterpret_cast<const uint16_t*>(w.data);
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t r0 = b * kBlock, n = std::min(kBlock, rows - r0);
      kernels::call(kernels::simd::GemvBf16{}, wp + r0 * in, n, in, x, x_even.data(), x_odd.data(), y + r0);
    }
  } else {
    const auto* wp = reinterpret_cast<const float*>(w.data);
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t r0 = b * kBlock, n = std::min(kBlock, rows - r0);
      kernels::call(kernels::simd::GemvF32{}, wp + r0 * in, n, in, x, y + r0);
    }
  }
}

// Y = X·Wᵀ for many tokens and bf16 weights: blocks of weight rows split over threads; each block is
// multiplied in place (no packing) by register tiles of dot products, X split into even/odd columns
// once so that the bf16 weights widen in registers.
inline void gemm_bf16(const uint16_t* w, int64_t out, int64_t in, const float* x, int64_t tokens, float* y) {
  const int64_t half = (in + 1) / 2;
  Mat<float> x_even(tokens, half), x_odd(tokens, half);
  for (int64_t t = 0; t < tokens; ++t) {
    const float* row = x + t * in;
    for (int64_t i = 0; i < in / 2; ++i) x_even(t, i) = row[2 * i], x_odd(t, i) = row[2 * i + 1];
    if (in % 2) x_even(t, half - 1) = row[in - 1], x_odd(t, half - 1) = 0.f;
  }
  constexpr int64_t kRows = kernels::simd::GemmDotBf16::RB;
  const int64_t blocks = (out + kRows - 1) / kRows;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t r0 = b * kRows, n = std::min(kRows, out - r0);
    kernels::call(kernels::simd::GemmDotBf16{}, w + r0 * in, n, in, x_even.data(), x_odd.data(), tokens, y + r0, out);
  }
}

// Y = X·Wᵀ for many tokens: panels of NR weight rows split over threads, each packed and swept by
// the register-blocked micro-kernel.
template <class W>
void gemm(const W* w, int64_t out, int64_t in, const float* x, int64_t tokens, float* y) {
  const auto nr = kernels::call(kernels::simd::GemmPanelWidth{});
  const int64_t panels = (out + nr - 1) / nr;
#pragma omp parallel
  {
    std::vector<float> scratch(std::size_t(kernels::simd::GemmPanel<W>::KC * nr));
#pragma omp for schedule(static)
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t c0 = p * nr, cols = std::min(nr, out - c0);
      kernels::call(kernels::simd::GemmPanel<W>{}, w + c0 * in, cols, x, tokens, in, y + c0, out, scratch.data());
    }
  }
}
}  // namespace detail

// y = x · Wᵀ, the fast twin of ref::linear (F16 weights fall back to it).
inline Mat<float> linear(const ConstMatRef<float>& x, const TensorView& w) {
  if (w.dtype == DType::F16) return ref::linear<float>(x, w);
  const int64_t tokens = x.rows(), out = w.rows(), in = w.cols();
  Mat<float> y(tokens, out);
  // The kernels read rows of x contiguously; copy only a strided view.
  Mat<float> copy;
  const float* xp = x.data();
  if (x.outerStride() != in) xp = (copy = x).data();
  if (tokens < kGemmMinTokens) {
    for (int64_t t = 0; t < tokens; ++t) detail::gemv(w, xp + t * in, y.row(t).data());
  } else if (w.dtype == DType::BF16) {
    detail::gemm_bf16(reinterpret_cast<const uint16_t*>(w.data), out, in, xp, tokens, y.data());
  } else {
    detail::gemm(reinterpret_cast<const float*>(w.data), out, in, xp, tokens, y.data());
  }
  return y;
}

}  // namespace gemma3::fast
