// Products with block-quantized weights on AVX512-VNNI: vpdpbusd multiplies unsigned bytes (a
// weight group's q) by signed bytes (the quantized activations) and adds each four products into
// one int32 lane, exactly, in one instruction. The integer sums of a group are then converted and
// scaled once (d_x·a_g), and the group's offset b_g enters through the activations' sums, as in
// the portable kernel (kernels::simd::QuantRows, the same contract with more scratch; quant.hpp
// for the form). Only the order of the float additions differs.
//
// Declarations here, for every build; the bodies only where the compiler targets AVX512-VNNI: in
// src/kernels/arch/avx512vnni.cpp (gemma3::kernels, chosen at run time when the CPU has it) or
// inline in a header-only build with -mavx512vnni (e.g. -march=native on such a CPU). Raw
// intrinsics, not xsimd: xsimd has no integer dot product.
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <utility>

#include "gemma3/kernels/simd_decl.hpp"
#include "gemma3/quant.hpp"

#if defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512BW__) && \
    defined(__AVX512F__)
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

// kernels::simd::QuantRows on vpdpbusd, with more scratch: q of scratch_bytes(in) bytes and ab of
// scratch_floats(in) floats. Up to kFusedTokens tokens, each block is decoded in registers
// (decode); more tokens go through panels of 16 rows unpacked and transposed once for all of them
// (prefill).
GEMMA3_QUANTDOT_LINKAGE void rows(quant::Type type, const std::byte* w, int64_t rows, int64_t in,
                                  const simd::QuantX& x, int64_t tokens, float* y, int64_t ldy,
                                  uint8_t* q, float* ab);
// Decode (1 to kFusedTokens tokens) on rows interleaved in panels (quant::interleave_panel; the
// types quant::interleavable, others are not read): `rows`, a multiple of kPanelRows, at w.
GEMMA3_QUANTDOT_LINKAGE void panels(quant::Type type, const std::byte* w, int64_t rows, int64_t in,
                                    const simd::QuantX& x, int64_t tokens, float* y, int64_t ldy);
// Prefill (more than kFusedTokens tokens) on rows interleaved in panels, the same values as rows()
// on them in file order: `rows`, a multiple of kPanelRows, at w; scratch as rows().
GEMMA3_QUANTDOT_LINKAGE void panels_gemm(quant::Type type, const std::byte* w, int64_t rows,
                                         int64_t in, const simd::QuantX& x, int64_t tokens,
                                         float* y, int64_t ldy, uint8_t* q, float* ab);
inline constexpr int64_t kFusedTokens = 4;  // up to this many tokens, decode's fused kernel
inline constexpr int64_t kPanelRows = quant::kPanelRows;  // one 512-bit register of int32 sums
inline constexpr int64_t kGemmRows = 2 * kPanelRows;      // prefill: two panels side by side
inline constexpr int64_t scratch_bytes(int64_t in) {
  return 3 * kPanelRows * in;  // one panel row-wise, two packed
}
inline constexpr int64_t scratch_floats(int64_t in) {
  return 4 * in + in / 8;  // a and b of two panels, a row's a and b
}

// The int8 dot-product peak: independent vpdpbusd chains in registers; returns the integer
// operations done (2 per byte pair: a multiply and an add).
GEMMA3_QUANTDOT_LINKAGE double peak(int64_t iterations, float* sink);

// quant::quantize_activation_row in AVX-512 registers, a block of 32 at a time: the same q, d, s,
// e16 and e32 (the same maximum on the bit patterns, the same product x·scale·id rounded to the
// nearest integer, ties to even). Portable code quantized a prefill's activations at ~1.4 ns per
// element (10% of it).
GEMMA3_QUANTDOT_LINKAGE void quantize_row(const float* x, int64_t in,
                                          const quant::QuantizedRow& out);

#if GEMMA3_QUANTDOT_BODIES
struct Tag {};  // quant::unpack's copy for this translation unit

namespace detail {

static inline __m256i load32(const uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
// The 16 bytes at p in both 128-bit halves.
static inline __m256i load16_twice(const uint8_t* p) {
  return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
// The 4 bytes at p (an activation's 4 elements) in every 32-bit lane.
static inline __m512i broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}
// Two 256-bit registers as one 512-bit register, lo in the low half.
static inline __m512i join(__m256i lo, __m256i hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
// Lane j of the result is lane j / (16 / N) + first of v: N values, each spread over its lanes.
template <int N, int first = 0>
static inline __m512 spread(__m512 v) {
  alignas(64) static constexpr auto kIndex = [] {
    std::array<int32_t, 16> index{};
    for (int j = 0; j < 16; ++j) index[std::size_t(j)] = first + j / (16 / N);
    return index;
  }();
  return _mm512_permutexvar_ps(_mm512_load_si512(kIndex.data()), v);
}

// The types with blocks of 32 elements and one scale (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1): where in the
// block the q bytes begin, and block u's q as 32 unsigned bytes in element order (the layouts are
// quant.hpp's; unpack_block is the same in scalar code).
template <quant::Type T>
inline constexpr int kQs = T == quant::Type::Q8_0   ? 2
                           : T == quant::Type::Q4_0 ? 2
                           : T == quant::Type::Q4_1 ? 4
                           : T == quant::Type::Q5_0 ? 6
                                                    : 8;
// Q4_0, Q4_1 and Q4_K leave the high nibbles in place, masked but not shifted: their products
// come out 16 times too large (at most 240·127·4 per int32 lane, exact), and the scales of those
// groups carry the 1/16 instead (exact: a power of two). One operation less per 64 elements.
template <quant::Type T>
inline constexpr bool kHighInPlace =
    T == quant::Type::Q4_0 || T == quant::Type::Q4_1 || T == quant::Type::Q4_K;
// The bytes of a 256-bit register that hold q: the low nibbles of the lower 128 bits, the high
// nibbles (in place) of the upper.
static inline __m256i nibbles_in_place() {
  return _mm256_set_epi64x(-0x0f0f0f0f0f0f0f10, -0x0f0f0f0f0f0f0f10, 0x0f0f0f0f0f0f0f0f,
                           0x0f0f0f0f0f0f0f0f);
}
// Lane j: 1 or 1/16 by turns, N turns over the 16 lanes (N = 16: every other lane).
template <int N>
static inline __m512 high_sixteenths() {
  alignas(64) static constexpr auto kFactors = [] {
    std::array<float, 16> f{};
    for (int j = 0; j < 16; ++j) f[std::size_t(j)] = j / (16 / N) % 2 ? 1 / 16.f : 1.f;
    return f;
  }();
  return _mm512_load_ps(kFactors.data());
}

template <quant::Type T>
static inline __m256i block_q(const uint8_t* u) {
  using quant::Type;
  if constexpr (T == Type::Q8_0) {
    return _mm256_xor_si256(load32(u + 2), _mm256_set1_epi8(char(0x80)));
  } else {
    // Elements 0-15 are the low nibbles of the 16 bytes, 16-31 their high nibbles: the bytes in
    // both halves, the upper half shifted by 4 (or in place: kHighInPlace).
    const __m256i v = load16_twice(u + kQs<T>);
    if constexpr (kHighInPlace<T>) return _mm256_and_si256(v, nibbles_in_place());
    const __m256i q = _mm256_and_si256(_mm256_srlv_epi64(v, _mm256_set_epi64x(4, 4, 0, 0)),
                                       _mm256_set1_epi8(0x0F));
    if constexpr (T == Type::Q5_0 || T == Type::Q5_1) {
      uint32_t qh;  // bit j: the 5th bit of element j
      std::memcpy(&qh, u + kQs<T> - 4, 4);
      return _mm256_or_si256(q, _mm256_maskz_set1_epi8(_cvtu32_mask32(qh), 0x10));
    } else {
      return q;
    }
  }
}
// Blocks u0 and u1 likewise, as the two halves of one 512-bit register.
template <quant::Type T>
static inline __m512i pair_q(const uint8_t* u0, const uint8_t* u1) {
  using quant::Type;
  if constexpr (T == Type::Q8_0) {
    return _mm512_xor_si512(join(load32(u0 + 2), load32(u1 + 2)), _mm512_set1_epi8(char(0x80)));
  } else {
    const __m512i v = join(load16_twice(u0 + kQs<T>), load16_twice(u1 + kQs<T>));
    if constexpr (kHighInPlace<T>)
      return _mm512_and_si512(v, _mm512_broadcast_i64x4(nibbles_in_place()));
    const __m512i q = _mm512_and_si512(
        _mm512_srlv_epi64(v, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0)), _mm512_set1_epi8(0x0F));
    if constexpr (T == Type::Q5_0 || T == Type::Q5_1) {
      uint32_t qh0, qh1;
      std::memcpy(&qh0, u0 + kQs<T> - 4, 4), std::memcpy(&qh1, u1 + kQs<T> - 4, 4);
      const __mmask64 bits = _cvtu64_mask64(qh0 | uint64_t(qh1) << 32);
      return _mm512_or_si512(q, _mm512_maskz_set1_epi8(bits, 0x10));
    } else {
      return q;
    }
  }
}

// The scales (d) of blocks 0 to 2·NP - 1 of 32 elements at u (NP pairs, at most 4), and their
// minimums (m) where the type has them, as floats (zero past the last block). The headers' f16
// words are gathered from whole loads by word permutes (Heads, planned at compile time), all
// within the blocks' own bytes: per pair of blocks in scalar code, or by masked loads, they cost
// as much as a third of the kernel.
struct Scales8 {
  __m256 d, m;
};
template <quant::Type T, int NP>
struct Heads {
  static constexpr int kSpan = 2 * NP * int(quant::layout(T).block_bytes);  // the pairs' bytes
  static constexpr int kWidth = kSpan >= 64 ? 64 : 32;                      // bytes per load
  static constexpr int kWords = quant::zero_point(T) == 0 ? 2 : 1;          // d, and m if any
  // Loads (at most 4: slots) at byte offsets inside the span; word 8c + i of the result is word c
  // of block i's header, from slots 0, 1 by index[0] (a two-table permute) or from slots 2, 3 by
  // index[1] where mask_b has its bit.
  struct Plan {
    int slots = 0;
    std::array<int, 4> offset{};
    std::array<std::array<int16_t, 32>, 2> index{};
    uint32_t mask_b = 0;
  };
  static constexpr Plan kPlan = [] {
    Plan p;
    for (int i = 0; i < 2 * NP; ++i)
      for (int c = 0; c < kWords; ++c) {
        const int byte = i * int(quant::layout(T).block_bytes) + 2 * c;
        // The first load (every kWidth bytes, the last one ending at the span's end) holding it.
        int at = 0;
        while (!(byte + 2 <= std::min(at, kSpan - kWidth) + kWidth)) at += kWidth;
        at = std::min(at, kSpan - kWidth);
        int slot = 0;
        while (slot < p.slots && p.offset[std::size_t(slot)] != at) ++slot;
        if (slot == p.slots) p.offset[std::size_t(p.slots++)] = at;
        const int word = (slot % 2) * 32 + (byte - at) / 2, dst = 8 * c + i;
        p.index[std::size_t(slot / 2)][std::size_t(dst)] = int16_t(word);
        if (slot >= 2) p.mask_b |= 1u << dst;
      }
    return p;
  }();
  static_assert(kPlan.slots <= 4 && kSpan >= 32);
  alignas(64) static constexpr std::array<std::array<int16_t, 32>, 2> kIndex = kPlan.index;
};
template <quant::Type T, int NP>
static inline Scales8 scales8(const uint8_t* u) {
  using H = Heads<T, NP>;
  constexpr auto plan = H::kPlan;
  const auto load = [&](int slot) {
    const uint8_t* p = u + plan.offset[std::size_t(slot)];
    return H::kWidth == 64
               ? _mm512_loadu_si512(p)
               : _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  };
  const auto gather = [&](int first, const std::array<int16_t, 32>& index) {
    const __m512i i = _mm512_load_si512(index.data());
    return plan.slots > first + 1 ? _mm512_permutex2var_epi16(load(first), i, load(first + 1))
                                  : _mm512_permutexvar_epi16(i, load(first));
  };
  __m512i h = gather(0, H::kIndex[0]);
  if constexpr (plan.slots > 2) h = _mm512_mask_mov_epi16(h, plan.mask_b, gather(2, H::kIndex[1]));
  return {_mm256_cvtph_ps(_mm512_castsi512_si128(h)),
          H::kWords == 2 ? _mm256_cvtph_ps(_mm512_extracti32x4_epi32(h, 1)) : _mm256_setzero_ps()};
}

// Elements 64P to 64P + 63 of a K-quant block (Q4_K, Q5_K, Q6_K) as q bytes in element order.
template <quant::Type T, int P>
static inline __m512i unit_q(const uint8_t* u) {
  using quant::Type;
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  if constexpr (T == Type::Q4_K || T == Type::Q5_K) {
    // Per 64 elements, 32 bytes: the first 32 are their low nibbles, the next 32 the high ones.
    const __m256i v = load32(u + (T == Type::Q5_K ? 48 : 16) + 32 * P);
    if constexpr (kHighInPlace<T>)
      return _mm512_and_si512(_mm512_broadcast_i64x4(v),
                              join(_mm256_set1_epi8(0x0F), _mm256_set1_epi8(char(0xF0))));
    const __m512i q = _mm512_and_si512(join(v, _mm256_srli_epi16(v, 4)), low4);
    if constexpr (T == Type::Q5_K) {  // bit 2P (low half) or 2P + 1 (high half) of qh[l]
      const __m512i qh = _mm512_broadcast_i64x4(load32(u + 16));
      const __m512i bit =
          join(_mm256_set1_epi8(char(1 << 2 * P)), _mm256_set1_epi8(char(1 << (2 * P + 1))));
      return _mm512_or_si512(q, _mm512_maskz_set1_epi8(_mm512_test_epi8_mask(qh, bit), 0x10));
    } else {
      return q;
    }
  } else {
    static_assert(T == Type::Q6_K);
    // Per 128 elements (half H), ql[64·H ...] and qh[32·H ...]: the i-th 32 elements take the low
    // nibbles of ql's first or second 32 bytes (i = 0, 1), then their high nibbles (i = 2, 3), and
    // bits 2i, 2i + 1 of qh, as bits 4 and 5. Unit P holds i = 0, 1 (P even) or 2, 3 (P odd).
    constexpr int H = P / 2;
    const __m512i l4 = _mm512_loadu_si512(u + 64 * H);
    const __m512i h2 = _mm512_broadcast_i64x4(load32(u + 128 + 32 * H));
    const __m512i low =
        P % 2 ? _mm512_and_si512(_mm512_srli_epi16(l4, 4), low4) : _mm512_and_si512(l4, low4);
    const __m512i high =
        P % 2 ? _mm512_srlv_epi16(h2, join(_mm256_set1_epi16(0), _mm256_set1_epi16(2)))
              : _mm512_sllv_epi16(h2, join(_mm256_set1_epi16(4), _mm256_set1_epi16(2)));
    return _mm512_or_si512(low, _mm512_and_si512(high, _mm512_set1_epi8(0x30)));
  }
}

// A K-quant block's a_g and b_g as quant::unpack_scales gives them, unpacked in vector registers
// (in scalar code they cost more than the block's products): a_g in lanes 0-7 (Q4_K, Q5_K) or
// 0-15 (Q6_K); b_g in lanes 8-15 of the same register (Q4_K, Q5_K; Q6_K's zero point is folded
// into the integer sums instead).
template <quant::Type T>
static inline __m512 k_scales(const uint8_t* u) {
  using quant::Type;
  if constexpr (T == Type::Q4_K || T == Type::Q5_K) {
    // The block's first 16 bytes: d, dmin, and twelve bytes s of 6-bit scales and mins
    // (quant::scale_min_k4). Scales 0-3 and mins 0-3 are the low 6 bits of s[0..3] and s[4..7];
    // scales 4-7 and mins 4-7 the low and high nibbles of s[8..11], with their top two bits from
    // the top bits of s[0..3] and s[4..7]. Byte j of `six` becomes scale j, byte 8 + j min j.
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(u));  // s[i] is v[4 + i]
    const __m128i low = _mm_shuffle_epi8(
        v, _mm_setr_epi8(4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15));
    const __m128i low6 = _mm_and_si128(  // (mins 4-7: the high nibbles)
        _mm_mask_blend_epi8(0xF000, low, _mm_srli_epi16(low, 4)),
        _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 15, 15, 15, 15));
    const __m128i top = _mm_shuffle_epi8(
        v, _mm_setr_epi8(-1, -1, -1, -1, 4, 5, 6, 7, -1, -1, -1, -1, 8, 9, 10, 11));
    const __m128i six =  // (top >> 6) << 4, per byte
        _mm_or_si128(low6, _mm_and_si128(_mm_srli_epi16(top, 2), _mm_set1_epi8(0x30)));
    // d over lanes 0-7 and -dmin over 8-15 (and the high nibbles' 1/16: kHighInPlace).
    alignas(64) static constexpr auto kSigns = [] {
      std::array<float, 16> f{};
      for (int j = 0; j < 16; ++j)
        f[std::size_t(j)] = j >= 8 ? -1.f : kHighInPlace<T> && j % 2 ? 1 / 16.f : 1.f;
      return f;
    }();
    const __m512 d = _mm512_mul_ps(spread<2>(_mm512_castps128_ps512(_mm_cvtph_ps(v))),
                                   _mm512_load_ps(kSigns.data()));
    return _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(six)));
  } else {
    static_assert(T == Type::Q6_K);  // 16 int8 scales: a = d·sc
    const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(u + 192));
    const __m512 d = _mm512_set1_ps(quant::f16<Tag>(reinterpret_cast<const std::byte*>(u + 208)));
    return _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc)));
  }
}

// Decode (up to kFusedTokens tokens): no unpacked copy. Rows are read 64 elements at a time, two
// blocks of 32 (pair_q) or a quarter of a K-quant block (unit_q), decoded in registers into one
// 512-bit register of q bytes in the activations' order and multiplied by every token right
// there, with the scales a_g·d_x spread over the lanes of their groups. The scales of blocks of
// 32 are read eight blocks at a time (scales8).
//
// R rows are read side by side: they share each load of the activations, and one horizontal
// reduction ends all R. Rows of 640 (270m) are only ten units of 64: one row at a time (its own
// reduction, its own loads) did 36 G weights/s of Q4_0 in the cache where four rows did 49. Each
// row's arithmetic is the same whichever R it is read with (the same accumulators, the same
// reduction tree), so the result does not depend on where a thread's rows begin.
//
// The offsets: a zero point Z (b_g = -Z·a_g) is folded into the integer sums, Σ(q - Z)·x =
// Σ q·x - Z·Σ x, each lane starting from -Z·Σ x of its 4 elements (zx, per token, once per call,
// so that the loop only loads it; as a float offset per eight groups instead it measured slower);
// a free minimum (Q4_1, Q5_1, Q4_K, Q5_K) adds b_g·e_g per eight groups. So no per-row pass over
// the offsets. Two accumulators per row and token, so that the FMA's latency does not serialise the
// units. (Flattened: GCC would otherwise call the lambdas out of line, at a third of the speed.)

// A block's bytes and elements, as constants that nested generic lambdas may use (GCC 12 fails on
// a captured constexpr local there).
template <quant::Type T>
inline constexpr int64_t kBlockBytes = quant::layout(T).block_bytes;
template <quant::Type T>
inline constexpr int64_t kBlockElements = quant::layout(T).block_elements;

// The sums of v[r] and o[r], r = 0 to 3, in lanes 0 to 3, by one tree for all four. (Both halves
// by zero-masked extracts: GCC 12 warns falsely, "__Y is used uninitialized", on the undefined
// pass-through operand of _mm512_castps512_ps256 and _mm512_extractf64x4_pd where they are inlined
// here; through memory instead, a 512-bit store read back as two halves, Q4_0 was 10% slower.)
static inline __m128 reduce4(const __m512 (&v)[4], const __m256 (&o)[4]) {
  const auto half = [](__m512 x, auto i) {
    return _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, _mm512_castps_pd(x), i.value));
  };
  __m256 h[4];
  for (int r = 0; r < 4; ++r)
    h[r] = _mm256_add_ps(_mm256_add_ps(half(v[r], std::integral_constant<int, 0>{}),
                                       half(v[r], std::integral_constant<int, 1>{})),
                         o[r]);
  const __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(h[0], h[1]), _mm256_hadd_ps(h[2], h[3]));
  return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

// R rows (stride bytes apart) times NT tokens into y[t·ldy + r]; zx as in fused below.
template <quant::Type T, int NT, int R>
[[gnu::flatten]] static inline void fused_rows(const uint8_t* w, int64_t stride, int64_t in,
                                               const simd::QuantX& x, const uint8_t* zx, float* y,
                                               int64_t ldy) {
  using quant::Type;
  constexpr int Z = quant::zero_point(T);
  const int64_t blocks = in / kBlockElements<T>, chunks = in / 32;
  const auto* x8 = reinterpret_cast<const uint8_t*>(x.q);
  __m512 acc[R][NT][2];
  __m256 off[R][NT];  // b_g·e_g (a free minimum), and the products of an odd last block of 32
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t)
      acc[r][t][0] = acc[r][t][1] = _mm512_setzero_ps(), off[r][t] = _mm256_setzero_ps();
  // Each row's q (elements e to e + 63) times every token, scaled by scale(r, t), into
  // accumulator j.
  const auto units = [&](const __m512i(&q)[R], int64_t e, int j, const auto& scale) {
    for (int t = 0; t < NT; ++t) {
      const __m512i xt = _mm512_loadu_si512(x8 + t * in + e);
      const __m512i init = Z != 0 ? _mm512_loadu_si512(zx + t * in + e) : _mm512_setzero_si512();
      for (int r = 0; r < R; ++r)
        acc[r][t][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(init, q[r], xt)),
                                       scale(r, t), acc[r][t][j]);
    }
  };
  if constexpr (kBlockElements<T> == 32) {
    // NP pairs of blocks from block k (NP = 1 to 4): their scales at once, then each pair.
    const auto pairs = [&]<int NP>(std::integral_constant<int, NP>, int64_t k) {
      const uint8_t* u[R];
      Scales8 dm[R];
      for (int r = 0; r < R; ++r) u[r] = w + r * stride + k * kBlockBytes<T>;
      for (int r = 0; r < R; ++r) dm[r] = scales8<T, NP>(u[r]);
      const auto load_blocks = [](const float* p) {  // a float per block, zero past the last
        return NP == 4 ? _mm256_loadu_ps(p)
                       : _mm256_maskz_loadu_ps(__mmask8((1u << 2 * NP) - 1), p);
      };
      // a·d_x per block; with the high nibbles in place, per half block: a·d_x, a·d_x / 16.
      __m512 s[R][NT];
      for (int t = 0; t < NT; ++t) {
        const __m256 dx = load_blocks(x.d + t * chunks + k);
        if constexpr (kHighInPlace<T>) {
          const __m512 dx16 =
              _mm512_mul_ps(spread<8>(_mm512_castps256_ps512(dx)), high_sixteenths<16>());
          for (int r = 0; r < R; ++r)
            s[r][t] = _mm512_mul_ps(spread<8>(_mm512_castps256_ps512(dm[r].d)), dx16);
        } else {
          for (int r = 0; r < R; ++r) s[r][t] = _mm512_castps256_ps512(_mm256_mul_ps(dm[r].d, dx));
        }
      }
      [&]<int... P>(std::integer_sequence<int, P...>) {
        (
            [&] {
              __m512i q[R];
              for (int r = 0; r < R; ++r)
                q[r] =
                    pair_q<T>(u[r] + 2 * P * kBlockBytes<T>, u[r] + (2 * P + 1) * kBlockBytes<T>);
              units(q, 32 * k + 64 * P, P % 2, [&](int r, int t) {
                return kHighInPlace<T> ? spread<4, 4 * P>(s[r][t]) : spread<2, 2 * P>(s[r][t]);
              });
            }(),
            ...);
      }
      (std::make_integer_sequence<int, NP>{});
      if constexpr (Z == 0)
        for (int t = 0; t < NT; ++t) {
          const __m256 e = load_blocks(x.e32 + t * chunks + k);
          for (int r = 0; r < R; ++r) off[r][t] = _mm256_fmadd_ps(dm[r].m, e, off[r][t]);
        }
    };
    // The last block of an odd count, alone.
    const auto last = [&](int64_t k) {
      for (int r = 0; r < R; ++r) {
        const uint8_t* ub = w + r * stride + k * kBlockBytes<T>;
        const __m256i q = block_q<T>(ub);
        const float a = quant::f16<Tag>(reinterpret_cast<const std::byte*>(ub));
        [[maybe_unused]] const float m =
            Z == 0 ? quant::f16<Tag>(reinterpret_cast<const std::byte*>(ub + 2)) : 0.f;
        for (int t = 0; t < NT; ++t) {
          const __m256i init = Z != 0 ? load32(zx + t * in + 32 * k) : _mm256_setzero_si256();
          const __m256i p = _mm256_dpbusd_epi32(init, q, load32(x8 + t * in + 32 * k));
          __m256 scale = _mm256_set1_ps(a * x.d[t * chunks + k]);
          if constexpr (kHighInPlace<T>)
            scale = _mm256_mul_ps(scale, _mm512_castps512_ps256(high_sixteenths<4>()));
          off[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), scale, off[r][t]);
          if constexpr (Z == 0)
            off[r][t] = _mm256_add_ps(
                off[r][t], _mm256_zextps128_ps256(_mm_set_ss(m * x.e32[t * chunks + k])));
        }
      }
    };
    int64_t k = 0;
    for (; k + 8 <= blocks; k += 8) pairs(std::integral_constant<int, 4>{}, k);
    switch ((blocks - k) / 2) {
      case 3:
        pairs(std::integral_constant<int, 3>{}, k), k += 6;
        break;
      case 2:
        pairs(std::integral_constant<int, 2>{}, k), k += 4;
        break;
      case 1:
        pairs(std::integral_constant<int, 1>{}, k), k += 2;
        break;
    }
    if (k < blocks) last(k);
  } else {
    for (int64_t k = 0; k < blocks; ++k) {
      const uint8_t* u[R];
      __m512 ab[R];
      for (int r = 0; r < R; ++r) u[r] = w + r * stride + k * kBlockBytes<T>;
      for (int r = 0; r < R; ++r) ab[r] = k_scales<T>(u[r]);
      // a_g·d_x per group: 8 groups of 32, or 16 of 16 (Q6_K: a chunk's d_x for two).
      __m512 s[R][NT];
      for (int t = 0; t < NT; ++t) {
        const __m512 dx = _mm512_castps256_ps512(_mm256_loadu_ps(x.d + t * chunks + 8 * k));
        const __m512 d = T == Type::Q6_K ? spread<8>(dx) : dx;
        for (int r = 0; r < R; ++r) s[r][t] = _mm512_mul_ps(ab[r], d);
      }
      [&]<int... P>(std::integer_sequence<int, P...>) {
        (
            [&] {
              __m512i q[R];
              for (int r = 0; r < R; ++r) q[r] = unit_q<T, P>(u[r]);
              units(q, 256 * k + 64 * P, P % 2, [&](int r, int t) {
                return T == Type::Q6_K ? spread<4, 4 * P>(s[r][t]) : spread<2, 2 * P>(s[r][t]);
              });
            }(),
            ...);
      }
      (std::make_integer_sequence<int, 4>{});
      if constexpr (Z == 0)
        for (int t = 0; t < NT; ++t) {  // b_g·e_g: b_g in lanes 8-15, so e_g there too
          const __m512 e = _mm512_castpd_ps(
              _mm512_insertf64x4(_mm512_setzero_pd(),
                                 _mm256_castps_pd(_mm256_loadu_ps(x.e32 + t * chunks + 8 * k)), 1));
          for (int r = 0; r < R; ++r) acc[r][t][1] = _mm512_fmadd_ps(ab[r], e, acc[r][t][1]);
        }
    }
  }
  for (int t = 0; t < NT; ++t)
    for (int g = 0; g < R; g += 4) {  // four rows at a time
      __m512 v[4];
      __m256 o[4];
      for (int r = 0; r < 4; ++r) {
        const int i = g + r < R ? g + r : g;  // (fewer rows: the first again, in the same tree)
        v[r] = _mm512_add_ps(acc[i][t][0], acc[i][t][1]), o[r] = off[i][t];
      }
      alignas(16) float sums[4];
      _mm_store_ps(sums, reduce4(v, o));
      for (int r = 0; r < 4 && g + r < R; ++r) y[t * ldy + g + r] = sums[r];
    }
}

// Rows of w times NT tokens: R rows side by side, the rest one by one. R is what measured best
// (Zen 5, 270m's rows): 6 rows for one token with blocks of 32, 4 with the K-quants' heavier
// scales; fewer for more tokens, so that the accumulators stay in registers.
template <quant::Type T, int NT>
static inline void fused(const std::byte* w, int64_t rows, int64_t in, const simd::QuantX& x,
                         float* y, int64_t ldy, float* scratch) {
  constexpr int Z = quant::zero_point(T);
  constexpr int R = (kBlockElements<T> == 32 ? 6 : 4) / NT;
  // zx[t][l] = -Z·Σ x over elements 4l to 4l + 3 of token t.
  auto* zx = reinterpret_cast<uint8_t*>(scratch);  // [NT][in / 4] int32, through intrinsics only
  const auto* x8 = reinterpret_cast<const uint8_t*>(x.q);
  if constexpr (Z != 0)
    for (int t = 0; t < NT; ++t)
      for (int64_t l = 0; l < in; l += 32) {
        const __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1),
                                              load32(x8 + t * in + l));
        // (with the high nibbles in place, 16 times that over the high half block)
        const __m256i z = kHighInPlace<T>
                              ? _mm256_set_epi32(-16 * Z, -16 * Z, -16 * Z, -16 * Z, -Z, -Z, -Z, -Z)
                              : _mm256_set1_epi32(-Z);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(zx + t * in + l), _mm256_mullo_epi32(s, z));
      }
  const int64_t stride = quant::row_bytes(T, in);
  const auto* u = reinterpret_cast<const uint8_t*>(w);
  int64_t r = 0;
  for (; r + R <= rows; r += R) {
    // R rows side by side are R streams a row apart, which the hardware prefetchers follow badly
    // (Q8_0's LM head from memory: 8 ms; with this, 4.2-5.4): the group two ahead is fetched
    // here, one contiguous span.
    if (r + 3 * R <= rows)
      for (int64_t b = 0; b < R * stride; b += 64)
        _mm_prefetch(reinterpret_cast<const char*>(u + (r + 2 * R) * stride + b), _MM_HINT_T0);
    fused_rows<T, NT, R>(u + r * stride, stride, in, x, zx, y + r, ldy);
  }
  for (; r < rows; ++r) fused_rows<T, NT, 1>(u + r * stride, stride, in, x, zx, y + r, ldy);
}

// Prefill: an int8 GEMM on panels of 16 rows. A panel is unpacked (q, a, b) once for all tokens
// and its q transposed in 4-byte units, P[k/4][row][4], so that one 512-bit register holds 4
// consecutive elements of all 16 rows. vpdpbusd then multiplies it by 4 bytes of one token's
// activations broadcast: 16 rows' partial sums at once, in 16 int32 lanes. After each group the
// sums are scaled by the rows' a_g (a register of 16) times the token's d, and the offsets enter as
// b_g·e_g (quant.hpp's form; the same contract as kernels::simd::QuantRows).

// The 16 × 16 transpose of 32-bit elements, in four rounds of shuffles.
static inline void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {  // pairs of rows interleaved
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // per 128-bit lane: column 4L + j of rows i to i + 3
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 16; i += 8)  // lanes 0, 2 and 1, 3 of the rows i to i + 7
    for (int j = 0; j < 4; ++j) {
      t[i + j] = _mm512_shuffle_i32x4(r[i + j], r[i + 4 + j], 0x88);
      t[i + 4 + j] = _mm512_shuffle_i32x4(r[i + j], r[i + 4 + j], 0xdd);
    }
  for (int j = 0; j < 4; ++j) {  // column 4L + j from lane L of all four row quarters
    r[j] = _mm512_shuffle_i32x4(t[j], t[8 + j], 0x88);
    r[8 + j] = _mm512_shuffle_i32x4(t[j], t[8 + j], 0xdd);
    r[4 + j] = _mm512_shuffle_i32x4(t[4 + j], t[12 + j], 0x88);
    r[12 + j] = _mm512_shuffle_i32x4(t[4 + j], t[12 + j], 0xdd);
  }
}

// The panel of rows [0, n) (n <= 16; the rest zero) into P [in/4][16][4] bytes and A, B
// [groups][16]
// (`rowwise`: 16·in bytes, `ab`: a row's a and b).
template <quant::Type T>
static inline void pack_panel(const std::byte* w, int64_t n, int64_t in, uint8_t* rowwise,
                              uint8_t* P, float* A, float* B, float* ab) {
  constexpr quant::Layout L = quant::layout(T);
  const int64_t groups = in / L.group, stride = quant::row_bytes(T, in);
  for (int64_t r = 0; r < kPanelRows; ++r) {
    if (r < n) {
      quant::unpack_row<T, Tag>(w + r * stride, in, rowwise + r * in, ab, ab + groups);
    } else {
      std::memset(rowwise + r * in, 0, std::size_t(in));
      std::fill(ab, ab + 2 * groups, 0.f);
    }
    for (int64_t g = 0; g < groups; ++g)
      A[g * kPanelRows + r] = ab[g], B[g * kPanelRows + r] = ab[groups + g];
  }
  int64_t k = 0;
  for (; k + 64 <= in; k += 64) {  // 16 elements of 4 bytes per row: one transpose
    __m512i r[16];
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_si512(rowwise + i * in + k);
    transpose16(r);
    for (int i = 0; i < 16; ++i) _mm512_storeu_si512(P + (k / 4 + i) * 64, r[i]);
  }
  for (; k < in; k += 4)  // a last 32 elements
    for (int i = 0; i < 16; ++i) std::memcpy(P + (k / 4 * 16 + i) * 4, rowwise + i * in + k, 4);
}

// NT tokens from t0 times NP packed panels side by side (NP·16 rows: panel p at P + p·16·in, its
// a and b at A + p·in and B + p·in): y[t·ldy + r] for the first n rows. Each broadcast of a
// token's 4 bytes serves the NP panels (two panels of 6 tokens against one of 8: +4% for Q4_1 to
// +14% for Q6_K; two of 4 tokens was slower for Q4_K). Where the type has a zero point Z, its
// offset is folded into the integer sums, Σ(q - Z)·x: they start at -Z·Σx (the activations' sums),
// and a·d·Σ(q - Z)·x is the group's whole product.
template <quant::Type T, int NP, int NT>
static inline void panel_tile(const uint8_t* P, const float* A, const float* B, int64_t in,
                              const simd::QuantX& x, int64_t t0, float* y, int64_t ldy, int64_t n) {
  constexpr int64_t G = quant::layout(T).group;
  constexpr int Z = quant::zero_point(T);
  const int64_t groups = in / G, chunks = in / 32;
  const float* e = G == 16 ? x.e16 : x.e32;
  __m512 acc[NP][NT];
  for (int p = 0; p < NP; ++p)
    for (int t = 0; t < NT; ++t) acc[p][t] = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    __m512i sum[NP][NT];
    for (int t = 0; t < NT; ++t) {
      __m512i start = _mm512_setzero_si512();
      if constexpr (Z != 0) {
        const int32_t* s16 = x.s + (t0 + t) * (in / 16);  // Σx per 16
        const int32_t sx = G == 16 ? s16[g] : s16[2 * g] + s16[2 * g + 1];
        start = _mm512_set1_epi32(-Z * sx);
      }
      for (int p = 0; p < NP; ++p) sum[p][t] = start;
    }
    // The group's G / 4 steps unrolled: as a loop, GCC 12 copied every sum into another register
    // and back around each vpdpbusd and spilled q (0.46 of the int8 peak on 128 tokens; unrolled,
    // 0.55).
    const uint8_t* Pg = P + g * G * kPanelRows;
    const int8_t* xg = x.q + t0 * in + g * G;
#pragma GCC unroll 8
    for (int k = 0; k < G; k += 4) {
      __m512i q[NP];
      for (int p = 0; p < NP; ++p) q[p] = _mm512_loadu_si512(Pg + p * kPanelRows * in + k * 16);
      for (int t = 0; t < NT; ++t) {
        const __m512i xt = broadcast4(xg + t * in + k);  // elements g·G + k to + 3 of token t
        for (int p = 0; p < NP; ++p) sum[p][t] = _mm512_dpbusd_epi32(sum[p][t], q[p], xt);
      }
    }
    for (int t = 0; t < NT; ++t) {
      const __m512 d = _mm512_set1_ps(x.d[(t0 + t) * chunks + g * G / 32]);
      for (int p = 0; p < NP; ++p) {
        const __m512 scale = _mm512_mul_ps(_mm512_loadu_ps(A + p * in + g * kPanelRows), d);
        acc[p][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[p][t]), scale, acc[p][t]);
        if constexpr (Z == 0)
          acc[p][t] = _mm512_fmadd_ps(_mm512_loadu_ps(B + p * in + g * kPanelRows),
                                      _mm512_set1_ps(e[(t0 + t) * groups + g]), acc[p][t]);
      }
    }
  }
  for (int p = 0; p < NP; ++p) {
    const int64_t valid = std::clamp<int64_t>(n - p * kPanelRows, 0, kPanelRows);
    const __mmask16 rows = __mmask16((1u << valid) - 1);
    for (int t = 0; t < NT; ++t)
      _mm512_mask_storeu_ps(y + (t0 + t) * ldy + p * kPanelRows, rows, acc[p][t]);
  }
}

// All the tokens in tiles of at most kTile tokens, as even as they can be: tile.template
// operator()<NT>(t0) multiplies tokens [t0, t0 + NT). The tile is bound by its vpdpbusd, so a
// tile of 5 tokens does 5/6 of a 6's work in about 5/6 of its time, where a last tile of 2 (128 =
// 21·6 + 2) reloaded every weight for a third of the work. Before each tile, its share of the
// `ahead` bytes is prefetched (the next rows' weights). A token's sums are the same in any tile.
template <int kTile, class Tile>
static inline void token_tiles(int64_t tokens, std::span<const uint8_t> ahead, Tile&& tile) {
  const int64_t tiles = (tokens + kTile - 1) / kTile, lines = int64_t(ahead.size()) / 64;
  const int64_t least = tokens / tiles, larger = tokens % tiles;  // `larger` tiles of least + 1
  int64_t t0 = 0;
  for (int64_t i = 0; i < tiles; ++i) {
    for (int64_t l = lines * i / tiles; l < lines * (i + 1) / tiles; ++l)
      _mm_prefetch(reinterpret_cast<const char*>(ahead.data() + 64 * l), _MM_HINT_T0);
    const int64_t nt = least + (i < larger);
    [&]<int... NT>(std::integer_sequence<int, NT...>) {
      ((nt == NT + 1 ? tile.template operator()<NT + 1>(t0) : void()), ...);
    }
    (std::make_integer_sequence<int, kTile>{});
    t0 += nt;
  }
}

// kGemmRows rows (`stride` bytes each) at a time: block(r0, n) for rows [r0, r0 + n), then
// tile.template operator()<NP, NT>(r0, n, t0) over all the tokens (token_tiles) with two panels
// of 6-token tiles (12 int32 and 12 f32 accumulators), or one of 8 where only 16 rows or fewer
// are left, the next block's bytes prefetched meanwhile.
template <class Block, class Tile>
static inline void row_blocks(const uint8_t* w, int64_t rows, int64_t stride, int64_t tokens,
                              Block&& block, Tile&& tile) {
  for (int64_t r0 = 0; r0 < rows; r0 += kGemmRows) {
    const int64_t n = std::min(kGemmRows, rows - r0);
    block(r0, n);
    const int64_t next = std::clamp<int64_t>(rows - r0 - n, 0, kGemmRows);
    const std::span<const uint8_t> ahead(w + (r0 + n) * stride, std::size_t(next * stride));
    if (n > kPanelRows)
      token_tiles<6>(tokens, ahead,
                     [&]<int NT>(int64_t t0) { tile.template operator()<2, NT>(r0, n, t0); });
    else
      token_tiles<8>(tokens, ahead,
                     [&]<int NT>(int64_t t0) { tile.template operator()<1, NT>(r0, n, t0); });
  }
}

// kGemmRows rows at a time: each of its panels packed by pack(r, n, P, A, B) (rows [r, r + n),
// n <= 16, into P [in/4][16][4] and A, B [groups][16]), then two panels of 6-token tiles (12 int32
// and 12 f32 accumulators), or one of 8 where only 16 rows or fewer are left. P holds two panels
// (32·in bytes), A and B two panels' (in floats each). `w` is the rows' bytes, in whichever
// order: while one block is multiplied, the next block's are prefetched, so that its packing
// does not wait for memory (the packing of a 1b Q4_0 prefill read each block cold, on one thread at
// a time: prefetched, +3.5% prefill on two threads).
template <quant::Type T, class Pack>
static inline void packed_gemm(const uint8_t* w, int64_t rows, int64_t in, const simd::QuantX& x,
                               int64_t tokens, float* y, int64_t ldy, uint8_t* P, float* A,
                               float* B, Pack&& pack) {
  row_blocks(
      w, rows, quant::row_bytes(T, in), tokens,
      [&](int64_t r0, int64_t n) {
        for (int64_t p = 0; p * kPanelRows < n; ++p)
          pack(r0 + p * kPanelRows, std::min(kPanelRows, n - p * kPanelRows),
               P + p * kPanelRows * in, A + p * in, B + p * in);
      },
      [&]<int NP, int NT>(int64_t r0, int64_t n, int64_t t0) {
        panel_tile<T, NP, NT>(P, A, B, in, x, t0, y + r0, ldy, n);
      });
}

// The GEMM on rows in file order, each panel unpacked and transposed (pack_panel).
template <quant::Type T>
static inline void gemm(const std::byte* w, int64_t rows, int64_t in, const simd::QuantX& x,
                        int64_t tokens, float* y, int64_t ldy, uint8_t* q, float* ab) {
  uint8_t* rowwise = q;
  packed_gemm<T>(
      reinterpret_cast<const uint8_t*>(w), rows, in, x, tokens, y, ldy, q + kPanelRows * in, ab,
      ab + 2 * in, [&](int64_t r, int64_t n, uint8_t* P, float* A, float* B) {
        pack_panel<T>(w + r * quant::row_bytes(T, in), n, in, rowwise, P, A, B, ab + 4 * in);
      });
}

// A Q5_0 block of an interleaved panel (the 16 rows' d, then their qh, then their qs): the
// unsigned 5-bit q of elements 4j to 4j + 3 (lo) and 16 + 4j to 16 + 4j + 3 (hi) of the 16 rows,
// [row][4] bytes, each byte's fifth bit from qh (bit 4j + i of its row's 32).
class Q5Column {
 public:
  explicit Q5Column(const uint8_t* c) : c_(c) {
    const __m512i qh = _mm512_loadu_si512(c + 32);
    for (int s = 0; s < 4; ++s)  // byte s of each row's qh in all four bytes of its lane
      bytes_[s] = _mm512_shuffle_epi8(
          qh, _mm512_add_epi8(_mm512_set4_epi32(0x0C0C0C0C, 0x08080808, 0x04040404, 0),
                              _mm512_set1_epi8(int8_t(s))));
  }
  struct Quarter {
    __m512i lo, hi;
  };
  Quarter quarter(int j) const {
    const __m512i low = _mm512_set1_epi8(0x0F), fifth = _mm512_set1_epi8(0x10);
    const __m512i bit = _mm512_set1_epi32(j % 2 ? int(0x80402010) : 0x08040201);
    const __m512i v = _mm512_loadu_si512(c_ + 96 + 64 * j);
    __m512i ql = _mm512_and_si512(v, low), qh = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
    // Elements 4j + i (bit 4j + i: byte j / 2) and 16 + 4j + i (byte 2 + j / 2).
    ql = _mm512_mask_add_epi8(ql, _mm512_test_epi8_mask(bytes_[j / 2], bit), ql, fifth);
    qh = _mm512_mask_add_epi8(qh, _mm512_test_epi8_mask(bytes_[2 + j / 2], bit), qh, fifth);
    return {ql, qh};
  }

 private:
  const uint8_t* c_;
  __m512i bytes_[4];
};

// Decode on interleaved panels (quant::interleave_panel): one 512-bit load is the same 4 bytes of
// 16 rows, so each vpdpbusd adds 4 products to 16 rows' sums, and a block's sums are converted,
// scaled (the 16 rows' d in one register) and added once per 512 weights; the 16 results come
// out in the lanes, with no reduction across a register. Where the type has a zero point Z, the
// sums start at -Z·Σx (the block's activations' sum), as in panel_tile.
//
// For every type but Q8_0 each block asks for the bytes decode_ahead(in) further on (here and in
// panel_fused_k): a thread's run is one stream from memory, but the hardware prefetchers start
// each run slowly and keep too few lines in flight for one core to read at its share of the
// bandwidth, most of all on the short runs of q/k/v and o, and where a panel (a 6912-wide down
// projection's is 62 KB) is longer than L1 and evicts x at each panel. Cold Q4_0 matrices, one and
// two threads, alternating: +8-10% and +10-40% of the read rate with it. A whole 4B Q4_K_M
// decode (nearly all Q4_K and Q6_K, its LM head Q6_K), three alternating pairs: 0.62-0.76 of the
// roofline without it for Q6_K, 0.98-1.00 with. Q8_0's blocks are twice the bytes for the same
// loads of x, and its kernel is bound by its loads: 9 prefetches a block more made its 1B decode
// 4% slower (measured again after the K-quants' panels, at 1B and 4B: five pairs, each slower).
//
// Rows of kWideRows elements or more ask twice as far ahead. Their panels are longer than L1 (a
// 1B down projection's Q4_0 panel is 62 KB); from memory, asking 4 KiB ahead, they streamed
// 10-15% slower than the LM head's 10 KB panels, and 8 KiB ahead read 51-53 GB/s against 41-42
// (`BM_FastLinearQuantInterleaved/1/43008/6912/1`, two threads). In a 1B decode, where only down's
// rows are that wide, pairs of decode runs in one process: Q4_0 +1.8% (50 pairs, ± 0.4%), Q4_K_M
// +1.6% (30 pairs, ± 0.8%).
inline constexpr int64_t kDecodeAhead = 4096;
inline constexpr int64_t kWideRows = 4096;
static constexpr int64_t decode_ahead(int64_t in) {
  return in >= kWideRows ? 2 * kDecodeAhead : kDecodeAhead;
}
// The lines `ahead` bytes past a panel's block column of kColumn bytes at c (past the run's end:
// never a fault, only a hint).
template <int64_t kColumn>
static inline void prefetch_ahead(const uint8_t* c, int64_t ahead) {
  for (int64_t l = 0; l < kColumn; l += 64)
    _mm_prefetch(reinterpret_cast<const char*>(c + ahead + l), _MM_HINT_T0);
}
// One panel at a time, for wide rows too. A wide row's x (a 1B down projection's: 6.9 KB of q,
// 1.7 KB of sums, 0.9 KB of scales) is pushed out of L1 by each 62 KB panel and read again from L2
// for the next. Two panels side by side, each broadcast of x serving both, halve those reads; they
// were measured faster on a host reading 48-63 GB/s (1B Q4_0 +2-4 tok/s of ~70, pairs of runs).
// Timed on their own inside decode steps on a host reading 81-85 GB/s, where the roofline is
// hardest to reach, the pairs were the slower: a 1B Q4_0 down projection 67-74 µs paired against
// 61-65 alone (each of 12 pairs of runs), Q8_0 109-121 against 109-112 (7 of 8), 4B Q4_0 214-234
// against 203-228 (6 of 6); a whole 1B Q4_0 decode +1.9 ± 0.7% alone (9 of 12 pairs faster), and
// the same where the host read 50 GB/s (two pairs). A pair is two streams from memory per thread
// where a panel is one.
template <quant::Type T, int NT>
static inline void panel_fused(const uint8_t* panel, int64_t in, const simd::QuantX& x, float* y,
                               int64_t ldy) {
  constexpr int64_t kColumn = kPanelRows * quant::layout(T).block_bytes;  // a block of 16 rows
  constexpr int Z = quant::zero_point(T);
  const int64_t blocks = in / 32, ahead = decode_ahead(in);
  const auto x4 = [&](int t, int64_t k) { return broadcast4(x.q + t * in + k); };
  const __m512i low = _mm512_set1_epi8(0x0F);
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* c = panel + b * kColumn;
    if constexpr (T != quant::Type::Q8_0) prefetch_ahead<kColumn>(c, ahead);
    // Two chains of sums per token (the block's first and second halves, or alternate units).
    __m512i lo[NT], hi[NT];
    for (int t = 0; t < NT; ++t) {
      const int32_t* s16 = x.s + t * (in / 16) + 2 * b;  // Σx per 16
      lo[t] = _mm512_set1_epi32(-Z * (s16[0] + s16[1])), hi[t] = _mm512_setzero_si512();
    }
    // The panel's q at unit step k (lo: elements k to k + 3; hi: 16 further, or the next unit)
    // times each token's.
    const auto step = [&](__m512i ql, __m512i qh, int64_t kl, int64_t kh) {
      for (int t = 0; t < NT; ++t) {
        lo[t] = _mm512_dpbusd_epi32(lo[t], ql, x4(t, 32 * b + kl));
        hi[t] = _mm512_dpbusd_epi32(hi[t], qh, x4(t, 32 * b + kh));
      }
    };
    if constexpr (T == quant::Type::Q8_0) {  // q + 128 as unsigned bytes: Z = 128
      const __m512i flip = _mm512_set1_epi8(int8_t(0x80));
      for (int j = 0; j < 8; j += 2)
        step(_mm512_xor_si512(_mm512_loadu_si512(c + 32 + 64 * j), flip),
             _mm512_xor_si512(_mm512_loadu_si512(c + 32 + 64 * (j + 1)), flip), 4 * j, 4 * (j + 1));
    } else if constexpr (T == quant::Type::Q4_0) {
      // The high nibbles stay in place: their sums are 16 times too large, exactly.
      const __m512i high = _mm512_set1_epi8(int8_t(0xF0));
      for (int j = 0; j < 4; ++j) {
        const __m512i v = _mm512_loadu_si512(c + 32 + 64 * j);
        step(_mm512_and_si512(v, low), _mm512_and_si512(v, high), 4 * j, 16 + 4 * j);
      }
      for (int t = 0; t < NT; ++t) hi[t] = _mm512_srai_epi32(hi[t], 4);
    } else {
      static_assert(T == quant::Type::Q5_0);
      const Q5Column column(c);
      for (int j = 0; j < 4; ++j) {
        const auto [l, h] = column.quarter(j);
        step(l, h, 4 * j, 16 + 4 * j);
      }
    }
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c)));
    for (int t = 0; t < NT; ++t)
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(lo[t], hi[t])),
                               _mm512_mul_ps(d, _mm512_set1_ps(x.d[t * blocks + b])), acc[t]);
  }
  for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y + t * ldy, acc[t]);
}

// A K-quant block of an interleaved panel (quant::interleave_panel: the 16 rows' f16 words side by
// side, then their 4-byte units side by side), decoded a unit of 4 bytes of 16 rows at a time.
// Each lane is one row, so the 6-bit scales and mins of Q4_K and Q5_K (quant::scale_min_k4) and
// the int8 scales of Q6_K are unpacked once per lane, for 16 rows together (KColumn, below).

// Where the 16 rows' copies of the unit at byte `first` of a block begin in the panel's block
// (quant::for_each_unit).
static constexpr int64_t in_column(int64_t first) {
  return kPanelRows * first;
}

// Byte k of each 32-bit lane, as a float (unsigned; signed: as int8).
template <int k, bool is_signed = false>
static inline __m512 lane_byte(__m512i v) {
  if constexpr (is_signed)
    return _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * k), 24));
  else if constexpr (k == 3)
    return _mm512_cvtepi32_ps(_mm512_srli_epi32(v, 24));
  else
    return _mm512_cvtepi32_ps(
        _mm512_and_si512(_mm512_srli_epi32(v, 8 * k), _mm512_set1_epi32(255)));
}

// Q4_K and Q5_K: d (bytes 0-31 of the panel's block), dmin (32-63), the scales' three units
// (64-255), Q5_K's qh (256-767: its unit i holds bits of elements 4i to 4i + 3 of each 32), then
// qs (a unit every 64 bytes): qs's unit j holds, per row, the low nibbles of elements
// 64(j / 8) + 4(j % 8) to + 3 (group 2(j / 8)) and in its high nibbles the elements 32 further
// (group 2(j / 8) + 1); Q5_K's fifth bit of group s's elements is bit s of their qh bytes.
template <quant::Type T>
class KColumn {
  static_assert(T == quant::Type::Q4_K || T == quant::Type::Q5_K);

 public:
  explicit KColumn(const uint8_t* c) : c_(c) {}
  // a_g = d·sc_g and b_g = -dmin·m_g of the 16 rows, as quant::unpack_scales gives them.
  void scales(__m512 (&a)[8], __m512 (&b)[8]) const {
    const __m512 d = _mm512_cvtph_ps(load32(c_ + in_column(0))),  // f16
        dmin = _mm512_cvtph_ps(load32(c_ + in_column(2)));
    const __m512i s0 = _mm512_loadu_si512(c_ + in_column(4)),
                  s1 = _mm512_loadu_si512(c_ + in_column(8)),
                  s2 = _mm512_loadu_si512(c_ + in_column(12));
    const __m512i six = _mm512_set1_epi8(63), four = _mm512_set1_epi8(0x0F),
                  top = _mm512_set1_epi8(0x30);
    // Groups 0-3 in bytes 0-3 of sc[0] and m[0]; groups 4-7 in those of sc[1] and m[1], their
    // top two bits the top bits of s0 (scales) and s1 (mins), moved to bits 4 and 5.
    const __m512i sc[2] = {_mm512_and_si512(s0, six),
                           _mm512_or_si512(_mm512_and_si512(s2, four),
                                           _mm512_and_si512(_mm512_srli_epi32(s0, 2), top))};
    const __m512i m[2] = {_mm512_and_si512(s1, six),
                          _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(s2, 4), four),
                                          _mm512_and_si512(_mm512_srli_epi32(s1, 2), top))};
    // -dmin by its sign bit: exactly unpack_scales' -dmin·m, a zero's sign included.
    const __m512 minus_dmin = _mm512_castsi512_ps(
        _mm512_xor_si512(_mm512_castps_si512(dmin), _mm512_set1_epi32(INT32_MIN)));
    [&]<int... k>(std::integer_sequence<int, k...>) {
      ((a[k] = _mm512_mul_ps(d, lane_byte<k % 4>(sc[k / 4]))), ...);
      ((b[k] = _mm512_mul_ps(minus_dmin, lane_byte<k % 4>(m[k / 4]))), ...);
    }
    (std::make_integer_sequence<int, 8>{});
  }
  // The q of qs's unit 8c + j (c = 0-3, j = 0-7): group 2c's (lo) and group 2c + 1's (hi). Q4_K's
  // hi is left in place (kHighInPlace: 16 times q).
  struct Pair {
    __m512i lo, hi;
  };
  template <int c>
  Pair pair(int j) const {
    const __m512i four = _mm512_set1_epi8(0x0F);
    constexpr int64_t qs = T == quant::Type::Q5_K ? 48 : 16;  // the block's byte
    const __m512i v = _mm512_loadu_si512(c_ + in_column(qs + 4 * (8 * c + j)));
    if constexpr (T == quant::Type::Q4_K) {
      return {_mm512_and_si512(v, four), _mm512_andnot_si512(four, v)};
    } else {  // bits 2c and 2c + 1 of qh to bit 4
      const __m512i qh = _mm512_loadu_si512(c_ + in_column(16 + 4 * j)),
                    fifth = _mm512_set1_epi8(0x10);
      const auto to4 = [&](auto bit) {
        constexpr int shift = 4 - decltype(bit)::value;
        if constexpr (shift >= 0)
          return _mm512_and_si512(_mm512_slli_epi32(qh, shift), fifth);
        else
          return _mm512_and_si512(_mm512_srli_epi32(qh, -shift), fifth);
      };
      return {_mm512_or_si512(_mm512_and_si512(v, four), to4(std::integral_constant<int, 2 * c>{})),
              _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(v, 4), four),
                              to4(std::integral_constant<int, 2 * c + 1>{}))};
    }
  }

 private:
  const uint8_t* c_;
};

// Q6_K: ql (bytes 0-2047 of the panel's block), qh (2048-3071), the scales' four units
// (3072-3327), d (3328-3359). Per 128 elements (half H) and u = 0-7: ql's units 16H + u (A) and
// 16H + 8 + u (B) and qh's unit 8H + u (C) hold, per row, elements 128H + 4u + 32i to + 3 for
// i = 0-3: the low nibbles of A, of B, the high nibbles of A, of B, with bits 2i and 2i + 1 of C's
// bytes above them (bits 4 and 5).
template <>
class KColumn<quant::Type::Q6_K> {
 public:
  explicit KColumn(const uint8_t* c) : c_(c) {}
  // a_g = d·sc_g of the 16 rows (b_g = -32·a_g is folded into the integer sums).
  void scales(__m512 (&a)[16]) const {
    const __m512 d = _mm512_cvtph_ps(load32(c_ + in_column(208)));
    [&]<int... k>(std::integer_sequence<int, k...>) {
      ((a[k] = _mm512_mul_ps(
            d, lane_byte<k % 4, true>(_mm512_loadu_si512(c_ + in_column(192 + 4 * (k / 4)))))),
       ...);
    }
    (std::make_integer_sequence<int, 16>{});
  }
  // The 6-bit q of elements 128H + 4u + 32i to + 3 of the 16 rows, i = 0-3.
  void units(int H, int u, __m512i (&q)[4]) const {
    const __m512i A = _mm512_loadu_si512(c_ + in_column(64 * H + 4 * u)),
                  B = _mm512_loadu_si512(c_ + in_column(64 * H + 32 + 4 * u)),
                  C = _mm512_loadu_si512(c_ + in_column(128 + 32 * H + 4 * u));
    const __m512i four = _mm512_set1_epi8(0x0F), two = _mm512_set1_epi8(0x30);
    const auto with = [&](__m512i low, __m512i high) {  // low's bits 0-3, high's 4 and 5
      return _mm512_or_si512(_mm512_and_si512(low, four), _mm512_and_si512(high, two));
    };
    q[0] = with(A, _mm512_slli_epi32(C, 4));
    q[1] = with(B, _mm512_slli_epi32(C, 2));
    q[2] = with(_mm512_srli_epi32(A, 4), C);
    q[3] = with(_mm512_srli_epi32(B, 4), _mm512_srli_epi32(C, 2));
  }

 private:
  const uint8_t* c_;
};

// Decode on interleaved K-quant panels: as panel_fused, a group's 16 rows' sums in the 16 lanes
// of one register, converted and scaled (a_g·d_x) once per group. Q4_K's high nibbles stay in
// place (their sums 16 times too large, shifted back exactly, as Q4_0's); Q4_K's and Q5_K's
// minimums add b_g·e_g per group. Q6_K's zero point is folded into the sums' start, -32·Σx per 16,
// its groups of 16 scaled by the d_x of their 32.
template <quant::Type T, int NT>
static inline void panel_fused_k(const uint8_t* panel, int64_t in, const simd::QuantX& x, float* y,
                                 int64_t ldy) {
  constexpr int64_t kColumn = kPanelRows * quant::layout(T).block_bytes;  // a block of 16 rows
  const int64_t blocks = in / 256, chunks = in / 32;
  const auto x4 = [&](int t, int64_t k) { return broadcast4(x.q + t * in + k); };
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* c = panel + b * kColumn;
    prefetch_ahead<kColumn>(c, decode_ahead(in));
    const KColumn<T> column(c);
    const int64_t e0 = 256 * b;  // the block's first element
    if constexpr (T != quant::Type::Q6_K) {
      __m512 a[8], m[8];
      column.scales(a, m);
      const auto groups = [&]<int c>(std::integral_constant<int, c>) {  // 2c (lo) and 2c + 1 (hi)
        __m512i lo[NT], hi[NT];
        for (int t = 0; t < NT; ++t) lo[t] = hi[t] = _mm512_setzero_si512();
        for (int j = 0; j < 8; ++j) {
          const auto q = column.template pair<c>(j);
          for (int t = 0; t < NT; ++t) {
            lo[t] = _mm512_dpbusd_epi32(lo[t], q.lo, x4(t, e0 + 64 * c + 4 * j));
            hi[t] = _mm512_dpbusd_epi32(hi[t], q.hi, x4(t, e0 + 64 * c + 32 + 4 * j));
          }
        }
        for (int t = 0; t < NT; ++t) {
          if constexpr (kHighInPlace<T>) hi[t] = _mm512_srai_epi32(hi[t], 4);
          const float* dx = x.d + t * chunks + 8 * b + 2 * c;
          const float* ex = x.e32 + t * chunks + 8 * b + 2 * c;
          acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo[t]),
                                   _mm512_mul_ps(a[2 * c], _mm512_set1_ps(dx[0])), acc[t]);
          acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi[t]),
                                   _mm512_mul_ps(a[2 * c + 1], _mm512_set1_ps(dx[1])), acc[t]);
          acc[t] = _mm512_fmadd_ps(m[2 * c], _mm512_set1_ps(ex[0]), acc[t]);
          acc[t] = _mm512_fmadd_ps(m[2 * c + 1], _mm512_set1_ps(ex[1]), acc[t]);
        }
      };
      groups(std::integral_constant<int, 0>{}), groups(std::integral_constant<int, 1>{});
      groups(std::integral_constant<int, 2>{}), groups(std::integral_constant<int, 3>{});
    } else {
      static_assert(T == quant::Type::Q6_K);
      __m512 a[16];
      column.scales(a);
      for (int H = 0; H < 2; ++H)
        for (int v = 0; v < 2; ++v) {  // u = 4v to 4v + 3: groups 8H + v + 2i, i = 0-3
          __m512i sum[4][NT];
          for (int t = 0; t < NT; ++t) {
            const int32_t* s16 = x.s + t * (in / 16) + 16 * b + 8 * H + v;  // Σx per 16
            for (int i = 0; i < 4; ++i) sum[i][t] = _mm512_set1_epi32(-32 * s16[2 * i]);
          }
          for (int u = 4 * v; u < 4 * v + 4; ++u) {
            __m512i q[4];
            column.units(H, u, q);
            for (int t = 0; t < NT; ++t)
              for (int i = 0; i < 4; ++i)
                sum[i][t] =
                    _mm512_dpbusd_epi32(sum[i][t], q[i], x4(t, e0 + 128 * H + 32 * i + 4 * u));
          }
          for (int t = 0; t < NT; ++t)
            for (int i = 0; i < 4; ++i) {
              const int g = 8 * H + v + 2 * i;  // its 32: g / 2
              const float dx = x.d[t * chunks + 8 * b + g / 2];
              acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[i][t]),
                                       _mm512_mul_ps(a[g], _mm512_set1_ps(dx)), acc[t]);
            }
        }
    }
  }
  for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y + t * ldy, acc[t]);
}

template <quant::Type T, int NT>
static inline void panels(const std::byte* w, int64_t rows, int64_t in, const simd::QuantX& x,
                          float* y, int64_t ldy) {
  const int64_t stride = quant::row_bytes(T, in);
  const auto* u = reinterpret_cast<const uint8_t*>(w);
  for (int64_t r = 0; r < rows; r += kPanelRows)
    if constexpr (quant::layout(T).block_elements == 256)
      panel_fused_k<T, NT>(u + r * stride, in, x, y + r, ldy);
    else
      panel_fused<T, NT>(u + r * stride, in, x, y + r, ldy);
}

// An interleaved panel (quant::interleave_panel) into P, A and B as pack_panel makes them from
// the rows in file order, the same values: a 64-byte load of the panel is already 4 bytes of each
// of the 16 rows, so only the bytes' decoding is left, no transpose (with the deinterleaving
// before pack_panel, 12% of a 1b Q4_0 prefill). B is made only where the type has a free minimum
// (Q4_K, Q5_K); Q5_0's zero point enters the sums. (Q4_0's and Q8_0's panels are multiplied as
// they lie, below: direct_gemm.)
template <quant::Type T>
static inline void pack_interleaved_panel(const uint8_t* panel, int64_t in, uint8_t* P, float* A,
                                          [[maybe_unused]] float* B) {
  constexpr quant::Layout L = quant::layout(T);
  constexpr int64_t kColumn = kPanelRows * L.block_bytes;
  for (int64_t b = 0; b < in / L.block_elements; ++b) {
    const uint8_t* c = panel + b * kColumn;
    uint8_t* Pb = P + b * L.block_elements * kPanelRows;  // element e of the block at Pb + 16e
    const auto store = [&](int64_t e, __m512i q) { _mm512_storeu_si512(Pb + 16 * e, q); };
    if constexpr (T == quant::Type::Q4_K || T == quant::Type::Q5_K) {
      const KColumn<T> column(c);
      __m512 a[8], m[8];
      column.scales(a, m);
      for (int g = 0; g < 8; ++g) {
        _mm512_storeu_ps(A + (8 * b + g) * kPanelRows, a[g]);
        _mm512_storeu_ps(B + (8 * b + g) * kPanelRows, m[g]);
      }
      [&]<int... k>(std::integer_sequence<int, k...>) {  // units 8c + j: elements 64c + 4j, + 32
        (
            [&] {
              constexpr int c = k / 8, j = k % 8;
              const auto q = column.template pair<c>(j);
              store(64 * c + 4 * j, q.lo);
              store(64 * c + 32 + 4 * j, kHighInPlace<T> ? _mm512_srli_epi16(q.hi, 4) : q.hi);
            }(),
            ...);
      }
      (std::make_integer_sequence<int, 32>{});
    } else if constexpr (T == quant::Type::Q6_K) {
      const KColumn<T> column(c);
      __m512 a[16];
      column.scales(a);
      for (int g = 0; g < 16; ++g) _mm512_storeu_ps(A + (16 * b + g) * kPanelRows, a[g]);
      for (int H = 0; H < 2; ++H)
        for (int u = 0; u < 8; ++u) {
          __m512i q[4];
          column.units(H, u, q);
          for (int i = 0; i < 4; ++i) store(128 * H + 32 * i + 4 * u, q[i]);
        }
    } else {
      static_assert(T == quant::Type::Q5_0);
      _mm512_storeu_ps(A + b * kPanelRows,
                       _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c))));
      const Q5Column column(c);
      for (int j = 0; j < 4; ++j) {
        const auto [ql, qh] = column.quarter(j);
        store(4 * j, ql), store(16 + 4 * j, qh);
      }
    }
  }
}

// The GEMM of Q4_0 and Q8_0 on their interleaved panels as they lie, not packed (kDirectGemm).
// A unit of a block (4 bytes of each of the 16 rows) is, decoded in registers, one or two of the
// packed panel's 4-element steps: Q8_0's bytes flipped to q + 128; Q4_0's low nibbles elements
// 4j to 4j + 3 and its high nibbles 16 + 4j to 16 + 4j + 3, masked and shifted. The block's first
// 32 bytes are the rows' d (A). The same integer sums and the same scaling as panel_tile's on the
// packed panel, so the same values. Packing read each panel, decoded it and wrote it once per 256
// tokens: ~7% of a 1b Q4_0 prefill's samples. BM_FastLinearQuantInterleaved (the 1b down
// projection, 512 tokens), three alternating pairs: Q8_0 820-983 → 883-1039 GFLOP/s, Q4_0
// 836-1038 → 915-1094 (each pair faster). A 1b prefill of 128 tokens, three alternating pairs:
// Q4_0 578-600 → 616-619 tok/s (0.46-0.48 → 0.49-0.50 of the int8 peak), Q8_0 569-573 →
// 577-604.
template <quant::Type T>
inline constexpr bool kDirectGemm = T == quant::Type::Q4_0 || T == quant::Type::Q8_0;
template <quant::Type T, int NP, int NT>
static inline void panel_tile_direct(const uint8_t* panels, int64_t panel_bytes, int64_t in,
                                     const simd::QuantX& x, int64_t t0, float* y, int64_t ldy,
                                     int64_t n) {
  static_assert(kDirectGemm<T>);
  constexpr int64_t kColumn = kPanelRows * quant::layout(T).block_bytes;
  constexpr int Z = quant::zero_point(T);
  const int64_t blocks = in / 32;
  __m512 acc[NP][NT];
  for (int p = 0; p < NP; ++p)
    for (int t = 0; t < NT; ++t) acc[p][t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    const auto column = [&](int p) { return panels + p * panel_bytes + b * kColumn; };
    __m512i sum[NP][NT];
    for (int t = 0; t < NT; ++t) {
      const int32_t* s16 = x.s + (t0 + t) * (in / 16) + 2 * b;  // Σx per 16
      const __m512i start = _mm512_set1_epi32(-Z * (s16[0] + s16[1]));
      for (int p = 0; p < NP; ++p) sum[p][t] = start;
    }
    const int8_t* xb = x.q + t0 * in + 32 * b;
    // The NP panels' step q (elements k to k + 3 of the block) times each token's.
    const auto step = [&](const __m512i(&q)[NP], int k) {
      for (int t = 0; t < NT; ++t) {
        const __m512i xt = broadcast4(xb + t * in + k);
        for (int p = 0; p < NP; ++p) sum[p][t] = _mm512_dpbusd_epi32(sum[p][t], q[p], xt);
      }
    };
    if constexpr (T == quant::Type::Q8_0) {
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        __m512i q[NP];
        for (int p = 0; p < NP; ++p)
          q[p] = _mm512_xor_si512(_mm512_loadu_si512(column(p) + 32 + 64 * j),
                                  _mm512_set1_epi8(int8_t(0x80)));
        step(q, 4 * j);
      }
    } else {
      const __m512i low = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        __m512i lo[NP], hi[NP];
        for (int p = 0; p < NP; ++p) {
          const __m512i v = _mm512_loadu_si512(column(p) + 32 + 64 * j);
          lo[p] = _mm512_and_si512(v, low);
          hi[p] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
        }
        step(lo, 4 * j);
        step(hi, 16 + 4 * j);
      }
    }
    __m512 a[NP];
    for (int p = 0; p < NP; ++p)
      a[p] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(column(p))));
    for (int t = 0; t < NT; ++t) {
      const __m512 d = _mm512_set1_ps(x.d[(t0 + t) * blocks + b]);
      for (int p = 0; p < NP; ++p)
        acc[p][t] =
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[p][t]), _mm512_mul_ps(a[p], d), acc[p][t]);
    }
  }
  for (int p = 0; p < NP; ++p) {
    const int64_t valid = std::clamp<int64_t>(n - p * kPanelRows, 0, kPanelRows);
    const __mmask16 rows = __mmask16((1u << valid) - 1);
    for (int t = 0; t < NT; ++t)
      _mm512_mask_storeu_ps(y + (t0 + t) * ldy + p * kPanelRows, rows, acc[p][t]);
  }
}
// All the rows in row_blocks, multiplied as they lie.
template <quant::Type T>
static inline void direct_gemm(const uint8_t* u, int64_t rows, int64_t in, const simd::QuantX& x,
                               int64_t tokens, float* y, int64_t ldy) {
  const int64_t stride = quant::row_bytes(T, in);
  row_blocks(
      u, rows, stride, tokens, [](int64_t, int64_t) {},
      [&]<int NP, int NT>(int64_t r0, int64_t n, int64_t t0) {
        panel_tile_direct<T, NP, NT>(u + r0 * stride, kPanelRows * stride, in, x, t0, y + r0, ldy,
                                     n);
      });
}

// The GEMM on interleaved panels (`rows` a multiple of kPanelRows), each packed as it lies
// (Q4_0's and Q8_0's multiplied as they lie: direct_gemm).
template <quant::Type T>
static inline void panels_gemm(const std::byte* w, int64_t rows, int64_t in, const simd::QuantX& x,
                               int64_t tokens, float* y, int64_t ldy, uint8_t* q, float* ab) {
  const auto* u = reinterpret_cast<const uint8_t*>(w);
  if constexpr (kDirectGemm<T>)
    direct_gemm<T>(u, rows, in, x, tokens, y, ldy);
  else
    packed_gemm<T>(u, rows, in, x, tokens, y, ldy, q, ab, ab + 2 * in,
                   [&](int64_t r, int64_t, uint8_t* P, float* A, float* B) {
                     pack_interleaved_panel<T>(u + r * quant::row_bytes(T, in), in, P, A, B);
                   });
}
}  // namespace detail

GEMMA3_QUANTDOT_LINKAGE void panels(quant::Type type, const std::byte* w, int64_t rows, int64_t in,
                                    const simd::QuantX& x, int64_t tokens, float* y, int64_t ldy) {
  quant::with_type(type, [&](auto T) {
    if constexpr (quant::interleavable(T.value)) {  // (no other type is: for_each_unit)
      switch (tokens) {
        case 1:
          return detail::panels<T.value, 1>(w, rows, in, x, y, ldy);
        case 2:
          return detail::panels<T.value, 2>(w, rows, in, x, y, ldy);
        case 3:
          return detail::panels<T.value, 3>(w, rows, in, x, y, ldy);
        default:
          static_assert(kFusedTokens == 4);
          return detail::panels<T.value, 4>(w, rows, in, x, y, ldy);
      }
    }
  });
}

GEMMA3_QUANTDOT_LINKAGE void panels_gemm(quant::Type type, const std::byte* w, int64_t rows,
                                         int64_t in, const simd::QuantX& x, int64_t tokens,
                                         float* y, int64_t ldy, uint8_t* q, float* ab) {
  quant::with_type(type, [&](auto T) {
    if constexpr (quant::interleavable(T.value))
      detail::panels_gemm<T.value>(w, rows, in, x, tokens, y, ldy, q, ab);
  });
}

GEMMA3_QUANTDOT_LINKAGE void rows(quant::Type type, const std::byte* w, int64_t rows, int64_t in,
                                  const simd::QuantX& x, int64_t tokens, float* y, int64_t ldy,
                                  uint8_t* q, float* ab) {
  quant::with_type(type, [&](auto T) {
    switch (tokens) {
      case 1:
        return detail::fused<T.value, 1>(w, rows, in, x, y, ldy, ab);
      case 2:
        return detail::fused<T.value, 2>(w, rows, in, x, y, ldy, ab);
      case 3:
        return detail::fused<T.value, 3>(w, rows, in, x, y, ldy, ab);
      case 4:
        static_assert(kFusedTokens == 4);
        return detail::fused<T.value, 4>(w, rows, in, x, y, ldy, ab);
      default:
        return detail::gemm<T.value>(w, rows, in, x, tokens, y, ldy, q, ab);
    }
  });
}

GEMMA3_QUANTDOT_LINKAGE void quantize_row(const float* x, int64_t in,
                                          const quant::QuantizedRow& out) {
  constexpr uint32_t kInfinity = 0x7f800000u;
  const __m512i magnitude = _mm512_set1_epi32(0x7fffffff);
  for (int64_t blk = 0; blk < in / 32; ++blk) {
    const __m512 lo = _mm512_loadu_ps(x + 32 * blk), hi = _mm512_loadu_ps(x + 32 * blk + 16);
    int8_t* q = out.q + 32 * blk;
    const uint32_t amax_bits = _mm512_reduce_max_epu32(
        _mm512_max_epu32(_mm512_and_si512(_mm512_castps_si512(lo), magnitude),
                         _mm512_and_si512(_mm512_castps_si512(hi), magnitude)));
    float d = std::numeric_limits<float>::quiet_NaN();
    int32_t s[2] = {0, 0};
    if (amax_bits >= kInfinity) {  // not finite: d = NaN, q = 0
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), _mm256_setzero_si256());
    } else {
      float amax;
      std::memcpy(&amax, &amax_bits, 4);
      d = amax / 127.0f;
      const auto [scale, id] = quant::activation_scale(amax);
      const __m512 vs = _mm512_set1_ps(scale), vi = _mm512_set1_ps(id);
      const auto half = [&](__m512 v, int h) {
        const __m512i i =
            _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(_mm512_mul_ps(v, vs), vi),
                                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16 * h), _mm512_cvtepi32_epi8(i));
        s[h] = _mm512_reduce_add_epi32(i);
      };
      half(lo, 0), half(hi, 1);
    }
    out.d[blk] = d, out.s[2 * blk] = s[0], out.s[2 * blk + 1] = s[1];
    quant::block_offsets(d, s[0], s[1], out.e16 + 2 * blk, out.e32 + blk);
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
  // The lanes wrap by design (vpdpbusd is modular); summing them as float keeps the reduction
  // free of signed overflow, which C++ would make undefined.
  *sink = _mm512_reduce_add_ps(_mm512_cvtepi32_ps(total));  // keeps the loop alive
  return 2.0 * 64.0 * double(iterations) * kChains;
}
#endif

}  // namespace gemma3::kernels::quantdot
