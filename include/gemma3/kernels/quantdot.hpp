// Products with block-quantized weights on AVX512-VNNI: vpdpbusd multiplies 32 unsigned bytes (a
// weight group's q) by 32 signed bytes (the quantized activations) and adds each four products into
// one of 8 int32 lanes, exactly, in one instruction. The integer sums of a group are then converted
// and scaled once (d_x·a_g), and the group's offset b_g enters through the activations' sums, as in
// the portable kernel (kernels::simd::QuantRows, the same contract and scratch; quant.hpp for the
// form). Only the order of the float additions differs.
//
// Declarations here, for every build; the bodies only where the compiler targets AVX512-VNNI: in
// src/kernels/arch/avx512vnni.cpp (gemma3::kernels, chosen at run time when the CPU has it) or
// inline in a header-only build with -mavx512vnni (e.g. -march=native on such a CPU). Raw
// intrinsics, not xsimd: xsimd has no integer dot product.
#pragma once

#include "gemma3/build_mode.hpp"

#include <cstdint>

#include "gemma3/kernels/simd_decl.hpp"
#include "gemma3/quant.hpp"

#if defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512F__)
#include <immintrin.h>
#define GEMMA3_QUANTDOT_BODIES 1
#endif

#if GEMMA3_KERNEL_DISPATCH
#define GEMMA3_QUANTDOT_LINKAGE  // one definition, in src/kernels/arch/avx512vnni.cpp
#else
#define GEMMA3_QUANTDOT_LINKAGE inline
#endif

namespace gemma3::kernels::quantdot {

// Whether this build has the kernel at all (the CPU may still lack the instruction: see
// fast::vnni_available).
#if (GEMMA3_KERNEL_DISPATCH && (defined(__x86_64__) || defined(_M_X64))) || GEMMA3_QUANTDOT_BODIES
inline constexpr bool kBuilt = true;
#else
inline constexpr bool kBuilt = false;
#endif

// kernels::simd::QuantRows on vpdpbusd.
GEMMA3_QUANTDOT_LINKAGE void rows(quant::Type type, const std::byte* w, int64_t rows, int64_t in,
                                  const simd::QuantX& x, int64_t tokens, float* y, int64_t ldy,
                                  uint8_t* q, float* ab);

// The int8 dot-product peak: independent vpdpbusd chains in registers; returns the integer
// operations done (2 per byte pair: a multiply and an add).
GEMMA3_QUANTDOT_LINKAGE double peak(int64_t iterations, float* sink);

#if GEMMA3_QUANTDOT_BODIES
struct Tag {};  // quant::unpack's copy for this translation unit

namespace detail {
static inline float sum8(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}
}  // namespace detail

// Tokens go four at a time: a row's 32 bytes of q are loaded once for four dot products.
GEMMA3_QUANTDOT_LINKAGE void rows(quant::Type type, const std::byte* w, int64_t rows, int64_t in,
                                  const simd::QuantX& x, int64_t tokens, float* y, int64_t ldy,
                                  uint8_t* q, float* ab) {
  constexpr int64_t kTokens = 4;
  const quant::Layout L = quant::layout(type);
  const int64_t groups = in / L.group, per_block = L.block_elements / L.group;
  const int64_t stride = quant::row_bytes(type, in), chunks = in / 32;
  float* a = ab;
  float* b = ab + groups;
  for (int64_t r = 0; r < rows; ++r, w += stride, ++y) {
    for (int64_t blk = 0; blk < in / L.block_elements; ++blk)
      quant::unpack<Tag>(type, w + blk * L.block_bytes, q + blk * L.block_elements,
                         a + blk * per_block, b + blk * per_block);
    for (int64_t t0 = 0; t0 < tokens; t0 += kTokens) {
      const int64_t nt = tokens - t0 < kTokens ? tokens - t0 : kTokens;
      __m256 acc[kTokens];
      float offset[kTokens];
      for (int64_t u = 0; u < nt; ++u) acc[u] = _mm256_setzero_ps(), offset[u] = 0.f;
      for (int64_t c = 0; c < chunks; ++c) {  // 32 elements: one group, or two of Q6_K's
        const __m256i qv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * c));
        for (int64_t u = 0; u < nt; ++u) {
          const int64_t t = t0 + u;
          const __m256i xv =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q + t * in + 32 * c));
          const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), qv, xv);
          const float d = x.d[t * chunks + c];
          const int32_t* s = x.s + t * (in / 16) + 2 * c;
          __m256 scale;
          if (L.group == 32) {
            scale = _mm256_set1_ps(d * a[c]);
            offset[u] += d * (b[c] * float(s[0] + s[1]));
          } else {  // lanes 0-3 hold the first 16 elements' sums, 4-7 the second's
            scale = _mm256_set_m128(_mm_set1_ps(d * a[2 * c + 1]), _mm_set1_ps(d * a[2 * c]));
            offset[u] += d * (b[2 * c] * float(s[0]) + b[2 * c + 1] * float(s[1]));
          }
          acc[u] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), scale, acc[u]);
        }
      }
      for (int64_t u = 0; u < nt; ++u) y[(t0 + u) * ldy] = detail::sum8(acc[u]) + offset[u];
    }
  }
}

GEMMA3_QUANTDOT_LINKAGE double peak(int64_t iterations, float* sink) {
  constexpr int kChains = 12;
  __m512i acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_epi32(c);
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-1);
  for (int64_t i = 0; i < iterations; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_dpbusd_epi32(acc[c], a, b);
  __m512i total = _mm512_setzero_si512();
  for (int c = 0; c < kChains; ++c) total = _mm512_add_epi32(total, acc[c]);
  *sink = float(_mm512_reduce_add_epi32(total));  // keeps the loop alive
  return 2.0 * 64.0 * double(iterations) * kChains;
}
#endif

}  // namespace gemma3::kernels::quantdot
