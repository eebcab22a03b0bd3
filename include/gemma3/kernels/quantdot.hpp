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

// Σ b[g]·e[g]: the groups' offsets times the activations' scaled sums.
static inline float offsets(const float* b, const float* e, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t g = 0;
  for (; g + 8 <= n; g += 8)
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(b + g), _mm256_loadu_ps(e + g), acc);
  float sum = sum8(acc);
  for (; g < n; ++g) sum += b[g] * e[g];
  return sum;
}

// One unpacked row (q, a, b) times NT tokens from t0: per 32 elements, the row's bytes loaded once
// and one vpdpbusd per token, its sums scaled by d_t·a_g and added into the token's accumulator.
template <quant::Type T, int NT>
static inline void tile(const uint8_t* q, const float* a, const float* b, int64_t in,
                        const simd::QuantX& x, int64_t t0, float* y, int64_t ldy) {
  constexpr bool g16 = quant::layout(T).group == 16;
  const int64_t chunks = in / 32;
  __m256 acc[NT];
  for (int u = 0; u < NT; ++u) acc[u] = _mm256_setzero_ps();
  for (int64_t c = 0; c < chunks; ++c) {
    const __m256i qv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * c));
    // Lanes 0-3 hold the sums of the chunk's first 16 elements, 4-7 of the second 16.
    const __m256 sa =
        g16 ? _mm256_set_m128(_mm_broadcast_ss(a + 2 * c + 1), _mm_broadcast_ss(a + 2 * c))
            : _mm256_broadcast_ss(a + c);
    for (int u = 0; u < NT; ++u) {
      const int64_t t = t0 + u;
      const __m256i xv =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q + t * in + 32 * c));
      const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), qv, xv);
      const __m256 scale = _mm256_mul_ps(sa, _mm256_broadcast_ss(x.d + t * chunks + c));
      acc[u] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), scale, acc[u]);
    }
  }
  for (int u = 0; u < NT; ++u) {
    const int64_t t = t0 + u;
    const float off =
        g16 ? offsets(b, x.e16 + t * (in / 16), in / 16) : offsets(b, x.e32 + t * chunks, chunks);
    y[t * ldy] = sum8(acc[u]) + off;
  }
}
}  // namespace detail

// Tokens go four at a time: a row's 32 bytes of q are loaded once for four dot products.
GEMMA3_QUANTDOT_LINKAGE void rows(quant::Type type, const std::byte* w, int64_t rows, int64_t in,
                                  const simd::QuantX& x, int64_t tokens, float* y, int64_t ldy,
                                  uint8_t* q, float* ab) {
  quant::with_type(type, [&](auto T) {
    constexpr quant::Layout L = quant::layout(T.value);
    const int64_t groups = in / L.group, stride = quant::row_bytes(T.value, in);
    float* a = ab;
    float* b = ab + groups;
    for (int64_t r = 0; r < rows; ++r, w += stride, ++y) {
      quant::unpack_row<T.value, Tag>(w, in, q, a, b);
      int64_t t0 = 0;
      for (; t0 + 4 <= tokens; t0 += 4) detail::tile<T.value, 4>(q, a, b, in, x, t0, y, ldy);
      switch (tokens - t0) {
        case 3:
          detail::tile<T.value, 3>(q, a, b, in, x, t0, y, ldy);
          break;
        case 2:
          detail::tile<T.value, 2>(q, a, b, in, x, t0, y, ldy);
          break;
        case 1:
          detail::tile<T.value, 1>(q, a, b, in, x, t0, y, ldy);
          break;
      }
    }
  });
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
