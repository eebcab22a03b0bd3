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
  void operator()(Arch, const uint16_t* w, int64_t rows, int64_t in, const float* x, const float* x_even,
                  const float* x_odd, float* y) const;
};

// The same for an f32 matrix.
struct GemvF32 {
  template <class Arch>
  void operator()(Arch, const float* w, int64_t rows, int64_t in, const float* x, float* y) const;
};

// Panel width NR of the GEMM on this instruction set: two registers of floats.
struct GemmPanelWidth {
  template <class Arch>
  int64_t operator()(Arch) const;
};

// Y[:, 0:cols] = X[T, K] · W[0:cols, K]ᵀ for one panel of cols <= NR weight rows (prefill GEMM);
// `scratch` holds GemmPanel::KC · NR floats.
template <class W>
struct GemmPanel {
  static constexpr int64_t KC = 256;
  static constexpr int MR = 6;
  template <class Arch>
  void operator()(Arch, const W* w, int64_t cols, const float* x, int64_t T, int64_t K, float* y, int64_t ldy,
                  float* scratch) const;
};

// Y[t, r] = Σ_k X[t, k]·W[r, k] for rows [0, rows) of a bf16 matrix and all T tokens (prefill GEMM
// without packing): X comes split into its even and odd columns (x_even/x_odd [T, K/2]) so that bf16
// pairs widen in registers; Y has leading dimension ldy.
struct GemmDotBf16 {
  static constexpr int64_t KC = 512;  // k block: 4 tokens x KC of X stay in L1
  static constexpr int64_t RB = 256;  // row block: RB x KC of W stay in L2
  template <class Arch>
  void operator()(Arch, const uint16_t* w, int64_t rows, int64_t K, const float* x_even, const float* x_odd,
                  int64_t T, float* y, int64_t ldy) const;
};

// A contiguous run of cached keys and values.
struct KeySegment {
  const float* k;  // first key row
  const float* v;  // first value row
  int64_t count;   // rows
  int64_t stride;  // floats between consecutive rows
};

// One query's attention over segments of keys, with an online softmax: out = Σ softmax(s)·v.
struct AttendQuery {
  template <class Arch>
  void operator()(Arch, const float* q, int64_t d, const KeySegment* segs, int64_t n_segs, float scale, float cap,
                  float* out) const;
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
