// The SIMD bodies of the hot kernels (declared in kernels/simd_decl.hpp), written once with xsimd
// and templated on the instruction set (Arch). kernels/dispatch.hpp picks the Arch: at compile time
// in header-only use, or at run time when the project links gemma3::kernels, which compiles these
// bodies once per instruction set (src/kernels/arch/*.cpp).
//
// Each functor has a plain twin (kernels/plain.hpp) and is tested against it. This header uses
// nothing but xsimd: it is compiled with -mavx512bw and the like, and a shared inline function
// compiled that way could otherwise be picked by the linker for code that runs on older CPUs (the
// helpers below are `static` for the same reason).
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <xsimd/xsimd.hpp>

#include "gemma3/kernels/simd_decl.hpp"

namespace gemma3::inline GEMMA3_MODE::kernels::simd {

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

// The GEMVs read a row in whole vectors ("chunks") from the chunk boundary at or before its first
// element to the one after its last (see GemvX: with the row's shift, this keeps every load of W
// and of x within a cache line). The elements of the first and the last chunk outside [0, in)
// belong to the neighbouring rows, and the caller zeroes their lanes (x is zero there too, but a
// neighbour's inf or NaN times zero is not). This calls `edge(p, j, first)` for those two chunks:
// the row's j-th chunk, to be read at p, whose lane 0 holds row element `first` (negative in the
// first chunk); where the chunk reaches outside the block [block, block + size) that the caller
// gave the kernel (memory that may not be ours to read: rows shorter than a chunk reach past
// their neighbours), p is a copy with only the row's elements. The chunks between, [j0, j1), are
// whole and inside the row, left to the caller's unmasked loop.
template <class T, class Edge>
static inline void gemv_edges(const T* row, int64_t n, int64_t d, int64_t in, int64_t C,
                              const T* block, int64_t size, Edge&& edge, int64_t& j0, int64_t& j1) {
  const auto chunk = [&](int64_t j) {
    const int64_t first = j * C - d;  // the row element in lane 0 of the chunk
    alignas(64) T copy[64 / sizeof(T)];
    // Compared as addresses: a pointer outside the block may not even be formed.
    const uintptr_t at = reinterpret_cast<uintptr_t>(row) + uintptr_t(first * int64_t(sizeof(T)));
    const uintptr_t begin = reinterpret_cast<uintptr_t>(block);
    const T* p = reinterpret_cast<const T*>(at);
    if (at < begin || at + uintptr_t(C) * sizeof(T) > begin + uintptr_t(size) * sizeof(T)) {
      const int64_t from = std::max<int64_t>(first, 0), to = std::min(first + C, in);
      std::memset(copy, 0, sizeof copy);
      std::memcpy(copy + (from - first), row + from, std::size_t(to - from) * sizeof(T));
      p = copy;
    }
    edge(p, j, first);
  };
  j0 = 0, j1 = n;
  if (d > 0) chunk(j0++);
  if ((d + in) % C != 0 && j1 > j0) chunk(--j1);
}

// One row at a time, so that the matrix is read as one sequential stream (rows are contiguous;
// interleaving rows to share the loads of x would make several short streams); x comes from L1.
// Every weight byte is read once. Chunks of 2B elements (one vector of bf16 pairs), two per step,
// four independent FMA chains; x's copy for the row's shift pairs each lane's low and high half
// with its element of x (GemvX).
template <class Arch>
void GemvBf16::operator()(Arch, const uint16_t* w, int64_t rows, int64_t in, const GemvX& x,
                          float* y) const {
  using batch = xsimd::batch<float, Arch>;
  constexpr int64_t B = batch::size;
  constexpr int64_t C = 2 * B;  // bf16 elements per chunk
  alignas(64) float lane_of_pair[B];
  for (int64_t l = 0; l < B; ++l) lane_of_pair[l] = float(2 * l);
  const batch pair_offset = batch::load_aligned(lane_of_pair);
  const batch zero(0.f), columns = batch(float(in));
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* row = w + r * in;
    const int64_t shift = gemv_shift(reinterpret_cast<uintptr_t>(row), 2), d = shift % C;
    const float* x_lo = x.lo[shift] + shift / C * B;  // pairs x with the low halves, aligned
    const float* x_hi = x.hi[shift] + shift / C * B;  // ... and with the high halves
    batch acc0(0.f), acc1(0.f), acc2(0.f), acc3(0.f);
    int64_t j0, j1;
    gemv_edges(
        row, (d + in + C - 1) / C, d, in, C, w, rows * in,
        [&](const uint16_t* p, int64_t j, int64_t first) {
          batch lo, hi;
          widen_bf16_pairs<Arch>(p, lo, hi);
          const batch element = batch(float(first)) + pair_offset;  // of low halves
          lo = xsimd::select(element >= zero && element < columns, lo, zero);
          hi = xsimd::select(element + 1.f >= zero && element + 1.f < columns, hi, zero);
          acc0 = xsimd::fma(lo, batch::load_aligned(x_lo + j * B), acc0);
          acc1 = xsimd::fma(hi, batch::load_aligned(x_hi + j * B), acc1);
        },
        j0, j1);
    int64_t j = j0;
    for (; j + 2 <= j1; j += 2) {
      const uint16_t* p = row + (j * C - d);
      __builtin_prefetch(p + kGemvPrefetchBytes / 2, 0, 0);
      __builtin_prefetch(p + C + kGemvPrefetchBytes / 2, 0, 0);
      batch lo0, hi0, lo1, hi1;
      widen_bf16_pairs<Arch>(p, lo0, hi0);
      widen_bf16_pairs<Arch>(p + C, lo1, hi1);
      acc0 = xsimd::fma(lo0, batch::load_aligned(x_lo + j * B), acc0);
      acc1 = xsimd::fma(hi0, batch::load_aligned(x_hi + j * B), acc1);
      acc2 = xsimd::fma(lo1, batch::load_aligned(x_lo + j * B + B), acc2);
      acc3 = xsimd::fma(hi1, batch::load_aligned(x_hi + j * B + B), acc3);
    }
    if (j < j1) {
      __builtin_prefetch(row + (j * C - d) + kGemvPrefetchBytes / 2, 0, 0);
      batch lo, hi;
      widen_bf16_pairs<Arch>(row + (j * C - d), lo, hi);
      acc0 = xsimd::fma(lo, batch::load_aligned(x_lo + j * B), acc0);
      acc1 = xsimd::fma(hi, batch::load_aligned(x_hi + j * B), acc1);
    }
    y[r] = xsimd::hadd((acc0 + acc2) + (acc1 + acc3));
  }
}

// The same for f32 weights: chunks of B elements, four per step.
template <class Arch>
void GemvF32::operator()(Arch, const float* w, int64_t rows, int64_t in, const GemvX& x,
                         float* y) const {
  using batch = xsimd::batch<float, Arch>;
  constexpr int64_t B = batch::size;
  alignas(64) float lane[B];
  for (int64_t l = 0; l < B; ++l) lane[l] = float(l);
  const batch lane_offset = batch::load_aligned(lane);
  const batch zero(0.f), columns = batch(float(in));
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = w + r * in;
    const int64_t shift = gemv_shift(reinterpret_cast<uintptr_t>(row), 4), d = shift % B;
    const float* xs = x.lo[shift] + shift / B * B;
    batch acc[4] = {batch(0.f), batch(0.f), batch(0.f), batch(0.f)};
    int64_t j0, j1;
    gemv_edges(
        row, (d + in + B - 1) / B, d, in, B, w, rows * in,
        [&](const float* p, int64_t j, int64_t first) {
          const batch element = batch(float(first)) + lane_offset;
          const batch v =
              xsimd::select(element >= zero && element < columns, batch::load_unaligned(p), zero);
          acc[0] = xsimd::fma(v, batch::load_aligned(xs + j * B), acc[0]);
        },
        j0, j1);
    int64_t j = j0;
    for (; j + 4 <= j1; j += 4)
      for (int u = 0; u < 4; ++u) {
        __builtin_prefetch(row + ((j + u) * B - d) + kGemvPrefetchBytes / 4, 0, 0);
        acc[u] = xsimd::fma(batch::load_unaligned(row + ((j + u) * B - d)),
                            batch::load_aligned(xs + (j + u) * B), acc[u]);
      }
    for (; j < j1; ++j)
      acc[0] = xsimd::fma(batch::load_unaligned(row + (j * B - d)), batch::load_aligned(xs + j * B),
                          acc[0]);
    y[r] = xsimd::hadd((acc[0] + acc[1]) + (acc[2] + acc[3]));
  }
}

// Register tile of the prefill GEMM: MR weight rows x NV vectors of tokens, MR·NV accumulators.
// AVX-512 (and NEON) have 32 vector registers: 6 x 4 = 24 accumulators, 4 loads of X and one
// broadcast of W; the 16-register instruction sets take 6 x 2.
template <class Arch>
static constexpr int gemm_nv() {
  return xsimd::batch<float, Arch>::size >= 16 ? 4 : 2;
}
static constexpr int kGemmMR = 6;

template <class Arch>
GemmLayout GemmTokenLayout::operator()(Arch) const {
  constexpr int64_t B = xsimd::batch<float, Arch>::size;
  return {gemm_nv<Arch>() * B, B};
}

// The micro-kernel: acc[MR, NV·B] (+)= W[MR, kc] · Xp[kc, NV·B], the outer product of a column of
// W (each element widened and broadcast) with a row of X (NV vectors of tokens) at each k. W rows
// have leading dimension ldw (read in place from the checkpoint: widening a bf16 element on its
// way to the broadcast costs two integer ops beside 4 FMAs, less than writing and reading back an
// f32 copy of the block), Xp rows are NV·B wide. `first` (the first
// k block) starts from zero rather than the partial sums. Every output sums its k in order,
// whatever the tile or thread: results do not depend on either.
template <int MR, int NV, class Arch, class W>
static inline void gemm_tile(const W* wp, int64_t ldw, const float* xp, int64_t kc,
                             const GemmTileOut& o, bool first) {
  using batch = xsimd::batch<float, Arch>;
  constexpr int64_t B = batch::size;
  batch acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v)
      acc[i][v] = first ? batch(0.f) : batch::load_unaligned(o.partial + i * o.ld_partial + v * B);
  for (int64_t k = 0; k < kc; ++k) {
    batch x[NV];
    for (int v = 0; v < NV; ++v) x[v] = batch::load_unaligned(xp + k * NV * B + v * B);
    for (int i = 0; i < MR; ++i) {
      const batch wi(widen(wp[i * ldw + k]));
      for (int v = 0; v < NV; ++v) acc[i][v] = xsimd::fma(wi, x[v], acc[i][v]);
    }
  }
  if (o.y && o.bias)
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < NV; ++v) acc[i][v] += batch(o.bias[i]);
  if (!o.y || o.packed) {
    float* to = o.y ? o.y : o.partial;
    const int64_t ld = o.y ? o.ldy : o.ld_partial;
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < NV; ++v) acc[i][v].store_unaligned(to + i * ld + v * B);
    return;
  }
  alignas(64) float out[MR][NV * B];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v].store_aligned(out[i] + v * B);
  for (int64_t t = 0; t < o.valid; ++t)
    for (int i = 0; i < MR; ++i) o.y[t * o.ldy + i] = out[i][t];
}

// gemm_tile with run-time tails: mr <= MR rows, nv <= NV vectors (the last rows of a matrix, the
// last token panel).
template <int MR, int NV, class Arch, class W>
static inline void gemm_tile_tail(int64_t mr, int64_t nv, const W* wp, int64_t ldw, const float* xp,
                                  int64_t kc, const GemmTileOut& o, bool first) {
  if constexpr (MR > 0 && NV > 0) {
    if (mr < MR) return gemm_tile_tail<MR - 1, NV, Arch>(mr, nv, wp, ldw, xp, kc, o, first);
    if (nv < NV) return gemm_tile_tail<MR, NV - 1, Arch>(mr, nv, wp, ldw, xp, kc, o, first);
    gemm_tile<MR, NV, Arch>(wp, ldw, xp, kc, o, first);
  }
}

// BLIS-style loops: for each k block, the register tiles sweep the block of W (in L2) over every
// token panel, the tokens along the lanes, so no sum is ever reduced across lanes.
template <class W>
template <class Arch>
void Gemm<W>::operator()(Arch, const W* w, int64_t rows, int64_t K, const float* xp, int64_t tokens,
                         int64_t T_pad, float* partial, const GemmY& y) const {
  constexpr int NV = gemm_nv<Arch>();
  constexpr int64_t B = xsimd::batch<float, Arch>::size, NR = NV * B;
  for (int64_t k0 = 0; k0 < K; k0 += KC) {
    const int64_t kc = K - k0 < KC ? K - k0 : KC;
    const bool last = k0 + kc == K;
    for (int64_t t0 = 0; t0 < T_pad; t0 += NR) {
      const int64_t width = T_pad - t0 < NR ? T_pad - t0 : NR;
      const float* xb = xp + t0 * K + k0 * width;  // rows k0 .. k0 + kc of this token panel
      const int64_t valid = tokens - t0 < width ? tokens - t0 : width;
      for (int64_t r = 0; r < rows; r += kGemmMR) {
        const int64_t mr = rows - r < kGemmMR ? rows - r : kGemmMR;
        const int64_t row = y.row0 + r;
        float* const out = y.packed ? y.data + t0 * y.ld + row * width : y.data + t0 * y.ld + row;
        const GemmTileOut o{partial + r * T_pad + t0,       T_pad, last ? out : nullptr,
                            y.packed ? width : y.ld,        valid, y.packed,
                            y.bias ? y.bias + row : nullptr};
        if (mr == kGemmMR && width == NR)
          gemm_tile<kGemmMR, NV, Arch>(w + r * K + k0, K, xb, kc, o, k0 == 0);
        else
          gemm_tile_tail<kGemmMR, NV, Arch>(mr, width / B, w + r * K + k0, K, xb, kc, o, k0 == 0);
      }
    }
  }
}

// Every cache line of the d floats at r (a row need not start on a line), asked for into the
// cache level of __builtin_prefetch's `locality` (3: L1, 2: L2).
template <int kLocality>
static inline void prefetch_row(const float* r, int64_t d) {
  const char* last = reinterpret_cast<const char*>(r + d) - 1;
  for (const char* c = reinterpret_cast<const char*>(r); c < last; c += 64)
    __builtin_prefetch(c, 0, kLocality);
  __builtin_prefetch(last, 0, kLocality);
}

// p[h][j] = q_h · k_j for G queries and U keys: each load of a query serves U keys, each load of a
// key G queries (U·G accumulators: 16 on 32-register instruction sets, 8 on 16-register ones).
// Beside each load of a key, the same place in row `next[j]` is asked for into L1 (attend_queries:
// the next block's keys; the last line of a row that does not start on one is the caller's).
template <int G, int U, class Arch>
static inline void dot_products(const float* q, int64_t d, const float* const* k, float* p,
                                int64_t ld_p, const float* const* next) {
  using batch = xsimd::batch<float, Arch>;
  constexpr int64_t B = batch::size;
  const int64_t end = (d / B) * B;
  batch acc[G][U];
  for (int h = 0; h < G; ++h)
    for (int j = 0; j < U; ++j) acc[h][j] = batch(0.f);
  for (int64_t i = 0; i < end; i += B) {
    batch key[U];
    for (int j = 0; j < U; ++j) {
      key[j] = batch::load_unaligned(k[j] + i);
      __builtin_prefetch(next[j] + i, 0, 3);
    }
    for (int h = 0; h < G; ++h) {
      const batch qh = batch::load_unaligned(q + h * d + i);
      for (int j = 0; j < U; ++j) acc[h][j] = xsimd::fma(qh, key[j], acc[h][j]);
    }
  }
  for (int h = 0; h < G; ++h)
    for (int j = 0; j < U; ++j) {
      float dot = xsimd::hadd(acc[h][j]);
      for (int64_t i = end; i < d; ++i) dot += q[h * d + i] * k[j][i];
      p[h * ld_p + j] = dot;
    }
}

// o_h[i : i + C·B] = o_h·correction_h + Σ_u p[h][u]·v_u[i : i + C·B] for G queries (o_h at
// out + h·d) and the block's n keys: each broadcast of a weight p serves C vectors of a value row,
// each load of a value row G queries. As in dot_products, beside each load of a value the same
// place in row next[u] is asked for.
template <int G, int C, int64_t kKeys, class Arch>
static inline void accumulate_values(const float (*p)[kKeys], const float* const* v, int64_t n,
                                     const float* correction, float* out, int64_t d, int64_t i,
                                     const float* const* next) {
  using batch = xsimd::batch<float, Arch>;
  constexpr int64_t B = batch::size;
  batch o[G][C];
  for (int h = 0; h < G; ++h)
    for (int c = 0; c < C; ++c)
      o[h][c] = batch::load_unaligned(out + h * d + i + c * B) * batch(correction[h]);
  for (int64_t u = 0; u < n; ++u) {
    batch value[C];
    for (int c = 0; c < C; ++c) {
      value[c] = batch::load_unaligned(v[u] + i + c * B);
      __builtin_prefetch(next[u] + i + c * B, 0, 3);
    }
    for (int h = 0; h < G; ++h) {
      const batch weight(p[h][u]);
      for (int c = 0; c < C; ++c) o[h][c] = xsimd::fma(weight, value[c], o[h][c]);
    }
  }
  for (int h = 0; h < G; ++h)
    for (int c = 0; c < C; ++c) o[h][c].store_unaligned(out + h * d + i + c * B);
}

// Online softmax (running max m, running sum l, unnormalised output o), so nothing grows with the
// number of keys, taken a block of 16 keys at a time: the block's scores s_j = scale·q·k_j
// (soft-capped if cap > 0), m' = max(m, max_j s_j), o = o·e^(m-m') + Σ_j e^(s_j-m')·v_j,
// l = l·e^(m-m') + Σ_j e^(s_j-m'); finally o / l (or, for a partial softmax, m_out and l_out
// given, m, l and o as they are). Per block rather than per key, o is rescaled and
// stored once and e^(m-m') computed once, and the block's e^(s_j-m') are one vector exp instead of
// a rescale pass and scalar exponentials per key. G
// queries at a time share every load of a key and of a value (a GQA group: 4 query heads per key
// head at 270m and 1b).
template <int G, class Arch>
static inline void attend_queries(const float* q, int64_t d, const KeySegment* segs, int64_t n_segs,
                                  float scale, float cap, float* out, float* m_out, float* l_out) {
  using batch = xsimd::batch<float, Arch>;
  constexpr int64_t B = batch::size;
  constexpr int64_t kKeys = 16;       // keys per block
  constexpr int U = B >= 16 ? 4 : 2;  // keys per pass of dot_products
  constexpr int C = B >= 16 ? 4 : 2;  // vectors of d per pass of accumulate_values
  static_assert(kKeys % B == 0 && kKeys % U == 0);
  const int64_t end = (d / B) * B;
  float m[G], l[G];
  for (int h = 0; h < G; ++h) m[h] = -__builtin_inff(), l[h] = 0.f;
  for (int64_t i = 0; i < G * d; ++i) out[i] = 0.f;
  alignas(64) float p[G][kKeys];  // the block's scores, then their e^(s - m')
  const float* k[kKeys];          // the block's key rows
  const float* v[kKeys];          // the block's value rows
  const float* next_k[kKeys];     // the next block's (the block's own where it is the last)
  const float* next_v[kKeys];
  // In decode a call's keys come from memory: a span of 64 cached keys (attention.hpp), its values
  // read 16 rows side by side, streams too short and too many for the hardware prefetchers. So
  // the rows of the first kColdKeys keys (a decode span's all) are asked for into L2 on entry, and
  // each block asks for the next block's rows into L1 beside its own loads (dot_products,
  // accumulate_values): the requests go out at the pace of the loads. Asking for the whole next
  // block at once (512 lines) at the block's start held up the loads behind them.
  // BM_FastAttentionDecodeSpan (4 query heads over a cold span of 64 keys), three runs each: one
  // thread 9.5 → 7.2 µs a span, two threads 22-28 → 30-34 GB/s of keys and values. In a 1B Q4_0
  // decode after a 512-token prompt attention is ~6% of the samples, and the step's speed moved
  // within the host's noise. (Prefill runs the same code, its keys mostly in the cache already.)
  constexpr int64_t kColdKeys = 64;
  for (int64_t s = 0, left = kColdKeys; s < n_segs && left > 0; left -= segs[s].count, ++s)
    for (int64_t u = 0; u < segs[s].count && u < left; ++u) {
      prefetch_row<2>(segs[s].k + u * segs[s].stride, d);
      prefetch_row<2>(segs[s].v + u * segs[s].stride, d);
    }
  for (int64_t s = 0; s < n_segs; ++s) {
    const KeySegment& seg = segs[s];
    for (int64_t j0 = 0; j0 < seg.count; j0 += kKeys) {
      const int64_t n = seg.count - j0 < kKeys ? seg.count - j0 : kKeys;
      for (int64_t u = 0; u < n; ++u)
        k[u] = seg.k + (j0 + u) * seg.stride, v[u] = seg.v + (j0 + u) * seg.stride;
      // The next block: the rest of this segment, else the start of the next one.
      const bool here = j0 + kKeys < seg.count;
      const KeySegment* after = here ? &seg : s + 1 < n_segs ? &segs[s + 1] : nullptr;
      const int64_t j1 = here ? j0 + kKeys : 0;
      for (int64_t u = 0; u < n; ++u) {
        const bool in = after && j1 + u < after->count;
        next_k[u] = in ? after->k + (j1 + u) * after->stride : k[u];
        next_v[u] = in ? after->v + (j1 + u) * after->stride : v[u];
      }
      int64_t u = 0;
      for (; u + U <= n; u += U) dot_products<G, U, Arch>(q, d, k + u, &p[0][u], kKeys, next_k + u);
      for (; u < n; ++u) dot_products<G, 1, Arch>(q, d, k + u, &p[0][u], kKeys, next_k + u);
      float correction[G];
      for (int h = 0; h < G; ++h) {
        float m_new = m[h];
        for (u = 0; u < n; ++u) {
          float score = p[h][u] * scale;
          if (cap > 0.f) score = cap * __builtin_tanhf(score / cap);
          p[h][u] = score;
          m_new = score > m_new ? score : m_new;
        }
        for (; u < kKeys; ++u) p[h][u] = -__builtin_inff();  // past the block's keys: e^-inf = 0
        correction[h] = __builtin_expf(m[h] - m_new);        // 0 for the first block (m = -inf)
        batch p_sum(0.f);
        for (u = 0; u < kKeys; u += B) {
          const batch e = xsimd::exp(batch::load_aligned(&p[h][u]) - batch(m_new));
          e.store_aligned(&p[h][u]);
          p_sum += e;
        }
        l[h] = l[h] * correction[h] + xsimd::hadd(p_sum);
        m[h] = m_new;
      }
      int64_t i = 0;
      for (; i + C * B <= end; i += C * B)
        accumulate_values<G, C, kKeys, Arch>(p, v, n, correction, out, d, i, next_v);
      for (; i < end; i += B)
        accumulate_values<G, 1, kKeys, Arch>(p, v, n, correction, out, d, i, next_v);
      for (u = 0; u < n; ++u) {  // the last line of a row that does not start on one
        __builtin_prefetch(next_k[u] + d - 1, 0, 3);
        __builtin_prefetch(next_v[u] + d - 1, 0, 3);
      }
      for (int h = 0; h < G; ++h)
        for (int64_t t = end; t < d; ++t) {  // d % B elements
          float o = out[h * d + t] * correction[h];
          for (u = 0; u < n; ++u) o += p[h][u] * v[u][t];
          out[h * d + t] = o;
        }
    }
  }
  if (m_out) {  // partial: m and l out, o as it is
    for (int h = 0; h < G; ++h) m_out[h] = m[h], l_out[h] = l[h];
    return;
  }
  for (int h = 0; h < G; ++h) {
    const float inv = 1.f / l[h];
    for (int64_t i = 0; i < d; ++i) out[h * d + i] *= inv;
  }
}

// Up to 4 queries per pass (4 accumulators and 4 outputs in registers; the Gemma 3 sizes have 2 or
// 4 query heads per key head), more in several passes.
template <class Arch>
void AttendQuery::operator()(Arch, const float* q, int64_t nq, int64_t d, const KeySegment* segs,
                             int64_t n_segs, float scale, float cap, float* out,
                             float* stats) const {
  for (int64_t h = 0; h < nq;) {
    const int64_t left = nq - h;
    const float* qh = q + h * d;
    float* oh = out + h * d;
    float* m = stats ? stats + h : nullptr;
    float* l = stats ? stats + nq + h : nullptr;
    if (left >= 4) {
      attend_queries<4, Arch>(qh, d, segs, n_segs, scale, cap, oh, m, l), h += 4;
    } else if (left == 3) {
      attend_queries<3, Arch>(qh, d, segs, n_segs, scale, cap, oh, m, l), h += 3;
    } else if (left == 2) {
      attend_queries<2, Arch>(qh, d, segs, n_segs, scale, cap, oh, m, l), h += 2;
    } else {
      attend_queries<1, Arch>(qh, d, segs, n_segs, scale, cap, oh, m, l), h += 1;
    }
  }
}

// gelu_tanh(u) = 0.5·u·(1 + tanh(z)) with z = sqrt(2/π)·(u + 0.044715·u³), computed as
// u / (1 + e^(-2z)), the same function (1 + tanh(z) = 2 / (1 + e^(-2z))): one exp and one
// division, where xsimd's tanh evaluates both its small-argument polynomial and its exp branch
// and blends them. It also keeps the relative accuracy where 1 + tanh(z) cancels (u < -3). The
// saturated ends come out exact: e^(-2z) = inf gives -0, e^(-2z) = 0 gives u.
template <class Arch>
static inline xsimd::batch<float, Arch> gelu_tanh_mul(xsimd::batch<float, Arch> u,
                                                      xsimd::batch<float, Arch> up) {
  using batch = xsimd::batch<float, Arch>;
  const batch minus_2z =
      batch(-2.f * 0.7978845608028654f) * xsimd::fma(batch(0.044715f) * u, u * u, u);
  return u / (batch(1.f) + xsimd::exp(minus_2z)) * up;
}

// The last n % B elements go through one vector too, copied in and out (no scalar libm tanh in a
// translation unit built for one instruction set: see the top of this file).
template <class Arch>
void GeluTanhMul::operator()(Arch, const float* gate, const float* up, float* out,
                             int64_t n) const {
  using batch = xsimd::batch<float, Arch>;
  constexpr int64_t B = batch::size;
  const auto up_at = [&](int64_t i) { return up ? batch::load_unaligned(up + i) : batch(1.f); };
  int64_t i = 0;
  for (; i + B <= n; i += B)
    gelu_tanh_mul(batch::load_unaligned(gate + i), up_at(i)).store_unaligned(out + i);
  if (i == n) return;
  alignas(64) float g[B] = {}, u[B] = {};
  for (int64_t j = i; j < n; ++j) g[j - i] = gate[j], u[j - i] = up ? up[j] : 1.f;
  gelu_tanh_mul(batch::load_aligned(g), batch::load_aligned(u)).store_aligned(g);
  for (int64_t j = i; j < n; ++j) out[j] = g[j - i];
}

// Per block of keys: S = K·Qᵀ by gemm_tile (MR keys x the panel per tile, k = d), the block's
// online softmax down each lane (running max m of the scaled scores, e^(scale·s - m) in one fused
// multiply-subtract, running sum l, the old sums' correction e^(m_old - m)), acc rescaled by the
// correction, then acc += Vᵀ·P by gemm_tile (MR rows of Vᵀ x the panel per tile, k = the block's
// keys). Finally out = acc / l, transposed back. Every query's sums run over the keys in order,
// whatever the thread: results do not depend on the split.
template <class Arch>
void AttendPanel::operator()(Arch, const float* qp, int64_t width, int64_t d, const float* k,
                             int64_t ldk, const float* vt, int64_t n, float scale, float* scores,
                             float* acc, float* out, int64_t ldo, int64_t valid) const {
  using batch = xsimd::batch<float, Arch>;
  constexpr int NV = gemm_nv<Arch>();
  constexpr int64_t B = batch::size;
  const int64_t nv = width / B;
  alignas(64) float m[NV * B], l[NV * B], correction[NV * B];
  for (int64_t t = 0; t < width; ++t) m[t] = -__builtin_inff(), l[t] = 0.f;
  for (int64_t i = 0; i < d * width; ++i) acc[i] = 0.f;
  for (int64_t j0 = 0; j0 < n; j0 += kAttendKeyBlock) {
    const int64_t keys = n - j0 < kAttendKeyBlock ? n - j0 : kAttendKeyBlock;
    for (int64_t u = 0; u < keys; u += kGemmMR) {
      const int64_t mr = keys - u < kGemmMR ? keys - u : kGemmMR;
      const GemmTileOut o{nullptr, 0, scores + u * width, width, width, true};
      gemm_tile_tail<kGemmMR, NV, Arch>(mr, nv, k + (j0 + u) * ldk, ldk, qp, d, o, true);
    }
    for (int64_t v = 0; v < nv; ++v) {
      float* s = scores + v * B;
      const batch m_old = batch::load_aligned(m + v * B);
      batch s_max = batch::load_unaligned(s);
      for (int64_t u = 1; u < keys; ++u)
        s_max = xsimd::max(s_max, batch::load_unaligned(s + u * width));
      // scale > 0 and rounding is monotonic: the maximum of the scaled scores is the scaled
      // maximum.
      const batch m_new = xsimd::max(m_old, s_max * batch(scale));
      const batch c = xsimd::exp(m_old - m_new);  // 0 for the first block (m_old = -inf)
      batch sum = batch::load_aligned(l + v * B) * c;
      for (int64_t u = 0; u < keys; ++u) {
        const batch e =
            xsimd::exp(xsimd::fms(batch::load_unaligned(s + u * width), batch(scale), m_new));
        e.store_unaligned(s + u * width);
        sum += e;
      }
      sum.store_aligned(l + v * B);
      m_new.store_aligned(m + v * B);
      c.store_aligned(correction + v * B);
    }
    if (j0 > 0)
      for (int64_t i = 0; i < d; ++i)
        for (int64_t v = 0; v < nv; ++v)
          (batch::load_unaligned(acc + i * width + v * B) * batch::load_aligned(correction + v * B))
              .store_unaligned(acc + i * width + v * B);
    for (int64_t i = 0; i < d; i += kGemmMR) {
      const int64_t mr = d - i < kGemmMR ? d - i : kGemmMR;
      const GemmTileOut o{acc + i * width, width, nullptr, 0, width, true};
      gemm_tile_tail<kGemmMR, NV, Arch>(mr, nv, vt + i * n + j0, n, scores, keys, o, false);
    }
  }
  for (int64_t v = 0; v < nv; ++v)
    (batch(1.f) / batch::load_aligned(l + v * B)).store_aligned(l + v * B);
  for (int64_t t = 0; t < valid; ++t)
    for (int64_t i = 0; i < d; ++i) out[t * ldo + i] = acc[i * width + t] * l[t];
}

// Two passes over the row for the mean and the variance of the centred values (as the definition:
// no E[x²] - E[x]² cancellation), a third writes y. The row's sums in B lanes, then across them.
template <class Arch>
void LayerNormRows::operator()(Arch, const float* x, int64_t rows, int64_t cols, int64_t ld,
                               const float* w, const float* b, float eps, float* y) const {
  using batch = xsimd::batch<float, Arch>;
  constexpr int64_t B = batch::size;
  const int64_t end = cols / B * B;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ld;
    float* yr = y + r * ld;
    batch acc(0.f);
    for (int64_t i = 0; i < end; i += B) acc += batch::load_unaligned(xr + i);
    float sum = xsimd::hadd(acc);
    for (int64_t i = end; i < cols; ++i) sum += xr[i];
    const float mean = sum / float(cols);
    acc = batch(0.f);
    for (int64_t i = 0; i < end; i += B) {
      const batch c = batch::load_unaligned(xr + i) - batch(mean);
      acc = xsimd::fma(c, c, acc);
    }
    float squares = xsimd::hadd(acc);
    for (int64_t i = end; i < cols; ++i) squares += (xr[i] - mean) * (xr[i] - mean);
    const float sd = __builtin_sqrtf(squares / float(cols) + eps);
    for (int64_t i = 0; i < end; i += B)
      xsimd::fma((batch::load_unaligned(xr + i) - batch(mean)) / batch(sd),
                 batch::load_unaligned(w + i), batch::load_unaligned(b + i))
          .store_unaligned(yr + i);
    for (int64_t i = end; i < cols; ++i) yr[i] = (xr[i] - mean) / sd * w[i] + b[i];
  }
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

// Read the way the decode GEMV reads its weights (from a 64-byte boundary, prefetching 4 KiB
// ahead), so that the roofline is the best this machine's cores can stream, not a weaker sweep.
template <class Arch>
float SumF32::operator()(Arch, const float* x, int64_t n) const {
  using batch = xsimd::batch<float, Arch>;
  constexpr int64_t B = batch::size;
  const auto address = reinterpret_cast<uintptr_t>(x);
  int64_t i = address % 4 ? 0 : int64_t((64 - address % 64) % 64) / 4;
  i = i < n ? i : n;
  float s = 0.f;
  for (int64_t j = 0; j < i; ++j) s += x[j];
  batch acc[4] = {batch(0.f), batch(0.f), batch(0.f), batch(0.f)};
  for (; i + 4 * B <= n; i += 4 * B)
    for (int k = 0; k < 4; ++k) {
      __builtin_prefetch(x + i + k * B + kGemvPrefetchBytes / 4, 0, 0);
      acc[k] += batch::load_unaligned(x + i + k * B);
    }
  s += xsimd::hadd((acc[0] + acc[1]) + (acc[2] + acc[3]));
  for (; i < n; ++i) s += x[i];
  return s;
}

// The portable product with quantized weights: the integer dot product of a group in plain C++
// (which the compiler vectorises for each instruction set), the scales applied once per group.
template <class Arch>
void QuantRows::operator()(Arch, quant::Type type, const std::byte* w, int64_t rows, int64_t in,
                           const QuantX& x, int64_t tokens, float* y, int64_t ldy, uint8_t* q,
                           float* ab) const {
  quant::with_type(type, [&](auto T) {
    constexpr quant::Layout L = quant::layout(T.value);
    constexpr int G = int(L.group);
    const int64_t groups = in / G, stride = quant::row_bytes(T.value, in);
    float* a = ab;
    float* b = ab + groups;
    for (int64_t r = 0; r < rows; ++r, w += stride, ++y) {
      quant::unpack_row<T.value, Arch>(w, in, q, a, b);
      for (int64_t t = 0; t < tokens; ++t) {
        const int8_t* xq = x.q + t * in;
        const float* d = x.d + t * (in / 32);
        const float* e = G == 32 ? x.e32 + t * (in / 32) : x.e16 + t * (in / 16);
        float sum = 0.f;
        for (int64_t g = 0; g < groups; ++g) {
          int32_t isum = 0;
          for (int j = 0; j < G; ++j) isum += int32_t(q[g * G + j]) * int32_t(xq[g * G + j]);
          sum += d[g * G / 32] * a[g] * float(isum) + b[g] * e[g];
        }
        y[t * ldy] = sum;
      }
    }
  });
}

}  // namespace gemma3::inline GEMMA3_MODE::kernels::simd
