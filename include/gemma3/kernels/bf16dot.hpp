// The prefill GEMM on bf16 dot products: AVX512-BF16's vdpbf16ps multiplies 32 pairs of bf16
// numbers exactly and adds each pair's two products into one of 16 f32 accumulators, twice the
// work of an f32 FMA per instruction. It needs both operands in bf16, so the activations are
// rounded to bf16 first (Backend::FastBf16, the way a bf16 checkpoint's matrix products run in
// PyTorch or llama.cpp); the weights are used as published, read straight from the checkpoint.
//
// Declarations here, for every build; the bodies only where the compiler targets AVX512-BF16: in
// src/kernels/arch/avx512bf16.cpp (gemma3::kernels, chosen at run time when the CPU has it) or
// inline in a header-only build with -mavx512bf16 (e.g. -march=native on such a CPU). Raw
// intrinsics, not xsimd: xsimd has no bf16 dot product.
#pragma once

#include "gemma3/build_mode.hpp"

#include <cstdint>

#include "gemma3/kernels/simd_decl.hpp"

#if defined(__AVX512BF16__) && defined(__AVX512F__)
#include <immintrin.h>
#define GEMMA3_BF16DOT_BODIES 1
#endif

#if GEMMA3_KERNEL_DISPATCH
#define GEMMA3_BF16DOT_LINKAGE  // one definition, in src/kernels/arch/avx512bf16.cpp
#else
#define GEMMA3_BF16DOT_LINKAGE inline
#endif

namespace gemma3::kernels::bf16dot {

// Whether this build has the kernels at all (the CPU may still lack the instruction: see
// fast::bf16_dot_available).
#if (GEMMA3_KERNEL_DISPATCH && (defined(__x86_64__) || defined(_M_X64))) || GEMMA3_BF16DOT_BODIES
inline constexpr bool kBuilt = true;
#else
inline constexpr bool kBuilt = false;
#endif

// X [T, K] (K even) rounded to bf16 and packed in panels of kPanel tokens, the tokens along the
// vector lanes: the panel of token t0 (t0 a multiple of kPanel) starts at xp + t0·K/2 and holds,
// for each pair index kk < K/2, `width` u32s (width = min(kPanel, T_pad - t0), T_pad = T rounded
// up to kLanes, padding zero), the u32 of token t holding X[t, 2kk] in its low half and
// X[t, 2kk + 1] in its high half: the order of a bf16 pair of W read as one little-endian u32.
inline constexpr int64_t kLanes = 16;          // f32 accumulators per register
inline constexpr int64_t kPanel = 4 * kLanes;  // tokens per register tile
inline constexpr int64_t kRowBlock = 96;       // rows of W per task: 96 x KC bf16 (48 KiB) in L2
inline constexpr int64_t kKBlock = 256;  // k per block: a panel's KC/2 x 64 u32 (32 KiB) in L1

// Packs the panel of tokens [t0, t0 + kPanel) of X [tokens, K] (K even) into `panel` (the layout
// above), rounding to bf16 (to nearest even; vcvtne2ps2bf16 flushes f32 subnormals to zero, as
// vdpbf16ps would treat them anyway).
GEMMA3_BF16DOT_LINKAGE void pack(const float* x, int64_t tokens, int64_t K, int64_t T_pad,
                                 int64_t t0, uint32_t* panel);

// y[t, r] = Σ_k W[r, k]·X[t, k] for rows [0, rows) of a bf16 W [rows, K] (K even, rows <=
// kRowBlock) and tokens [0, tokens) of xp (packed as above, T_pad tokens); y has leading dimension
// ldy (so the rows of a block of a bigger matrix are y + r0). `partial` [rows, T_pad] holds the
// sums between blocks of k; the last block writes y, adding bias[r] to row r (bias: the block's
// own rows, or null). Each sum runs over k in order, in f32 (every product exact), whatever the
// tiling.
GEMMA3_BF16DOT_LINKAGE void gemm(const uint16_t* w, int64_t rows, int64_t K, const uint32_t* xp,
                                 int64_t tokens, int64_t T_pad, float* partial, float* y,
                                 int64_t ldy, const float* bias);

// Runs `iterations` rounds of independent vdpbf16ps chains and returns the floating-point
// operations done (4 per f32 lane per instruction: two products, two sums): the bf16 dot peak.
GEMMA3_BF16DOT_LINKAGE double peak(int64_t iterations, float* sink);

#if GEMMA3_BF16DOT_BODIES
namespace detail {
// The register tile: MR rows x NV vectors of 16 tokens, MR·NV accumulators (6 x 4 = 24 of the 32
// registers). Per pair of k: NV loads of X, MR broadcasts of a W pair (embedded in the
// instruction), MR·NV vdpbf16ps.
//
// Between blocks of k the sums wait in the row block's partial sums; the last block writes them to
// y transposed (simd::GemmTileOut).
template <int MR, int NV>
static inline void tile(const uint16_t* w, int64_t K, const uint32_t* xp, int64_t kc2,
                        const simd::GemmTileOut& o, bool first) {
  __m512 acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v)
      acc[i][v] =
          first ? _mm512_setzero_ps() : _mm512_loadu_ps(o.partial + i * o.ld_partial + v * kLanes);
  for (int64_t kk = 0; kk < kc2; ++kk) {
    __m512bh x[NV];
    for (int v = 0; v < NV; ++v)
      x[v] = (__m512bh)_mm512_loadu_si512(xp + kk * NV * kLanes + v * kLanes);
    for (int i = 0; i < MR; ++i) {
      uint32_t pair;
      __builtin_memcpy(&pair, w + i * K + 2 * kk, 4);
      const __m512bh wi = (__m512bh)_mm512_set1_epi32(int(pair));
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], wi, x[v]);
    }
  }
  if (!o.y) {
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < NV; ++v)
        _mm512_storeu_ps(o.partial + i * o.ld_partial + v * kLanes, acc[i][v]);
    return;
  }
  alignas(64) float out[MR][NV * kLanes];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v)
      _mm512_store_ps(out[i] + v * kLanes,
                      o.bias ? _mm512_add_ps(acc[i][v], _mm512_set1_ps(o.bias[i])) : acc[i][v]);
  for (int64_t t = 0; t < o.valid; ++t)
    for (int i = 0; i < MR; ++i) o.y[t * o.ldy + i] = out[i][t];
}

// tile() with run-time tails: mr <= MR rows, nv <= NV vectors.
template <int MR, int NV>
static inline void tile_tail(int64_t mr, int64_t nv, const uint16_t* w, int64_t K,
                             const uint32_t* xp, int64_t kc2, const simd::GemmTileOut& o,
                             bool first) {
  if constexpr (MR > 0 && NV > 0) {
    if (mr < MR) return tile_tail<MR - 1, NV>(mr, nv, w, K, xp, kc2, o, first);
    if (nv < NV) return tile_tail<MR, NV - 1>(mr, nv, w, K, xp, kc2, o, first);
    tile<MR, NV>(w, K, xp, kc2, o, first);
  }
}
inline constexpr int kMR = 6, kNV = int(kPanel / kLanes);
}  // namespace detail

// BLIS-style loops as in simd::Gemm, less its packing of W: vdpbf16ps takes W's bf16 pairs as
// published, so the row block is read in place (its KC x 96 rows stay in L2 while the tiles sweep
// every token panel).
GEMMA3_BF16DOT_LINKAGE void gemm(const uint16_t* w, int64_t rows, int64_t K, const uint32_t* xp,
                                 int64_t tokens, int64_t T_pad, float* partial, float* y,
                                 int64_t ldy, const float* bias) {
  using namespace detail;
  for (int64_t k0 = 0; k0 < K; k0 += kKBlock) {
    const int64_t kc = K - k0 < kKBlock ? K - k0 : kKBlock;
    const bool last = k0 + kc == K;
    for (int64_t t0 = 0; t0 < T_pad; t0 += kPanel) {
      const int64_t width = T_pad - t0 < kPanel ? T_pad - t0 : kPanel;
      const uint32_t* xb = xp + t0 * (K / 2) + (k0 / 2) * width;  // pairs k0/2 .. of this panel
      const int64_t valid = tokens - t0 < width ? tokens - t0 : width;
      for (int64_t r = 0; r < rows; r += kMR) {
        const int64_t mr = rows - r < kMR ? rows - r : kMR;
        const uint16_t* wb = w + r * K + k0;
        const simd::GemmTileOut o{
            partial + r * T_pad + t0, T_pad, last ? y + t0 * ldy + r : nullptr, ldy, valid, false,
            bias ? bias + r : nullptr};
        if (mr == kMR && width == kPanel)
          tile<kMR, kNV>(wb, K, xb, kc / 2, o, k0 == 0);
        else
          tile_tail<kMR, kNV>(mr, width / kLanes, wb, K, xb, kc / 2, o, k0 == 0);
      }
    }
  }
}

// Per block of 16 tokens x 16 pairs: each token's 32 floats loaded (masked at the end of K),
// rounded into 16 pairs by one vcvtne2ps2bf16, then the block transposed into the panel.
GEMMA3_BF16DOT_LINKAGE void pack(const float* x, int64_t tokens, int64_t K, int64_t T_pad,
                                 int64_t t0, uint32_t* panel) {
  const int64_t width = T_pad - t0 < kPanel ? T_pad - t0 : kPanel, pairs = K / 2;
  alignas(64) uint32_t block[kLanes][kLanes];  // [token][pair]
  for (int64_t j0 = 0; j0 < width; j0 += kLanes)
    for (int64_t kk0 = 0; kk0 < pairs; kk0 += kLanes) {
      const int64_t n = pairs - kk0 < kLanes ? pairs - kk0 : kLanes;  // pairs in this block
      const int64_t floats = 2 * n;
      const __mmask16 lo = __mmask16(floats >= 16 ? 0xffff : (1u << floats) - 1);
      const __mmask16 hi = __mmask16(floats >= 32  ? 0xffff
                                     : floats > 16 ? (1u << (floats - 16)) - 1
                                                   : 0);
      for (int64_t j = 0; j < kLanes; ++j) {
        const int64_t t = t0 + j0 + j;
        __m512i rounded = _mm512_setzero_si512();
        if (t < tokens) {
          const float* row = x + t * K + 2 * kk0;
          rounded = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, row + 16),
                                                 _mm512_maskz_loadu_ps(lo, row));
        }
        _mm512_store_si512(block[j], rounded);
      }
      for (int64_t u = 0; u < n; ++u)
        for (int64_t j = 0; j < kLanes; ++j) panel[(kk0 + u) * width + j0 + j] = block[j][u];
    }
}

// 12 independent chains cover the instruction's latency x throughput.
GEMMA3_BF16DOT_LINKAGE double peak(int64_t iterations, float* sink) {
  constexpr int kChains = 12;
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(float(c) * 1e-3f);
  const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80);  // the pair (1, 1)
  const __m512bh b = (__m512bh)_mm512_set1_epi32(0x33d633d6);  // the pair (1e-7, 1e-7)
  for (int64_t i = 0; i < iterations; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
  __m512 total = _mm512_setzero_ps();
  for (int c = 0; c < kChains; ++c) total = _mm512_add_ps(total, acc[c]);
  *sink = _mm512_reduce_add_ps(total);  // keeps the loop alive
  return 4.0 * double(iterations) * kChains * double(kLanes);
}
#endif

}  // namespace gemma3::kernels::bf16dot
