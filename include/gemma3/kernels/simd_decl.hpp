// Declarations of the SIMD kernel functors (kernels/simd.hpp defines them). Code that dispatches at
// run time sees only these: the bodies for AVX-512 & co. are compiled in their own translation
// units (src/kernels/arch/*.cpp) with the matching compiler flags, never in generic code.
#pragma once

#include "gemma3/build_mode.hpp"

#include <cstdint>

#include "gemma3/quant.hpp"

namespace gemma3::inline GEMMA3_MODE::kernels::simd {

// Rows of a matrix in a checkpoint start at any offset from a cache line. The decode GEMVs read
// each row in whole vectors from the boundary at or before its first element, and x from a copy
// made for that offset and aligned to 64 bytes, so that no load of either straddles two cache lines
// (loads that do stream far below the read bandwidth; docs/performance.md). A row's shift is how
// many of its elements lie between the 64-byte boundary at or before it and its first element: [0,
// 32) for bf16, [0, 16) for f32.
inline constexpr int64_t kGemvShifts = 32;
// The shift of a row at `address` with elements of `bytes`; 0 for a row not even aligned to its
// element size (no valid checkpoint has one), which is read unaligned from its first element.
// (`static`: each translation unit, compiled for its own instruction set, keeps its own copy.)
static inline int64_t gemv_shift(uintptr_t address, int64_t bytes) {
  return address % uintptr_t(bytes) ? 0 : int64_t(address % 64) / bytes;
}

// x as the GEMVs read it, for every shift that some row of the matrix has (null for the others):
// for bf16 weights, the elements paired with the low and the high half of each bf16 pair,
// lo[s][k] = x[2k - s] and hi[s][k] = x[2k + 1 - s]; for f32 weights lo[s][k] = x[k - s]. Zero
// outside [0, in), 64-byte aligned, gemv_x_length(in) floats each (fast::GemvInput builds it).
struct GemvX {
  const float* lo[kGemvShifts] = {};
  const float* hi[kGemvShifts] = {};
};
inline constexpr int64_t gemv_x_length(int64_t in) {
  return (in + 2 * kGemvShifts + 15) / 16 * 16;  // past the last chunk any row reads
}

// y[r] = Σ_i W[r, i]·x[i] for rows [0, rows) of a bf16 matrix with `in` columns (decode GEMV).
struct GemvBf16 {
  template <class Arch>
  void operator()(Arch, const uint16_t* w, int64_t rows, int64_t in, const GemvX& x,
                  float* y) const;
};

// The same for an f32 matrix.
struct GemvF32 {
  template <class Arch>
  void operator()(Arch, const float* w, int64_t rows, int64_t in, const GemvX& x, float* y) const;
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

// Where a GEMM writes Y [tokens, out], from row `row0` of W on: row-major (ld floats between
// tokens, only the tokens that exist), or `packed` like X (GemmLayout, with out for K: ld = out,
// padding tokens included), so that the product can be the packed input of the next one (the MLP's
// gate/up feed its down projection without a transpose and a packing in between). `bias` (null for
// none) is the whole matrix's: bias[row0 + r] is added to every token's sum of row r as the last
// block of k stores it (an nn.Linear with bias, y = x·Wᵀ + b, in the same order of operations).
struct GemmY {
  float* data;
  int64_t ld;
  int64_t row0 = 0;
  bool packed = false;
  const float* bias = nullptr;
};

// Where a register tile's sums go: between blocks of k to `partial` (rows along its rows, tokens
// along the lanes); from the last block to y, transposed (row-major Y: only the `valid` tokens;
// the transpose of one tile is cheap next to its work) or as they are (packed Y).
struct GemmTileOut {
  float* partial;  // the tile's rows and tokens in the row block's partial sums
  int64_t ld_partial;
  float* y;       // the tile's first token and row in y, or null before the last k block
  int64_t ldy;    // row-major: floats between tokens; packed: between rows (the panel's width)
  int64_t valid;  // tokens of the tile that exist (the rest is padding)
  bool packed;
  const float* bias = nullptr;  // the tile's first row's bias, added as y is written (or null)
};

// Prefill GEMM: y[t, r0 + r] = Σ_k W[r, k]·X[t, k] for rows [0, rows) of W (rows <= RB; W is the
// block of a bigger matrix that starts at its row r0 = y.row0) and tokens [0, tokens) of the packed
// X (see GemmLayout; T_pad tokens). `partial` [rows, T_pad] holds the sums between blocks of k
// (rows along its rows, tokens along the lanes); the last block writes y. W is read in place (bf16
// widened as each element is broadcast).
template <class W>
struct Gemm {
  static constexpr int64_t KC = 256;  // k block: KC x panel of X in L1/L2
  static constexpr int64_t RB = 96;   // row block: RB x KC of W stays in L2
  template <class Arch>
  void operator()(Arch, const W* w, int64_t rows, int64_t K, const float* xp, int64_t tokens,
                  int64_t T_pad, float* partial, const GemmY& y) const;
};

// out[i] = gelu_tanh(gate[i])·up[i] for n floats: the GeGLU of the MLP (plain::gelu_tanh's
// expression, xsimd's tanh). out may be gate or up; a null up multiplies by 1 (exact: the plain
// GELU of SigLIP's MLP, and of an observed unfused GeGLU).
struct GeluTanhMul {
  template <class Arch>
  void operator()(Arch, const float* gate, const float* up, float* out, int64_t n) const;
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
// With `stats`, the softmax is left partial, to be merged with those of other keys: out_h is
// Σ e^(s_h - m_h)·v, unnormalised, stats[h] is m_h (the largest score) and stats[nq + h] is
// l_h = Σ e^(s_h - m_h).
struct AttendQuery {
  template <class Arch>
  void operator()(Arch, const float* q, int64_t nq, int64_t d, const KeySegment* segs,
                  int64_t n_segs, float scale, float cap, float* out, float* stats = nullptr) const;
};

// Full attention of one panel of queries of one head over all n keys of that head (SigLIP's
// bidirectional attention: no mask, no cap), never materialising more than a block of scores: the
// flash-attention scheme on the prefill GEMM's register tiles. The queries lie along the vector
// lanes, as the GEMM packs its tokens: qp is the panel's Q transposed, [d, width] row-major
// (width = the GemmLayout panel or a multiple of its lanes, padding queries zero). For each block
// of keys, S [keys, width] = K·Qᵀ is one GEMM tile sweep (keys for W's rows, the panel for X), its
// online softmax runs down the columns (one query per lane: the running max and sum are vectors,
// nothing is reduced across lanes), and O [d, width] += Vᵀ·P is a second sweep (Vᵀ's rows for W,
// the block's probabilities for X). k: key j at k + j·ldk (d floats); vt: Vᵀ [d, n] row-major;
// scores and acc: the caller's workspaces of kAttendKeyBlock·width and d·width floats; out: query
// t's d values at out + t·ldo, for the `valid` queries of the panel.
inline constexpr int64_t kAttendKeyBlock = 128;
struct AttendPanel {
  template <class Arch>
  void operator()(Arch, const float* qp, int64_t width, int64_t d, const float* k, int64_t ldk,
                  const float* vt, int64_t n, float scale, float* scores, float* acc, float* out,
                  int64_t ldo, int64_t valid) const;
};

// y[r, :] = (x[r, :] - mean_r) / sqrt(var_r + eps) ⊙ w + b for `rows` rows of `cols` floats (row
// stride ld for x and y, which may be the same): LayerNorm with the population variance, the mean
// and the variance each one pass over the row in f32 (plain::layer_norm's definition).
struct LayerNormRows {
  template <class Arch>
  void operator()(Arch, const float* x, int64_t rows, int64_t cols, int64_t ld, const float* w,
                  const float* b, float eps, float* y) const;
};

// Products with block-quantized weights (quant.hpp), for decode and prefill alike: y[t·ldy + r] =
// Σ_k W[r, k]·x[t0 + t, k] for rows [0, rows) of W (`type` blocks, rows quant::row_bytes apart) and
// tokens [0, tokens) of x, quantized activations (quant::Activations, seen from its first token
// here: token t's values at q + t·in, scales at d + t·in/32, sums at s + t·in/16). Each row is
// unpacked once into the common form (scratch: `in` bytes of q, then 2·in/16 floats of a and b),
// then multiplied by every token: integer dot products per group, scaled once per group. Each
// output is one thread's fixed-order sum. kernels/quantdot.hpp has the AVX512-VNNI twin; this is
// the portable one.
struct QuantX {
  const int8_t* q;
  const float* d;
  const int32_t* s;
  const float* e16;  // d·s per 16 (token t's at e16 + t·in/16)
  const float* e32;  // d·Σq per 32 (at e32 + t·in/32)

  // Activations a from token t0 on.
  static QuantX of(const quant::Activations& a, int64_t t0) {
    return {a.q_row(t0), a.d_row(t0), a.s_row(t0), a.e16_row(t0), a.e32_row(t0)};
  }
};
struct QuantRows {
  template <class Arch>
  void operator()(Arch, quant::Type type, const std::byte* w, int64_t rows, int64_t in,
                  const QuantX& x, int64_t tokens, float* y, int64_t ldy, uint8_t* q_scratch,
                  float* ab_scratch) const;
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

}  // namespace gemma3::inline GEMMA3_MODE::kernels::simd
