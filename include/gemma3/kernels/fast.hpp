// The fast path: the same operations as kernels/reference.hpp, on the SIMD kernels
// (kernels/simd.hpp) and OpenMP. Float only; the double "gold" mode always runs the reference path.
//
// Determinism: work is split with static schedules and every output element is computed by one
// thread in a fixed order, so results do not depend on the number of threads at all.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <omp.h>

#include "gemma3/kernels/dispatch.hpp"
#include "gemma3/kernels/reference.hpp"
#include "gemma3/tensor.hpp"

namespace gemma3::fast {

// Below this many tokens a matrix product runs as one GEMV per token (weights streamed once per
// token); from here on, the packed GEMM (weights widened once per block, reused across tokens)
// wins.
inline constexpr int64_t kGemmMinTokens = 4;

// x [n] split into its even and odd elements, as GemvBf16 wants them (see widen_bf16_pairs in
// kernels/simd.hpp): even [(n + 1) / 2] = x[0::2], odd [n / 2 + 1] = x[1::2] (the last odd slot,
// if any is unused, is zero so that both arrays can be read as far as the kernel's shifted view).
inline void split_even_odd(const float* x, int64_t n, float* even, float* odd) {
  for (int64_t i = 0; i < n / 2; ++i) even[i] = x[2 * i], odd[i] = x[2 * i + 1];
  if (n % 2) even[n / 2] = x[n - 1];
  odd[n / 2] = 0.f;
}

namespace detail {
// y = W·x for one token: the rows of W split over threads in blocks (each weight byte read once;
// the static schedule gives each thread one contiguous range of rows, one sequential stream).
inline void gemv(const TensorView& w, const float* x, float* y) {
  const int64_t rows = w.rows(), in = w.cols();
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (rows + kBlock - 1) / kBlock;
  if (w.dtype == DType::BF16) {
    Vec<float> x_even((in + 1) / 2), x_odd(in / 2 + 1);
    split_even_odd(x, in, x_even.data(), x_odd.data());
    const auto* wp = reinterpret_cast<const uint16_t*>(w.data);
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t r0 = b * kBlock, n = std::min(kBlock, rows - r0);
      kernels::call(kernels::simd::GemvBf16{}, wp + r0 * in, n, in, x, x_even.data(), x_odd.data(),
                    y + r0);
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

// A float buffer aligned to 64 bytes (a cache line, an AVX-512 register), uninitialised.
struct AlignedFloats {
  explicit AlignedFloats(int64_t n) : storage(std::size_t(n) + 16) {
    void* p = storage.data();
    std::size_t space = storage.size() * sizeof(float);
    data = static_cast<float*>(std::align(64, std::size_t(n) * sizeof(float), p, space));
  }
  std::vector<float> storage;
  float* data = nullptr;
};

// Packs token panel p of X [tokens, in] into xp (kernels/simd_decl.hpp GemmLayout): the panel's
// k-th row holds X[t0 : t0 + width, k], tokens past the end are zero.
inline void pack_token_panel(const float* x, int64_t tokens, int64_t in,
                             kernels::simd::GemmLayout layout, int64_t p, float* xp) {
  const int64_t t_pad = (tokens + layout.lanes - 1) / layout.lanes * layout.lanes;
  const int64_t t0 = p * layout.panel, width = std::min(layout.panel, t_pad - t0);
  float* panel = xp + t0 * in;
  for (int64_t k = 0; k < in; ++k)
    for (int64_t j = 0; j < width; ++j)
      panel[k * width + j] = t0 + j < tokens ? x[(t0 + j) * in + k] : 0.f;
}

// Y [tokens, out] = X [tokens, in] · Wᵀ for many tokens (kernels/simd.hpp Gemm): X packed once into
// token panels (GemmLayout), blocks of weight rows split over threads, each widened to f32 once per
// k block and swept by the register tiles over all tokens; the transposed result (tokens along the
// lanes) is transposed back at the end.
template <class W>
void gemm(const W* w, int64_t out, int64_t in, const float* x, int64_t tokens, float* y) {
  using Kernel = kernels::simd::Gemm<W>;
  const kernels::simd::GemmLayout layout = kernels::call(kernels::simd::GemmTokenLayout{});
  const int64_t t_pad = (tokens + layout.lanes - 1) / layout.lanes * layout.lanes;
  const int64_t panels = (t_pad + layout.panel - 1) / layout.panel;
  const int64_t blocks = (out + Kernel::RB - 1) / Kernel::RB;
  AlignedFloats xp(t_pad * in), yt(out * t_pad);  // packed X; Yᵀ [out, t_pad]
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t p = 0; p < panels; ++p) pack_token_panel(x, tokens, in, layout, p, xp.data);
    std::vector<float> scratch(std::size_t(Kernel::RB * Kernel::KC));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t r0 = b * Kernel::RB, n = std::min(Kernel::RB, out - r0);
      kernels::call(Kernel{}, w + r0 * in, n, in, xp.data, t_pad, yt.data + r0 * t_pad, t_pad,
                    scratch.data());
    }
    // Y = Ytᵀ in blocks of 16 tokens: each row of Yt is read a cache line at a time and the 16 rows
    // of Y are written sequentially (a plain strided transpose missed the TLB on every element).
    constexpr int64_t kTb = 16;
#pragma omp for schedule(static)
    for (int64_t t0 = 0; t0 < tokens; t0 += kTb) {
      const int64_t tn = std::min(kTb, tokens - t0);
      for (int64_t r = 0; r < out; ++r)
        for (int64_t j = 0; j < tn; ++j) y[(t0 + j) * out + r] = yt.data[r * t_pad + t0 + j];
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
    detail::gemm(reinterpret_cast<const uint16_t*>(w.data), out, in, xp, tokens, y.data());
  } else {
    detail::gemm(reinterpret_cast<const float*>(w.data), out, in, xp, tokens, y.data());
  }
  return y;
}

}  // namespace gemma3::fast
