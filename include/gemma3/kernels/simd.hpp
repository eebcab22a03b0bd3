// The SIMD bodies of the hot kernels (declared in kernels/simd_decl.hpp), written once with xsimd
// and templated on the instruction set (Arch). kernels/dispatch.hpp picks the Arch: at compile time
// in header-only use, or at run time when the project links gemma3::kernels, which compiles these
// bodies once per instruction set (kernels/arch/*.cpp).
//
// Each functor has a plain twin (kernels/reference.hpp) and is tested against it. This header uses
// nothing but xsimd: it is compiled with -mavx512bw and the like, and a shared inline function
// compiled that way could otherwise be picked by the linker for code that runs on older CPUs (the
// helpers below are `static` for the same reason).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include <xsimd/xsimd.hpp>

#include "gemma3/kernels/simd_decl.hpp"

namespace gemma3::kernels::simd {

static inline float bf16_scalar(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
static inline float widen(float w) {
  return w;
}
static inline float widen(uint16_t w) {
  return bf16_scalar(w);
}

// A bf16 pair (w[2i], w[2i+1]) read as one little-endian u32: w[2i] is the low half. Shifting the
// low half up, or masking the high half, gives each as an f32 (bf16 is the top half of an f32), so
// any instruction set widens bf16 with two integer ops and no shuffles. The even and odd elements
// land in separate registers, so x is split the same way once per call (x_even = x[0::2], ...).
template <class Arch>
static inline void widen_bf16_pairs(const uint16_t* p, xsimd::batch<float, Arch>& even,
                                    xsimd::batch<float, Arch>& odd) {
  using u32 = xsimd::batch<uint32_t, Arch>;
  const u32 pairs = u32::load_unaligned(reinterpret_cast<const uint32_t*>(p));
  even = xsimd::bitwise_cast<xsimd::batch<float, Arch>>(u32(pairs << 16));
  odd = xsimd::bitwise_cast<xsimd::batch<float, Arch>>(u32(pairs & u32(0xffff0000u)));
}

// How far ahead of the weight row being read the GEMVs ask for memory: a decode GEMV is one
// sequential read of the matrix, and a software prefetch 4 KiB ahead (measured: 2-16 KiB all do)
// keeps enough cache-line misses in flight for one core to reach the read bandwidth of SumF32.
static constexpr int64_t kGemvPrefetchBytes = 4096;

// One row at a time, so that the matrix is read as one sequential stream (rows are contiguous):
// interleaving 4 rows, as an earlier version did to share the loads of x, made 4 short streams per
// group of rows; x_even/x_odd come from L1 anyway. Every weight byte is read once.
//
// The vector loop starts at the row's first 64-byte boundary (the elements before it are done in
// scalar): tensors in a checkpoint sit at arbitrary offsets, and a stream of loads that each
// straddle two cache lines reached only 0.55 of the read bandwidth against 1.0 aligned (measured,
// AVX-512). From an odd element on, the low half of each bf16 pair is an odd element of x: x_odd
// and x_even swap roles, shifted by one.
template <class Arch>
void GemvBf16::operator()(Arch, const uint16_t* w, int64_t rows, int64_t in, const float* x,
                          const float* x_even, const float* x_odd, float* y) const {
  using batch = xsimd::batch<float, Arch>;
  constexpr int64_t B = batch::size;
  constexpr int64_t kAlign =
      2 * B * int64_t(sizeof(uint16_t));  // bytes of one vector of bf16 pairs
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* row = w + r * in;
    const auto address = reinterpret_cast<uintptr_t>(row);
    int64_t head = address % 2 ? 0 : int64_t((kAlign - address % kAlign) % kAlign) / 2;
    head = head < in ? head : in;
    float s = 0.f;
    for (int64_t i = 0; i < head; ++i) s += bf16_scalar(row[i]) * x[i];
    const float* x_lo =
        head % 2 ? x_odd + (head - 1) / 2 : x_even + head / 2;  // pairs x with low halves
    const float* x_hi =
        head % 2 ? x_even + (head + 1) / 2 : x_odd + head / 2;  // ... and with high halves
    const int64_t end = head + ((in - head) / (2 * B)) * (2 * B);
    batch acc_lo(0.f), acc_hi(0.f);
    for (int64_t i = head, j = 0; i < end; i += 2 * B, j += B) {
      __builtin_prefetch(row + i + kGemvPrefetchBytes / 2, 0, 0);
      batch lo, hi;
      widen_bf16_pairs<Arch>(row + i, lo, hi);
      acc_lo = xsimd::fma(lo, batch::load_unaligned(x_lo + j), acc_lo);
      acc_hi = xsimd::fma(hi, batch::load_unaligned(x_hi + j), acc_hi);
    }
    s += xsimd::hadd(acc_lo + acc_hi);
    for (int64_t i = end; i < in; ++i) s += bf16_scalar(row[i]) * x[i];
    y[r] = s;
  }
}

template <class Arch>
void GemvF32::operator()(Arch, const float* w, int64_t rows, int64_t in, const float* x,
                         float* y) const {
  using batch = xsimd::batch<float, Arch>;
  constexpr int64_t B = batch::size;
  const int64_t end = (in / (2 * B)) * (2 * B);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = w + r * in;
    batch acc0(0.f), acc1(0.f);
    for (int64_t i = 0; i < end; i += 2 * B) {
      __builtin_prefetch(row + i + kGemvPrefetchBytes / 4, 0, 0);
      acc0 = xsimd::fma(batch::load_unaligned(row + i), batch::load_unaligned(x + i), acc0);
      acc1 = xsimd::fma(batch::load_unaligned(row + i + B), batch::load_unaligned(x + i + B), acc1);
    }
    float s = xsimd::hadd(acc0 + acc1);
    for (int64_t i = end; i < in; ++i) s += row[i] * x[i];
    y[r] = s;
  }
}

template <class Arch>
int64_t GemmPanelWidth::operator()(Arch) const {
  return 2 * int64_t(xsimd::batch<float, Arch>::size);
}

// The GEMM micro-kernel: C[MR, NR] += A[MR, kc] · P[kc, NR], A row-major with leading dimension
// lda, P a packed panel, C with leading dimension ldc. NR is two registers wide, so MR·2
// accumulators stay in registers for the whole kc loop (register blocking); each step broadcasts
// one element of each row of A and issues 2·MR FMAs.
template <int MR, class Arch>
static inline void gemm_micro(const float* a, int64_t lda, const float* panel, int64_t kc, float* c,
                              int64_t ldc, int64_t cols) {
  using batch = xsimd::batch<float, Arch>;
  constexpr int64_t B = batch::size;
  batch acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = batch(0.f);
  for (int64_t k = 0; k < kc; ++k) {
    const batch b0 = batch::load_unaligned(panel + k * 2 * B),
                b1 = batch::load_unaligned(panel + k * 2 * B + B);
    for (int i = 0; i < MR; ++i) {
      const batch ai(a[i * lda + k]);
      acc[i][0] = xsimd::fma(ai, b0, acc[i][0]);
      acc[i][1] = xsimd::fma(ai, b1, acc[i][1]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    if (cols == 2 * B) {
      (batch::load_unaligned(ci) + acc[i][0]).store_unaligned(ci);
      (batch::load_unaligned(ci + B) + acc[i][1]).store_unaligned(ci + B);
    } else {
      alignas(64) float tmp[2 * B];
      acc[i][0].store_unaligned(tmp);
      acc[i][1].store_unaligned(tmp + B);
      for (int64_t j = 0; j < cols; ++j) ci[j] += tmp[j];
    }
  }
}

// K is cut into blocks of KC: each block of the panel is packed (widened to f32 and transposed to
// [KC, NR]) into `scratch`, small enough to stay in L1/L2, then swept by the micro-kernel over
// every MR-row tile of X (cache blocking).
template <class W>
template <class Arch>
void GemmPanel<W>::operator()(Arch, const W* w, int64_t cols, const float* x, int64_t T, int64_t K,
                              float* y, int64_t ldy, float* scratch) const {
  const int64_t NR = 2 * int64_t(xsimd::batch<float, Arch>::size);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < cols; ++c) y[t * ldy + c] = 0.f;
  for (int64_t k0 = 0; k0 < K; k0 += KC) {
    const int64_t kc = K - k0 < KC ? K - k0 : KC;
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t c = 0; c < NR; ++c)
        scratch[k * NR + c] = c < cols ? widen(w[c * K + k0 + k]) : 0.f;
    int64_t t = 0;
    for (; t + MR <= T; t += MR)
      gemm_micro<MR, Arch>(x + t * K + k0, K, scratch, kc, y + t * ldy, ldy, cols);
    for (; t < T; ++t) gemm_micro<1, Arch>(x + t * K + k0, K, scratch, kc, y + t * ldy, ldy, cols);
  }
}

// A TM x RN tile of dot products over k in [k0, k1) (k0, k1 multiples of 2B, except the last block
// whose tail is done in scalar): TM tokens share each weight load, RN weight rows share each X
// load; TM·RN accumulators stay in registers and are reduced (hadd) once per k block.
template <int TM, int RN, class Arch>
static inline void gemm_dot_tile(const uint16_t* const* wrow, const float* xe, const float* xo,
                                 int64_t half_k, int64_t k0, int64_t k1, float* y, int64_t ldy) {
  using batch = xsimd::batch<float, Arch>;
  constexpr int64_t B = batch::size;
  batch acc[TM][RN];
  for (int t = 0; t < TM; ++t)
    for (int r = 0; r < RN; ++r) acc[t][r] = batch(0.f);
  const int64_t vec_end = k0 + ((k1 - k0) / (2 * B)) * (2 * B);
  for (int64_t k = k0; k < vec_end; k += 2 * B) {
    batch we[RN], wo[RN];
    for (int r = 0; r < RN; ++r) widen_bf16_pairs<Arch>(wrow[r] + k, we[r], wo[r]);
    for (int t = 0; t < TM; ++t) {
      const batch e = batch::load_unaligned(xe + t * half_k + k / 2),
                  o = batch::load_unaligned(xo + t * half_k + k / 2);
      for (int r = 0; r < RN; ++r)
        acc[t][r] = xsimd::fma(we[r], e, xsimd::fma(wo[r], o, acc[t][r]));
    }
  }
  for (int t = 0; t < TM; ++t)
    for (int r = 0; r < RN; ++r) {
      float s = xsimd::hadd(acc[t][r]);
      for (int64_t k = vec_end; k < k1; ++k)
        s += bf16_scalar(wrow[r][k]) * (k % 2 ? xo[t * half_k + k / 2] : xe[t * half_k + k / 2]);
      y[t * ldy + r] += s;
    }
}

template <class Arch>
void GemmDotBf16::operator()(Arch, const uint16_t* w, int64_t rows, int64_t K, const float* x_even,
                             const float* x_odd, int64_t T, float* y, int64_t ldy) const {
  constexpr int TM = 4, RN = 3;
  const int64_t half_k = (K + 1) / 2;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t r = 0; r < rows; ++r) y[t * ldy + r] = 0.f;
  for (int64_t r0 = 0; r0 < rows; r0 += RB) {
    const int64_t r1 = r0 + RB < rows ? r0 + RB : rows;
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
      const int64_t k1 = k0 + KC < K ? k0 + KC : K;
      int64_t t = 0;
      for (; t < T; t += TM) {
        const int64_t tm = T - t < TM ? T - t : TM;
        const float* xe = x_even + t * half_k;
        const float* xo = x_odd + t * half_k;
        int64_t r = r0;
        for (; r + RN <= r1; r += RN) {
          const uint16_t* wrow[RN] = {w + r * K, w + (r + 1) * K, w + (r + 2) * K};
          if (tm == TM)
            gemm_dot_tile<TM, RN, Arch>(wrow, xe, xo, half_k, k0, k1, y + t * ldy + r, ldy);
          else
            for (int64_t u = 0; u < tm; ++u)
              gemm_dot_tile<1, RN, Arch>(wrow, xe + u * half_k, xo + u * half_k, half_k, k0, k1,
                                         y + (t + u) * ldy + r, ldy);
        }
        for (; r < r1; ++r) {
          const uint16_t* wrow[1] = {w + r * K};
          for (int64_t u = 0; u < tm; ++u)
            gemm_dot_tile<1, 1, Arch>(wrow, xe + u * half_k, xo + u * half_k, half_k, k0, k1,
                                      y + (t + u) * ldy + r, ldy);
        }
      }
    }
  }
}

// Online softmax (running max m, running sum l, unnormalised output o), so nothing grows with the
// number of keys: for each key j, s = scale·q·k_j (soft-capped if cap > 0), m' = max(m, s),
// o = o·e^(m-m') + e^(s-m')·v_j, l = l·e^(m-m') + e^(s-m'); finally o / l.
template <class Arch>
void AttendQuery::operator()(Arch, const float* q, int64_t d, const KeySegment* segs,
                             int64_t n_segs, float scale, float cap, float* out) const {
  using batch = xsimd::batch<float, Arch>;
  constexpr int64_t B = batch::size;
  const int64_t end = (d / B) * B;
  float m = -__builtin_inff(), l = 0.f;
  for (int64_t i = 0; i < d; ++i) out[i] = 0.f;
  for (int64_t s = 0; s < n_segs; ++s) {
    const KeySegment& seg = segs[s];
    for (int64_t j = 0; j < seg.count; ++j) {
      const float* k = seg.k + j * seg.stride;
      const float* v = seg.v + j * seg.stride;
      batch acc(0.f);
      for (int64_t i = 0; i < end; i += B)
        acc = xsimd::fma(batch::load_unaligned(q + i), batch::load_unaligned(k + i), acc);
      float score = xsimd::hadd(acc);
      for (int64_t i = end; i < d; ++i) score += q[i] * k[i];
      score *= scale;
      if (cap > 0.f) score = cap * __builtin_tanhf(score / cap);
      const float m_new = score > m ? score : m;
      const float correction = __builtin_expf(m - m_new), p = __builtin_expf(score - m_new);
      l = l * correction + p;
      m = m_new;
      const batch bc(correction), bp(p);
      for (int64_t i = 0; i < end; i += B)
        xsimd::fma(batch::load_unaligned(out + i), bc, bp * batch::load_unaligned(v + i))
            .store_unaligned(out + i);
      for (int64_t i = end; i < d; ++i) out[i] = out[i] * correction + p * v[i];
    }
  }
  const float inv = 1.f / l;
  for (int64_t i = 0; i < d; ++i) out[i] *= inv;
}

// 12 independent accumulators cover the FMA latency × throughput of current x86 and ARM cores.
template <class Arch>
double FmaPeak::operator()(Arch, int64_t iterations, float* sink) const {
  using batch = xsimd::batch<float, Arch>;
  constexpr int kChains = 12;
  batch acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = batch(float(c) * 1e-3f);
  const batch a(0.999999f), b(1e-7f);
  for (int64_t i = 0; i < iterations; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = xsimd::fma(acc[c], a, b);
  batch total(0.f);
  for (int c = 0; c < kChains; ++c) total += acc[c];
  *sink = xsimd::hadd(total);  // keeps the loop alive
  return 2.0 * double(iterations) * kChains * double(batch::size);
}

template <class Arch>
float SumF32::operator()(Arch, const float* x, int64_t n) const {
  using batch = xsimd::batch<float, Arch>;
  constexpr int64_t B = batch::size;
  batch acc[4] = {batch(0.f), batch(0.f), batch(0.f), batch(0.f)};
  int64_t i = 0;
  for (; i + 4 * B <= n; i += 4 * B)
    for (int k = 0; k < 4; ++k) acc[k] += batch::load_unaligned(x + i + k * B);
  float s = xsimd::hadd((acc[0] + acc[1]) + (acc[2] + acc[3]));
  for (; i < n; ++i) s += x[i];
  return s;
}

}  // namespace gemma3::kernels::simd
