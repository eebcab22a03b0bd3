// The fast path: the same operations as kernels/reference.hpp, on the SIMD kernels
// (kernels/simd.hpp) and OpenMP. Float only; the double "gold" mode always runs the reference path.
//
// Determinism: every output element is computed whole by one thread, in a fixed order (no
// reduction is ever split across threads), so results do not depend on the number of threads or
// on which thread takes which block. That leaves the schedules free to be dynamic: on a machine
// shared with other jobs, a static split waits at every barrier for a thread the OS has descheduled
// (a 2-thread decode fell to a third of the 1-thread speed); with dynamic schedules the thread
// that runs takes the remaining blocks.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include <omp.h>

#include "gemma3/kernels/bf16dot.hpp"
#include "gemma3/kernels/dispatch.hpp"
#include "gemma3/kernels/reference.hpp"
#include "gemma3/tensor.hpp"

namespace gemma3::fast {

// What a matrix product with bf16 weights takes as its input: the f32 activations as they are (the
// default, faithful to the reference), or rounded to bf16 first, the way a bf16 checkpoint's
// products run in PyTorch or llama.cpp; products are exact and sums f32 either way. With bf16
// inputs the prefill GEMM runs on vdpbf16ps where the CPU has AVX512-BF16 (twice the work per
// instruction of an f32 FMA), and elsewhere on the f32 kernels fed the rounded inputs.
enum class MatmulInputs { F32, Bf16 };

// Whether this CPU runs the bf16 dot-product kernels (kernels/bf16dot.hpp) and this build has them.
inline bool bf16_dot_available() {
  if constexpr (!kernels::bf16dot::kBuilt) return false;
#if GEMMA3_KERNEL_DISPATCH && (defined(__x86_64__) || defined(_M_X64))
  static const bool available = kernels::best_arch_version() >= xsimd::avx512bw::version() &&
                                __builtin_cpu_supports("avx512bf16");
  return available;
#else
  return true;  // the header-only build compiled them in: its flags target the instruction
#endif
}

// Below this many tokens a matrix product runs as one GEMV per token (weights streamed once per
// token); from here on, the packed GEMM (weights widened once per block, reused across tokens)
// wins.
inline constexpr int64_t kGemmMinTokens = 4;

// A float buffer aligned to 64 bytes (a cache line, an AVX-512 register), left uninitialised: a
// zero-filled std::vector cost 15% of a prefill in memset for buffers every element of which the
// GEMM writes anyway.
struct AlignedFloats {
  explicit AlignedFloats(int64_t n)
      : storage(std::make_unique_for_overwrite<float[]>(std::size_t(n) + 16)) {
    void* p = storage.get();
    std::size_t space = (std::size_t(n) + 16) * sizeof(float);
    data = static_cast<float*>(std::align(64, std::size_t(n) * sizeof(float), p, space));
  }
  std::unique_ptr<float[]> storage;
  float* data = nullptr;
};

// x prepared for the decode GEMVs of some matrices of one dtype (kernels::simd::GemvX): a 64-byte
// aligned copy for every shift that one of their rows has. Rows whose length is a whole number of
// cache lines all share the shift of the first; otherwise the shifts repeat every 32 rows at most.
class GemvInput {
 public:
  GemvInput(std::span<const TensorView* const> ws, const float* x, int64_t in) {
    constexpr int64_t S = kernels::simd::kGemvShifts;
    const bool bf16 = ws[0]->dtype == DType::BF16;
    const int64_t bytes = bf16 ? 2 : 4, arrays = bf16 ? 2 : 1;
    std::array<bool, S> needed{};
    for (const TensorView* w : ws)
      for (int64_t r = 0; r < std::min<int64_t>(w->rows(), S); ++r)
        needed[std::size_t(kernels::simd::gemv_shift(
            reinterpret_cast<uintptr_t>(w->data) + uintptr_t(r * in * bytes), bytes))] = true;
    const int64_t len = kernels::simd::gemv_x_length(in);
    storage_ = std::make_unique<AlignedFloats>(arrays * len *
                                               std::count(needed.begin(), needed.end(), true));
    float* next = storage_->data;
    // lo[s][k] = x[2k - s] and hi[s][k] = x[2k + 1 - s] for bf16, lo[s][k] = x[k - s] for f32.
    const auto copy = [&](int64_t first, int64_t step) {
      for (int64_t k = 0; k < len; ++k, first += step)
        next[k] = first >= 0 && first < in ? x[first] : 0.f;
      return std::exchange(next, next + len);
    };
    for (int64_t s = 0; s < S; ++s) {
      if (!needed[std::size_t(s)]) continue;
      x_.lo[s] = copy(-s, bf16 ? 2 : 1);
      if (bf16) x_.hi[s] = copy(1 - s, 2);
    }
  }
  const kernels::simd::GemvX& get() const { return x_; }

 private:
  std::unique_ptr<AlignedFloats> storage_;
  kernels::simd::GemvX x_;
};

namespace detail {
// y_m = W_m·x for one token and one or more matrices that read the same x (q/k/v, gate/up): the
// rows of all of them, in blocks of 64, split over threads in one parallel region (a decode step
// pays one fork/join per group of matrices, not one per matrix). Each weight byte is read once; a
// block (64 rows, 80-150 KB at these shapes) is one sequential stream.
inline void gemv(std::span<const TensorView* const> ws, const float* x,
                 std::span<float* const> ys) {
  constexpr int64_t kBlock = 64;
  const int64_t in = ws[0]->cols();
  std::vector<int64_t> first_block(ws.size() + 1, 0);  // blocks of matrix m: [first[m], first[m+1])
  for (std::size_t m = 0; m < ws.size(); ++m)
    first_block[m + 1] = first_block[m] + (ws[m]->rows() + kBlock - 1) / kBlock;
  const GemvInput input(ws, x, in);
#pragma omp parallel for schedule(dynamic)
  for (int64_t b = 0; b < first_block.back(); ++b) {
    std::size_t m = 0;
    while (b >= first_block[m + 1]) ++m;
    const TensorView& w = *ws[m];
    const int64_t r0 = (b - first_block[m]) * kBlock, n = std::min(kBlock, w.rows() - r0);
    if (w.dtype == DType::BF16)
      kernels::call(kernels::simd::GemvBf16{}, reinterpret_cast<const uint16_t*>(w.data) + r0 * in,
                    n, in, input.get(), ys[m] + r0);
    else
      kernels::call(kernels::simd::GemvF32{}, reinterpret_cast<const float*>(w.data) + r0 * in, n,
                    in, input.get(), ys[m] + r0);
  }
}

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
// k block and swept by the register tiles over all tokens; each block's partial sums wait in a
// buffer of its thread (in L2) until the last block of k writes Y.
template <class W>
void gemm(const W* w, int64_t out, int64_t in, const float* x, int64_t tokens, float* y) {
  using Kernel = kernels::simd::Gemm<W>;
  const kernels::simd::GemmLayout layout = kernels::call(kernels::simd::GemmTokenLayout{});
  const int64_t t_pad = (tokens + layout.lanes - 1) / layout.lanes * layout.lanes;
  const int64_t panels = (t_pad + layout.panel - 1) / layout.panel;
  const int64_t blocks = (out + Kernel::RB - 1) / Kernel::RB;
  AlignedFloats xp(t_pad * in);  // packed X
#pragma omp parallel
  {
#pragma omp for schedule(dynamic)
    for (int64_t p = 0; p < panels; ++p) pack_token_panel(x, tokens, in, layout, p, xp.data);
    AlignedFloats scratch(Kernel::RB * Kernel::KC);  // this thread's widened block of W
    AlignedFloats partial(Kernel::RB * t_pad);       // ... and its block's partial sums
#pragma omp for schedule(dynamic)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t r0 = b * Kernel::RB, n = std::min(Kernel::RB, out - r0);
      kernels::call(Kernel{}, w + r0 * in, n, in, xp.data, tokens, t_pad, partial.data, y + r0, out,
                    scratch.data);
    }
  }
}

// gemm() for bf16 inputs on vdpbf16ps (bf16_dot_available(), `in` even): X rounded and packed
// once, W's bf16 pairs read in place, blocks of rows split over threads, each block's partial sums
// in a buffer of its thread (in L2) until the last block of k writes Y.
inline void gemm_bf16_dot(const uint16_t* w, int64_t out, int64_t in, const float* x,
                          int64_t tokens, float* y) {
  namespace bd = kernels::bf16dot;
  const int64_t t_pad = (tokens + bd::kLanes - 1) / bd::kLanes * bd::kLanes;
  const int64_t panels = (t_pad + bd::kPanel - 1) / bd::kPanel;
  const int64_t blocks = (out + bd::kRowBlock - 1) / bd::kRowBlock;
  AlignedFloats xp(t_pad * in / 2);  // packed X: u32 pairs of bf16
  uint32_t* xpairs = reinterpret_cast<uint32_t*>(xp.data);
#pragma omp parallel
  {
#pragma omp for schedule(dynamic)
    for (int64_t p = 0; p < panels; ++p)
      if constexpr (bd::kBuilt)
        bd::pack(x, tokens, in, t_pad, p * bd::kPanel, xpairs + p * bd::kPanel * (in / 2));
    AlignedFloats partial(bd::kRowBlock * t_pad);
#pragma omp for schedule(dynamic)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t r0 = b * bd::kRowBlock, n = std::min(bd::kRowBlock, out - r0);
      if constexpr (bd::kBuilt)
        bd::gemm(w + r0 * in, n, in, xpairs, tokens, t_pad, partial.data, y + r0, out);
    }
  }
}
}  // namespace detail

// GeGLU's gelu_tanh(gate) ⊙ up in one pass, split over threads: ref::gelu_tanh's expression (Eigen
// vectorises its tanh) on blocks of 16 Ki elements. Two single-threaded passes were 5% of a 1b
// prefill on one thread, and the part of it that a second thread did not speed up.
inline Mat<float> gelu_tanh_mul(const Mat<float>& gate, const Mat<float>& up) {
  Mat<float> act(gate.rows(), gate.cols());
  constexpr int64_t kBlock = 16384;
  const int64_t n = gate.size();
#pragma omp parallel for schedule(dynamic)
  for (int64_t b = 0; b < n; b += kBlock) {
    const Eigen::Index len = Eigen::Index(std::min(kBlock, n - b));
    const ConstMatRef<float> g = Eigen::Map<const Mat<float>>(gate.data() + b, 1, len);
    Eigen::Map<Mat<float>>(act.data() + b, 1, len) =
        (ref::gelu_tanh<float>(g).array() *
         Eigen::Map<const Mat<float>>(up.data() + b, 1, len).array())
            .matrix();
  }
  return act;
}

// x with every element rounded to bf16 (MatmulInputs::Bf16), still stored as f32.
inline Mat<float> rounded_to_bf16(const ConstMatRef<float>& x) {
  return x.unaryExpr([](float v) { return round_to_bf16(v); });
}

// y = x · Wᵀ, the fast twin of ref::linear (F16 weights fall back to it); with MatmulInputs::Bf16,
// of ref::linear(rounded_to_bf16(x), w) for bf16 weights.
inline Mat<float> linear(const ConstMatRef<float>& x, const TensorView& w,
                         MatmulInputs inputs = MatmulInputs::F32) {
  if (w.dtype == DType::F16) return ref::linear<float>(x, w);
  const int64_t tokens = x.rows(), out = w.rows(), in = w.cols();
  const bool round = inputs == MatmulInputs::Bf16 && w.dtype == DType::BF16;
  Mat<float> y(tokens, out);
  if (round && tokens >= kGemmMinTokens && in % 2 == 0 && bf16_dot_available()) {
    Mat<float> copy;  // the kernels read rows of x contiguously
    const float* xp = x.outerStride() == in ? x.data() : (copy = x).data();
    detail::gemm_bf16_dot(reinterpret_cast<const uint16_t*>(w.data), out, in, xp, tokens, y.data());
    return y;
  }
  // The kernels read rows of x contiguously; copy only a strided view (or to round it).
  Mat<float> copy;
  const float* xp = x.data();
  if (round)
    xp = (copy = rounded_to_bf16(x)).data();
  else if (x.outerStride() != in)
    xp = (copy = x).data();
  if (tokens < kGemmMinTokens) {
    const TensorView* ws[] = {&w};
    for (int64_t t = 0; t < tokens; ++t) {
      float* ys[] = {y.row(t).data()};
      detail::gemv(ws, xp + t * in, ys);
    }
  } else if (w.dtype == DType::BF16) {
    detail::gemm(reinterpret_cast<const uint16_t*>(w.data), out, in, xp, tokens, y.data());
  } else {
    detail::gemm(reinterpret_cast<const float*>(w.data), out, in, xp, tokens, y.data());
  }
  return y;
}

// y_m = x · W_mᵀ for several weights that read the same x (q/k/v, gate/up). For a few tokens, one
// parallel region over the rows of all of them (detail::gemv); otherwise one linear each.
template <std::size_t N>
std::array<Mat<float>, N> linear(const ConstMatRef<float>& x,
                                 const std::array<const TensorView*, N>& ws,
                                 MatmulInputs inputs = MatmulInputs::F32) {
  std::array<Mat<float>, N> ys;
  bool fused = x.rows() < kGemmMinTokens && x.outerStride() == x.cols();
  for (const TensorView* w : ws)
    fused = fused && w->dtype == ws[0]->dtype && w->dtype != DType::F16 && w->cols() == x.cols();
  if (!fused) {
    for (std::size_t m = 0; m < N; ++m) ys[m] = linear(x, *ws[m], inputs);
    return ys;
  }
  Mat<float> rounded;
  const bool round = inputs == MatmulInputs::Bf16 && ws[0]->dtype == DType::BF16;
  const float* xp = round ? (rounded = rounded_to_bf16(x)).data() : x.data();
  for (std::size_t m = 0; m < N; ++m) ys[m].resize(x.rows(), ws[m]->rows());
  for (int64_t t = 0; t < x.rows(); ++t) {
    std::array<float*, N> rows;
    for (std::size_t m = 0; m < N; ++m) rows[m] = ys[m].row(t).data();
    detail::gemv(ws, xp + t * x.cols(), rows);
  }
  return ys;
}

}  // namespace gemma3::fast
