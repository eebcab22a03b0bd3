// Declarations of the SIMD kernel functors (kernels/simd.hpp defines them). Code that dispatches at
// run time sees only these: the bodies for AVX-512 & co. are compiled in their own translation
// units (kernels/arch/*.cpp) with the matching compiler flags, never in generic code.
#pragma once

#include <cstdint>

namespace gemma3::kernels::simd {

// y[r] = Σ_i W[r, i]·x[i] for rows [0, rows) of a bf16 matrix with `in` columns (decode GEMV);
// x_even = x[0::2] and x_odd = x[1::2] (see widen_bf16_pairs).
struct GemvBf16 {
  template <class Arch>
  void operator()(Arch, const uint16_t* w, int64_t rows, int64_t in, const float* x,
                  const float* x_even, const float* x_odd, float* y) const;
};

// The same for an f32 matrix.
struct GemvF32 {
  template <class Arch>
  void operator()(Arch, const float* w, int64_t rows, int64_t in, const float* x, float* y) const;
};

// How the prefill GEMM lays out the tokens on this instruction set. X [T, K] is packed once per
// product into panels of `panel` tokens (the last one narrower, rounded up to `lanes`, the padding
// zero), each panel [K, width] row-major: the k-th row holds X[t0 : t0 + width, k], so the tokens
// lie along the vector lanes. T_pad = T rounded up to `lanes`; the panel of t0 starts at xp + t0·K.
struct GemmLayout {
  int64_t panel = 0;  // tokens per register tile (NV vectors)
  int64_t lanes = 0;  // floats per vector
};
struct GemmTokenLayout {
  template <class Arch>
  GemmLayout operator()(Arch) const;
};

// Where a register tile's sums go: between blocks of k to `partial` (rows along its rows, tokens
// along the lanes); from the last block to y, transposed, only the `valid` tokens (the transpose
// of one tile is cheap next to its work, and saves a pass over a whole transposed Y).
struct GemmTileOut {
  float* partial;  // the tile's rows and tokens in the row block's partial sums
  int64_t ld_partial;
  float* y;  // the tile's first token and row in y, or null before the last k block
  int64_t ldy;
  int64_t valid;  // tokens of the tile that exist (the rest is padding)
};

// Prefill GEMM: y[t, r] = Σ_k W[r, k]·X[t, k] for rows [0, rows) of W (rows <= RB) and tokens
// [0, tokens) of the packed X (see GemmLayout; T_pad tokens); y has leading dimension ldy (the rows
// of a block of a bigger matrix are y + r0). `partial` [rows, T_pad] holds the sums between blocks
// of k (rows along its rows, tokens along the lanes); the last block writes y. `scratch` holds
// RB·KC floats: the block of W widened to f32, once per (row block, k block), amortised over all
// the tokens (bf16 weights widen there, f32 copy).
template <class W>
struct Gemm {
  static constexpr int64_t KC =
      256;  // k block: 6 rows x KC of the widened W and KC x panel of X in L1/L2
  static constexpr int64_t RB = 96;  // row block: RB x KC f32 of widened W (96 KiB) stay in L2
  template <class Arch>
  void operator()(Arch, const W* w, int64_t rows, int64_t K, const float* xp, int64_t tokens,
                  int64_t T_pad, float* partial, float* y, int64_t ldy, float* scratch) const;
};

// A contiguous run of cached keys and values.
struct KeySegment {
  const float* k;  // first key row
  const float* v;  // first value row
  int64_t count;   // rows
  int64_t stride;  // floats between consecutive rows
};

// The attention of nq queries that share their keys (the query heads of one GQA group, at one
// position) over segments of keys, with an online softmax: out_h = Σ softmax(s_h)·v. q and out are
// [nq, d], contiguous. Each key and value row is read once for all nq queries.
struct AttendQuery {
  template <class Arch>
  void operator()(Arch, const float* q, int64_t nq, int64_t d, const KeySegment* segs,
                  int64_t n_segs, float scale, float cap, float* out) const;
};

// Runs `iterations` rounds of independent FMA chains in registers and returns the floating-point
// operations done (2 per lane per FMA): the machine's f32 FMA peak, measured.
struct FmaPeak {
  template <class Arch>
  double operator()(Arch, int64_t iterations, float* sink) const;
};

// Σ x[i] over n floats with independent accumulators: a pure read sweep at memory speed.
struct SumF32 {
  template <class Arch>
  float operator()(Arch, const float* x, int64_t n) const;
};

}  // namespace gemma3::kernels::simd
