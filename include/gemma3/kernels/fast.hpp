// The fast path: the same operations as kernels/plain.hpp, on the SIMD kernels
// (kernels/simd.hpp) and OpenMP. Float only; the double "gold" mode always runs the plain path.
//
// Determinism: every output element is computed whole by one thread, in a fixed order (no
// reduction is ever split across threads), so results do not depend on the number of threads or
// on which thread takes which block. That leaves the schedules free to be dynamic: on a machine
// shared with other jobs, a static split waits at every barrier for a thread the OS has descheduled
// (a 2-thread decode fell to a third of the 1-thread speed); with dynamic schedules the thread
// that runs takes the remaining blocks.
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <omp.h>

#include "gemma3/error.hpp"
#include "gemma3/kernels/bf16dot.hpp"
#include "gemma3/kernels/dispatch.hpp"
#include "gemma3/kernels/plain.hpp"
#include "gemma3/kernels/quantdot.hpp"
#include "gemma3/kernels/team.hpp"
#include "gemma3/quant.hpp"
#include "gemma3/tensor.hpp"

namespace gemma3::inline GEMMA3_MODE::fast {

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

// Whether this CPU runs the int8 dot-product kernels for quantized weights (kernels/quantdot.hpp)
// and this build has them; elsewhere kernels::simd::QuantRows does the same work.
inline bool vnni_available() {
  if constexpr (!kernels::quantdot::kBuilt) return false;
#if GEMMA3_KERNEL_DISPATCH && (defined(__x86_64__) || defined(_M_X64))
  static const bool available = kernels::best_arch_version() >= xsimd::avx512bw::version() &&
                                __builtin_cpu_supports("avx512vnni");
  return available;
#else
  return true;  // the header-only build compiled it in: its flags target the instruction
#endif
}

// Below this many tokens a matrix product runs as one GEMV per token (weights streamed once per
// token); from here on, the GEMM (each block of weights reused from L2 across all the tokens)
// wins.
inline constexpr int64_t kGemmMinTokens = 4;

// A float buffer aligned to 64 bytes (a cache line, an AVX-512 register), left uninitialised: the
// GEMM writes every element anyway, and zero-filling the large buffers first is a measurable share
// of a prefill (docs/performance.md).
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
    const int64_t bytes = int64_t(dtype_size(ws[0]->dtype)), arrays = bf16 ? 2 : 1;
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
// The rows of one or more matrices in blocks, numbered across all of them, so that one parallel
// region splits the blocks of all of them over threads (one fork/join per group of matrices).
class RowBlocks {
 public:
  RowBlocks(std::span<const TensorView* const> ws, int64_t block) : block_(block), first_(1, 0) {
    for (const TensorView* w : ws) {
      rows_.push_back(w->rows());
      first_.push_back(first_.back() + (w->rows() + block - 1) / block);
    }
  }
  int64_t count() const { return first_.back(); }
  // The blocks of matrix m are [first(m), first(m + 1)).
  int64_t first(std::size_t m) const { return first_[m]; }
  struct Block {
    std::size_t matrix;
    int64_t r0, rows;  // rows [r0, r0 + rows) of that matrix
  };
  Block operator[](int64_t b) const {
    std::size_t m = 0;
    while (b >= first_[m + 1]) ++m;
    const int64_t r0 = (b - first_[m]) * block_;
    return {m, r0, std::min(block_, rows_[m] - r0)};
  }

 private:
  int64_t block_;
  std::vector<int64_t> first_;  // blocks of matrix m: [first_[m], first_[m + 1])
  std::vector<int64_t> rows_;   // rows of matrix m
};

// The rows of products over the threads of a parallel region, each thread a contiguous share of
// them with stealing at the end: the rows of all the matrices are one sequence of units of `unit`
// rows (gone through `passes` times over: prefill's chunks of tokens, one after the other), split
// into one share per thread. A thread takes runs from the front of its own share (a quarter
// of what is left of it, down to one unit: one stream, followed to its end by the hardware
// prefetchers and the kernels' prefetch); a thread whose share is done takes the back half of the
// largest share left, and goes on with that as its own. So the streams are long, and a thread
// the OS delays, or one that reads slower, is made up for by the others down to the last unit.
// Guided self-scheduling (OpenMP's schedule(guided)), used before, handed the first thread to
// arrive half of all the rows in one run, and the others waited out any difference in speed on it:
// 17 µs of a 1b down projection's 120 on two threads (docs/performance.md). A thread left out of
// the region (a smaller team) leaves its share to be taken by the others. One object per parallel
// region.
class RowShares {
 public:
  RowShares(std::span<const TensorView* const> ws, int64_t unit, int64_t passes = 1)
      : units_(ws, unit), shares_(std::size_t(Team::size())) {
    const int64_t count = units_.count() * passes, threads = int64_t(shares_.size());
    for (int64_t t = 0; t < threads; ++t)
      shares_[std::size_t(t)].range.store(pack(count * t / threads, count * (t + 1) / threads),
                                          std::memory_order_relaxed);
  }
  // Called by every thread of the region: f(m, r0, n, pass) for each run of rows [r0, r0 + n) of
  // matrix m in that pass this thread takes, until none is left.
  template <class F>
  void for_each(F&& f) {
    const std::size_t me = std::size_t(omp_get_thread_num()) % shares_.size();
    std::atomic<uint64_t>& own = shares_[me].range;
    for (;;) {
      uint64_t range = own.load(std::memory_order_relaxed);
      while (begin(range) < end(range)) {  // the front of the own share
        const int64_t take = (end(range) - begin(range) + 3) / 4;
        if (!own.compare_exchange_weak(range, pack(begin(range) + take, end(range)),
                                       std::memory_order_relaxed))
          continue;
        run(begin(range), begin(range) + take, f);
        range = own.load(std::memory_order_relaxed);
      }
      if (!steal(own)) return;
    }
  }

 private:
  struct alignas(64) Share {      // a cache line each: the owner updates it at every run
    std::atomic<uint64_t> range;  // units [begin, end): begin in the low half, end in the high
  };
  static uint64_t pack(int64_t b, int64_t e) { return uint64_t(b) | uint64_t(e) << 32; }
  static int64_t begin(uint64_t range) { return int64_t(range & 0xFFFFFFFFu); }
  static int64_t end(uint64_t range) { return int64_t(range >> 32); }

  // Units [u0, u1), one call per matrix and pass they span.
  template <class F>
  void run(int64_t u0, int64_t u1, F& f) const {
    const int64_t count = units_.count();
    for (int64_t u = u0; u < u1;) {
      const int64_t pass = u / count, first = pass * count;
      const RowBlocks::Block head = units_[u - first];
      const int64_t stop = std::min(u1, first + units_.first(head.matrix + 1));
      const RowBlocks::Block tail = units_[stop - 1 - first];
      f(head.matrix, head.r0, tail.r0 + tail.rows - head.r0, pass);
      u = stop;
    }
  }
  // Moves the back half of the largest other share to `own` (empty); false when no share has a
  // unit left.
  bool steal(std::atomic<uint64_t>& own) {
    for (;;) {
      Share* victim = nullptr;
      uint64_t range = 0;
      for (Share& share : shares_) {
        const uint64_t r = share.range.load(std::memory_order_relaxed);
        if (end(r) - begin(r) > end(range) - begin(range)) victim = &share, range = r;
      }
      if (!victim) return false;
      const int64_t cut = end(range) - (end(range) - begin(range) + 1) / 2;
      if (victim->range.compare_exchange_weak(range, pack(begin(range), cut),
                                              std::memory_order_relaxed)) {
        own.store(pack(cut, end(range)), std::memory_order_relaxed);
        return true;
      }
    }
  }

  RowBlocks units_;  // the rows of all the matrices in units, numbered across them
  std::vector<Share> shares_;
};

// y_m = W_m·x for one token and one or more matrices that read the same x (q/k/v, gate/up): their
// rows in runs over the threads of one parallel region (RowShares). Each weight byte is read once.
inline void gemv(std::span<const TensorView* const> ws, const float* x,
                 std::span<float* const> ys) {
  const int64_t in = ws[0]->cols();
  RowShares runs(ws, 16);
  const GemvInput input(ws, x, in);
  Team::parallel([&] {
    runs.for_each([&](std::size_t m, int64_t r0, int64_t n, int64_t) {
      const TensorView& w = *ws[m];
      if (w.dtype == DType::BF16)
        kernels::call(kernels::simd::GemvBf16{},
                      reinterpret_cast<const uint16_t*>(w.data) + r0 * in, n, in, input.get(),
                      ys[m] + r0);
      else
        kernels::call(kernels::simd::GemvF32{}, reinterpret_cast<const float*>(w.data) + r0 * in, n,
                      in, input.get(), ys[m] + r0);
    });
  });
}

// What a product with quantized weights multiplies: x [tokens, in] (rows `ld` floats apart), or,
// where `up` is set (a matrix of the same shape and stride), GeGLU's gelu_tanh(x) ⊙ up: the MLP's
// down projection, whose input is then computed block by block as it is quantized, by the kernel
// of fast::gelu_tanh_mul (element by element, so the same values as that pass, which it saves).
struct QuantInput {
  const float* x;
  int64_t ld;
  const float* up = nullptr;
};

// Each thread's scratch for quant_linear's kernels, kept from call to call (allocated where first
// needed, grown when too small): a decode step makes about a hundred products, and allocating the
// kernels' few hundred KB for each, in every thread, was a measurable share of a quantized decode.
struct QuantScratch {
  std::unique_ptr<uint8_t[]> q;
  std::unique_ptr<float[]> ab;
  int64_t in = 0;                     // the width q and ab are sized for
  std::vector<std::byte> file_order;  // interleaved rows put back in file order

  void reserve(int64_t width) {
    if (width <= in) return;
    q = std::make_unique_for_overwrite<uint8_t[]>(
        static_cast<std::size_t>(kernels::quantdot::scratch_bytes(width)));
    ab = std::make_unique_for_overwrite<float[]>(
        static_cast<std::size_t>(kernels::quantdot::scratch_floats(width)));
    in = width;
  }
  // This thread's. (Named inside a parallel region, each thread gets its own.)
  static QuantScratch& of_this_thread() {
    static thread_local QuantScratch scratch;
    return scratch;
  }
};

// Y_m = X · W_mᵀ for block-quantized weights (quant.hpp; any mix of types, one width), in one
// parallel region: first X quantized (quant::quantize_activation_blocks), its blocks split over
// the threads; then the rows of all the matrices over threads in runs (RowShares): decode's in
// units of a panel, all tokens at once, prefill's in blocks of rows, once for each chunk of tokens
// (kernels::simd::QuantRows, or its VNNI twin). The quantized X lives in memory the calling thread
// keeps from call to call (a decode step's hundred products allocated and zeroed it each time,
// alone, while the other threads waited). A row is unpacked once per chunk (in VNNI's decode, not
// at all) and multiplied by the chunk's tokens from L1/L2. Interleaved rows
// (TensorView::interleaved) go to VNNI's panel kernels (kernels::quantdot::panels for decode,
// panels_gemm for prefill); elsewhere they are put back in file order first.
inline void quant_linear(std::span<const TensorView* const> ws, const QuantInput& input,
                         int64_t tokens, std::span<float* const> ys) {
  if (tokens == 0) return;
  const int64_t in = ws[0]->cols(), blocks = in / 32;
  const bool vnni = vnni_available();
  quant::RowQuantizer quantize_row = quant::quantize_activation_row;
  if constexpr (kernels::quantdot::kBuilt)
    if (vnni) quantize_row = kernels::quantdot::quantize_row;
  static thread_local quant::Activations activations;  // the calling thread's
  quant::Activations& xq = activations;  // (the name inside the region would be each thread's own)
  quant::resize_activations(xq, tokens, in);
  // X is quantized in pieces of kPieceBlocks blocks: a decode step's narrowest input (1152 values
  // at 1b) still gives every thread a share.
  constexpr int64_t kPieceBlocks = 4;
  const int64_t pieces = (blocks + kPieceBlocks - 1) / kPieceBlocks;
  constexpr int64_t kTokenChunk = 256;
  const bool decode = tokens <= kernels::quantdot::kFusedTokens;
  // Decode's runs are of panels; prefill's of the GEMM's blocks of rows, contiguous, so that the
  // GEMM can prefetch a run's next block while it multiplies one (quantdot.hpp's packed_gemm).
  const int64_t chunks = (tokens + kTokenChunk - 1) / kTokenChunk;
  RowShares runs(ws, decode ? kernels::quantdot::kPanelRows : kernels::quantdot::kGemmRows, chunks);
  Meeting quantized;  // every piece of X is quantized before any product reads it
  Team::parallel([&] {
#pragma omp for schedule(static) nowait
    for (int64_t piece = 0; piece < tokens * pieces; ++piece) {
      const int64_t t = piece / pieces, b0 = piece % pieces * kPieceBlocks;
      const int64_t b1 = std::min(blocks, b0 + kPieceBlocks);
      const float* x = input.x + t * input.ld + 32 * b0;
      alignas(64) float geglu[32 * kPieceBlocks];
      if (input.up) {
        kernels::call(kernels::simd::GeluTanhMul{}, x, input.up + t * input.ld + 32 * b0, geglu,
                      32 * (b1 - b0));
        x = geglu;
      }
      quant::quantize_activation_blocks(x, t, b0, b1, xq, quantize_row);
    }
    quantized.arrive_and_wait();
    QuantScratch& scratch = QuantScratch::of_this_thread();
    // Rows [r0, r0 + n) (in file order at `rows`) of matrix m times tokens [t0, t0 + nt).
    const auto rows_times = [&](std::size_t m, const std::byte* rows, int64_t r0, int64_t n,
                                int64_t t0, int64_t nt) {
      const TensorView& w = *ws[m];
      const auto xt = kernels::simd::QuantX::of(xq, t0);
      float* y = ys[m] + t0 * w.rows() + r0;
      scratch.reserve(in);
      if constexpr (kernels::quantdot::kBuilt)
        if (vnni) {
          kernels::quantdot::rows(quant_type(w.dtype), rows, n, in, xt, nt, y, w.rows(),
                                  scratch.q.get(), scratch.ab.get());
          return;
        }
      kernels::call(kernels::simd::QuantRows{}, quant_type(w.dtype), rows, n, in, xt, nt, y,
                    w.rows(), scratch.q.get(), scratch.ab.get());
    };
    const auto product = [&](std::size_t m, int64_t r0, int64_t n, int64_t t0, int64_t nt) {
      const TensorView& w = *ws[m];
      const quant::Type type = quant_type(w.dtype);
      const int64_t stride = row_bytes(w.dtype, in);
      // Rows [r0, end) are interleaved (r0 is a multiple of the panel: decode's units are panels,
      // prefill's blocks two), the rest in file order.
      const int64_t end =
          w.interleaved ? std::clamp(quant::interleaved_rows(w.rows()), r0, r0 + n) : r0;
      int64_t done = r0;
      if constexpr (kernels::quantdot::kBuilt)
        if (vnni && end > r0) {  // the panel kernels
          const auto xt = kernels::simd::QuantX::of(xq, t0);
          float* y = ys[m] + t0 * w.rows() + r0;
          if (decode) {
            kernels::quantdot::panels(type, w.data + r0 * stride, end - r0, in, xt, nt, y,
                                      w.rows());
          } else {
            scratch.reserve(in);
            kernels::quantdot::panels_gemm(type, w.data + r0 * stride, end - r0, in, xt, nt, y,
                                           w.rows(), scratch.q.get(), scratch.ab.get());
          }
          done = end;
        }
      // Elsewhere two panels at a time back in file order.
      constexpr int64_t kBlock = kernels::quantdot::kGemmRows;
      std::vector<std::byte>& file_order = scratch.file_order;
      for (int64_t b = done; b < end; b += kBlock) {
        const int64_t k = std::min(kBlock, end - b);
        file_order.resize(std::size_t(kBlock * stride));
        for (int64_t p = 0; p < k; p += quant::kPanelRows)
          quant::deinterleave_panel(type, w.data + (b + p) * stride, in,
                                    file_order.data() + p * stride);
        rows_times(m, file_order.data(), b, k, t0, nt);
      }
      if (end < r0 + n) rows_times(m, w.data + end * stride, end, r0 + n - end, t0, nt);
    };
    runs.for_each([&](std::size_t m, int64_t r0, int64_t n, int64_t chunk) {
      const int64_t t0 = chunk * kTokenChunk;
      product(m, r0, n, t0, std::min(kTokenChunk, tokens - t0));
    });
  });
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

// The two prefill GEMMs, as what the driver gemm() below needs of each: how X is packed and which
// kernel sweeps a block of rows.
//
// F32Gemm: f32 inputs, W of type W (bf16 or f32) read in place by the f32 FMA tiles
// (kernels::simd::Gemm), X packed in token panels (GemmLayout).
template <class W>
struct F32Gemm {
  using Kernel = kernels::simd::Gemm<W>;
  static constexpr int64_t kRowBlock = Kernel::RB;
  const kernels::simd::GemmLayout layout = kernels::call(kernels::simd::GemmTokenLayout{});
  int64_t lanes() const { return layout.lanes; }
  int64_t panel() const { return layout.panel; }
  static int64_t packed_floats(int64_t t_pad, int64_t in) { return t_pad * in; }
  void pack(const float* x, int64_t tokens, int64_t in, int64_t, int64_t p, float* xp) const {
    pack_token_panel(x, tokens, in, layout, p, xp);
  }
  static void sweep(const void* w, int64_t rows, int64_t in, const float* xp, int64_t tokens,
                    int64_t t_pad, float* partial, const kernels::simd::GemmY& y) {
    kernels::call(Kernel{}, static_cast<const W*>(w), rows, in, xp, tokens, t_pad, partial, y);
  }
};

// Bf16DotGemm: inputs rounded to bf16 and packed as pairs, W's bf16 pairs read in place by
// vdpbf16ps (kernels/bf16dot.hpp; only where bf16_dot_available(), `in` even). Row-major Y only.
struct Bf16DotGemm {
  static constexpr int64_t kRowBlock = kernels::bf16dot::kRowBlock;
  static int64_t lanes() { return kernels::bf16dot::kLanes; }
  static int64_t panel() { return kernels::bf16dot::kPanel; }
  static int64_t packed_floats(int64_t t_pad, int64_t in) { return t_pad * in / 2; }  // u32 pairs
  static void pack(const float* x, int64_t tokens, int64_t in, int64_t t_pad, int64_t p,
                   float* xp) {
    if constexpr (kernels::bf16dot::kBuilt)
      kernels::bf16dot::pack(x, tokens, in, t_pad, p * panel(),
                             reinterpret_cast<uint32_t*>(xp) + p * panel() * (in / 2));
  }
  static void sweep(const void* w, int64_t rows, int64_t in, const float* xp, int64_t tokens,
                    int64_t t_pad, float* partial, const kernels::simd::GemmY& y) {
    if constexpr (kernels::bf16dot::kBuilt)
      kernels::bf16dot::gemm(static_cast<const uint16_t*>(w), rows, in,
                             reinterpret_cast<const uint32_t*>(xp), tokens, t_pad, partial,
                             y.data + y.row0, y.ld, y.bias ? y.bias + y.row0 : nullptr);
  }
};

// Tokens rounded up to whole vectors: the packed X and a packed Y hold this many.
template <class Gemm>
int64_t padded_tokens(const Gemm& kernel, int64_t tokens) {
  return (tokens + kernel.lanes() - 1) / kernel.lanes() * kernel.lanes();
}

// X [tokens, in] packed for `kernel`, once for all the matrices that read it.
template <class Gemm>
AlignedFloats pack(const Gemm& kernel, const float* x, int64_t tokens, int64_t in) {
  const int64_t t_pad = padded_tokens(kernel, tokens);
  const int64_t panels = (t_pad + kernel.panel() - 1) / kernel.panel();
  AlignedFloats xp(Gemm::packed_floats(t_pad, in));
#pragma omp parallel for schedule(dynamic)
  for (int64_t p = 0; p < panels; ++p) kernel.pack(x, tokens, in, t_pad, p, xp.data);
  return xp;
}

// Y_m = X · W_mᵀ for X packed by pack() and one or more matrices that read it (q/k/v, gate/up),
// BLIS-style: the row blocks of all the matrices split over threads in one parallel region, each
// block swept by the register tiles over all tokens, its partial sums in a buffer of its thread
// (in L2) until the last block of k writes Y. ys[m] is [tokens, out_m] row-major, or with
// `packed_out` (F32Gemm only) packed like X with out_m for K (kernels::simd::GemmY). `biases`
// (empty, or one per matrix, each null or [out_m]) are added as the tiles store Y.
//
// With few row blocks per thread (the 1b down projection has 12), the tokens are split too, into
// chunks of whole panels, so that the last tasks are small and no thread waits long for the other
// at the end (each chunk reads its row block of W again, from L3 or memory). Every output element
// is still computed whole by one task, in the same order: the result does not depend on the split.
template <class Gemm>
void gemm_packed(const Gemm& kernel, std::span<const TensorView* const> ws, const float* xp,
                 int64_t tokens, std::span<float* const> ys, bool packed_out = false,
                 std::span<const float* const> biases = {}) {
  const int64_t in = ws[0]->cols(), t_pad = padded_tokens(kernel, tokens);
  const RowBlocks blocks(ws, Gemm::kRowBlock);
  const int64_t panels = (t_pad + kernel.panel() - 1) / kernel.panel();
  const int64_t threads = omp_get_max_threads();
  const int64_t chunks =
      threads == 1
          ? 1
          : std::clamp<int64_t>((16 * threads + blocks.count() - 1) / blocks.count(), 1, panels);
  const int64_t chunk_panels = (panels + chunks - 1) / chunks;
#pragma omp parallel
  {
    AlignedFloats partial(Gemm::kRowBlock * t_pad);  // this thread's block's partial sums
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < blocks.count() * chunks; ++task) {
      const auto [m, r0, n] = blocks[task / chunks];
      const int64_t t0 = task % chunks * chunk_panels * kernel.panel();
      if (t0 >= t_pad) continue;  // (chunks of whole panels may not fill the last)
      const int64_t t1 = std::min(t_pad, t0 + chunk_panels * kernel.panel());
      const TensorView& w = *ws[m];
      // The chunk's panels start at its first token's, in X and in a packed Y alike.
      Gemm::sweep(
          w.data + std::size_t(r0 * in) * dtype_size(w.dtype), n, in,
          xp + Gemm::packed_floats(t0, in), std::min(tokens, t1) - t0, t1 - t0, partial.data,
          {ys[m] + t0 * w.rows(), w.rows(), r0, packed_out, biases.empty() ? nullptr : biases[m]});
    }
  }
}

// Y_m [tokens, out_m] = X [tokens, in] · W_mᵀ, row-major: X packed once, then gemm_packed.
template <class Gemm>
void gemm(const Gemm& kernel, std::span<const TensorView* const> ws, const float* x, int64_t tokens,
          std::span<float* const> ys, std::span<const float* const> biases = {}) {
  const AlignedFloats xp = pack(kernel, x, tokens, ws[0]->cols());
  gemm_packed(kernel, ws, xp.data, tokens, ys, false, biases);
}

// out = gelu_tanh(gate) ⊙ up over n floats (out may be gate or up; a null up multiplies by 1),
// split over threads in blocks of 1 Ki to 16 Ki elements: a decode step's few thousand are shared
// by the threads too.
inline void gelu_tanh_mul(const float* gate, const float* up, float* out, int64_t n) {
  const int64_t share = (n + Team::size() - 1) / Team::size();
  const int64_t block = std::clamp<int64_t>((share + 63) / 64 * 64, 1024, 16384);
  Team::parallel([&] {
#pragma omp for schedule(dynamic) nowait
    for (int64_t b = 0; b < n; b += block)
      kernels::call(kernels::simd::GeluTanhMul{}, gate + b, up ? up + b : nullptr, out + b,
                    std::min(block, n - b));
  });
}

// Throws InvalidArgument naming w unless it has `in` columns, the width of what it multiplies
// ("the input has", "the activations have").
inline void check_width(const TensorView& w, int64_t in, const char* input_has = "the input has") {
  if (w.cols() != in)
    throw InvalidArgument(w.name, "has " + std::to_string(w.cols()) + " columns but " + input_has +
                                      " " + std::to_string(in));
}
}  // namespace detail

// GeGLU's gelu_tanh(gate) ⊙ up in one pass, split over threads (kernels::simd::GeluTanhMul). Two
// single-threaded passes were 5% of a 1b prefill on one thread.
inline Mat<float> gelu_tanh_mul(const Mat<float>& gate, const Mat<float>& up) {
  Mat<float> act(gate.rows(), gate.cols());
  detail::gelu_tanh_mul(gate.data(), up.data(), act.data(), gate.size());
  return act;
}

// gelu_tanh(u) by the same kernel (its product with 1, exact), so that an observer of the fast
// path's unfused MLP sees the very gelu its gelu_tanh_mul multiplies by up.
inline Mat<float> gelu_tanh(const Mat<float>& u) {
  Mat<float> act(u.rows(), u.cols());
  detail::gelu_tanh_mul(u.data(), nullptr, act.data(), u.size());
  return act;
}

// x with every element rounded to bf16 (MatmulInputs::Bf16), still stored as f32.
inline Mat<float> rounded_to_bf16(const ConstMatRef<float>& x) {
  return x.unaryExpr([](float v) { return round_to_bf16(v); });
}

// y_m = x · W_mᵀ for one or more weights that read the same x (q/k/v, gate/up), the fast twin of
// plain::linear (F16 weights fall back to it); with MatmulInputs::Bf16, of plain::linear(
// rounded_to_bf16(x), w) for bf16 weights. Below kGemmMinTokens tokens one GEMV per token,
// otherwise one GEMM; either way one parallel region over the rows of all the weights. `biases`
// (each null or [out_m]: an nn.Linear with bias) are added to the sums as the GEMM stores them.
template <std::size_t N>
std::array<Mat<float>, N> linear(const ConstMatRef<float>& x,
                                 const std::array<const TensorView*, N>& ws,
                                 MatmulInputs inputs = MatmulInputs::F32,
                                 const std::array<const float*, N>& biases = {}) {
  std::array<Mat<float>, N> ys;
  const DType dtype = ws[0]->dtype;
  const bool quantized = is_quantized(dtype);
  bool together = dtype != DType::F16;
  for (const TensorView* w : ws) {
    detail::check_width(*w, x.cols());
    together = together && (quantized ? is_quantized(w->dtype) : w->dtype == dtype);
  }
  const auto add_bias = [&](std::size_t m) {  // where no GEMM tile stores it
    if (biases[m])
      ys[m].rowwise() += Eigen::Map<const Vec<float>>(biases[m], ws[m]->rows()).transpose();
  };
  if (!together) {  // each on its own (F16 on the plain path)
    for (std::size_t m = 0; m < N; ++m)
      if (ws[m]->dtype == DType::F16)
        ys[m] = plain::linear<float>(x, *ws[m]), add_bias(m);
      else
        ys[m] = linear(x, std::array{ws[m]}, inputs, std::array{biases[m]})[0];
    return ys;
  }
  const int64_t tokens = x.rows(), in = x.cols();
  std::array<float*, N> y;
  for (std::size_t m = 0; m < N; ++m) ys[m].resize(tokens, ws[m]->rows()), y[m] = ys[m].data();
  if (quantized) {  // quantized weights: their own activations (quant.hpp), whatever `inputs`
    detail::quant_linear(ws, {x.data(), x.outerStride()}, tokens, y);
    for (std::size_t m = 0; m < N; ++m) add_bias(m);
    return ys;
  }
  const bool round = inputs == MatmulInputs::Bf16 && dtype == DType::BF16;
  // The kernels read rows of x contiguously: copy a strided view, or to round it (the bf16 dot
  // GEMM rounds while packing).
  const bool dot = round && tokens >= kGemmMinTokens && in % 2 == 0 && bf16_dot_available();
  Mat<float> copy;
  const float* xp = x.data();
  if (round && !dot)
    xp = (copy = rounded_to_bf16(x)).data();
  else if (x.outerStride() != in)
    xp = (copy = x).data();
  if (dot) {
    detail::gemm(detail::Bf16DotGemm{}, ws, xp, tokens, y, biases);
  } else if (tokens < kGemmMinTokens) {
    for (int64_t t = 0; t < tokens; ++t) {
      std::array<float*, N> rows;
      for (std::size_t m = 0; m < N; ++m) rows[m] = y[m] + t * ws[m]->rows();
      detail::gemv(ws, xp + t * in, rows);
    }
    for (std::size_t m = 0; m < N; ++m) add_bias(m);
  } else if (dtype == DType::BF16) {
    detail::gemm(detail::F32Gemm<uint16_t>{}, ws, xp, tokens, y, biases);
  } else {
    detail::gemm(detail::F32Gemm<float>{}, ws, xp, tokens, y, biases);
  }
  return ys;
}

// y = x · Wᵀ (+ b) for one weight.
inline Mat<float> linear(const ConstMatRef<float>& x, const TensorView& w,
                         MatmulInputs inputs = MatmulInputs::F32, const float* bias = nullptr) {
  return std::move(linear(x, std::array{&w}, inputs, std::array{bias})[0]);
}

namespace detail {
// fast::mlp's prompt path for weights of type W (bf16 or f32) on the f32 GEMM.
template <class W>
Mat<float> mlp_packed(const float* x, int64_t tokens, const TensorView& gate, const TensorView& up,
                      const TensorView& down) {
  const F32Gemm<W> kernel;
  const int64_t intermediate = gate.rows(), t_pad = padded_tokens(kernel, tokens);
  const AlignedFloats xp = pack(kernel, x, tokens, gate.cols());
  AlignedFloats g(t_pad * intermediate), u(t_pad * intermediate);  // packed, with the padding
  const TensorView* gate_up[] = {&gate, &up};
  float* const gu[] = {g.data, u.data};
  gemm_packed(kernel, gate_up, xp.data, tokens, gu, true);
  gelu_tanh_mul(g.data, u.data, g.data, t_pad * intermediate);
  Mat<float> y(tokens, down.rows());
  const TensorView* ws[] = {&down};
  float* const ys[] = {y.data()};
  gemm_packed(kernel, ws, g.data, tokens, ys);
  return y;
}
}  // namespace detail

// The GeGLU feed-forward block down(gelu_tanh(gate·x) ⊙ up·x) (docs/model.md, MLP), the fast twin
// of gemma3::mlp when no observer needs its intermediates. With quantized weights, GeGLU is fused
// into the quantization of down's input (the same values as gelu_tanh_mul). For a prompt with f32
// inputs and gate,
// up and down of one dtype (bf16 or f32), the activations stay in the GEMM's packed layout from
// gate/up to down: gate/up store their register tiles as they are, GeGLU runs on the packed arrays,
// and down reads them as its packed input (no transpose out of gate/up, no packing of the wide
// activations before down: together ~6% of a 1b prefill). Otherwise linear, GeGLU, linear.
inline Mat<float> mlp(const ConstMatRef<float>& x, const TensorView& gate, const TensorView& up,
                      const TensorView& down, MatmulInputs inputs = MatmulInputs::F32) {
  detail::check_width(gate, x.cols());
  detail::check_width(up, x.cols());
  if (up.rows() != gate.rows())
    throw InvalidArgument(up.name, "has " + std::to_string(up.rows()) + " rows but " + gate.name +
                                       " has " + std::to_string(gate.rows()));
  detail::check_width(down, gate.rows(), "the activations have");
  if (is_quantized(gate.dtype) && is_quantized(up.dtype) && is_quantized(down.dtype)) {
    // Quantized weights (their own activations, whatever `inputs`): GeGLU is computed as down's
    // input is quantized, inside its product's parallel region (detail::QuantInput), instead of
    // in a pass of its own.
    const auto gate_up = linear(x, std::array{&gate, &up}, inputs);
    Mat<float> y(x.rows(), down.rows());
    const TensorView* ws[] = {&down};
    float* const ys[] = {y.data()};
    detail::quant_linear(ws, {gate_up[0].data(), gate_up[0].cols(), gate_up[1].data()}, x.rows(),
                         ys);
    return y;
  }
  const DType dtype = gate.dtype;
  if (inputs != MatmulInputs::F32 || x.rows() < kGemmMinTokens || up.dtype != dtype ||
      down.dtype != dtype || (dtype != DType::BF16 && dtype != DType::F32)) {
    const auto gate_up = linear(x, std::array{&gate, &up}, inputs);
    return linear(gelu_tanh_mul(gate_up[0], gate_up[1]), down, inputs);
  }
  Mat<float> copy;
  const float* xp = x.data();
  if (x.outerStride() != x.cols()) xp = (copy = x).data();
  return dtype == DType::BF16 ? detail::mlp_packed<uint16_t>(xp, x.rows(), gate, up, down)
                              : detail::mlp_packed<float>(xp, x.rows(), gate, up, down);
}

// SigLIP's MLP fc2(gelu_tanh(fc1·x + b1)) + b2, the fast twin of its plain linear, GELU, linear.
// For a prompt-sized x with f32 inputs and fc1, fc2 of one dtype (bf16 or f32) the activations
// stay packed from fc1 to fc2 as in mlp(): fc1's tiles store their sums plus b1 as they are, the
// GELU runs over the packed array in place (padding tokens included, and ignored after), and fc2
// reads it as its packed input.
inline Mat<float> gelu_mlp(const ConstMatRef<float>& x, const TensorView& fc1, const float* b1,
                           const TensorView& fc2, const float* b2,
                           MatmulInputs inputs = MatmulInputs::F32) {
  detail::check_width(fc1, x.cols());
  detail::check_width(fc2, fc1.rows(), "the activations have");
  const DType dtype = fc1.dtype;
  if (inputs != MatmulInputs::F32 || x.rows() < kGemmMinTokens || fc2.dtype != dtype ||
      (dtype != DType::BF16 && dtype != DType::F32))
    return linear(gelu_tanh(linear(x, fc1, inputs, b1)), fc2, inputs, b2);
  Mat<float> copy;
  const float* xp = x.data();
  if (x.outerStride() != x.cols()) xp = (copy = x).data();
  const auto packed = [&](auto kernel) {
    const int64_t tokens = x.rows(), t_pad = padded_tokens(kernel, tokens);
    const AlignedFloats packed_x = detail::pack(kernel, xp, tokens, fc1.cols());
    AlignedFloats h(t_pad * fc1.rows());
    const TensorView* w1[] = {&fc1};
    float* const h1[] = {h.data};
    const float* const bias1[] = {b1};
    detail::gemm_packed(kernel, w1, packed_x.data, tokens, h1, true, bias1);
    detail::gelu_tanh_mul(h.data, nullptr, h.data, t_pad * fc1.rows());
    Mat<float> y(tokens, fc2.rows());
    const TensorView* w2[] = {&fc2};
    float* const y2[] = {y.data()};
    const float* const bias2[] = {b2};
    detail::gemm_packed(kernel, w2, h.data, tokens, y2, false, bias2);
    return y;
  };
  return dtype == DType::BF16 ? packed(detail::F32Gemm<uint16_t>{})
                              : packed(detail::F32Gemm<float>{});
}

// LayerNorm of every row of x (population variance, weight and bias), rows split over threads:
// the fast twin of plain::layer_norm (kernels::simd::LayerNormRows).
inline Mat<float> layer_norm(const ConstMatRef<float>& x, const Vec<float>& w, const Vec<float>& b,
                             double eps) {
  Mat<float> copy;
  const float* xp = x.data();
  if (x.outerStride() != x.cols()) xp = (copy = x).data();
  Mat<float> y(x.rows(), x.cols());
  constexpr int64_t kRows = 64;
  const int64_t rows = x.rows(), cols = x.cols();
#pragma omp parallel for schedule(dynamic)
  for (int64_t r = 0; r < rows; r += kRows)
    kernels::call(kernels::simd::LayerNormRows{}, xp + r * cols, std::min(kRows, rows - r), cols,
                  cols, w.data(), b.data(), float(eps), y.data() + r * cols);
  return y;
}

// Full bidirectional multi-head attention (SigLIP: every patch sees every patch, no mask): q, k, v
// [n, heads·d] → the heads' outputs [n, heads·d], concatenated as before out_proj; the fast twin
// of softmax(scale·q·kᵀ)·v per head. One task per (head, panel of queries), each an online-softmax
// pass over all the keys (kernels::simd::AttendPanel): memory O(n·d) per thread, never n × n.
inline Mat<float> attend_bidirectional(const ConstMatRef<float>& q, const ConstMatRef<float>& k,
                                       const ConstMatRef<float>& v, int64_t heads, int64_t d,
                                       float scale) {
  const int64_t n = q.rows(), ld = heads * d;
  for (const auto* m : {&q, &k, &v})
    if (m->rows() != n || m->cols() != ld || m->outerStride() != ld)
      throw InvalidArgument("attention", "q, k and v must be contiguous [" + std::to_string(n) +
                                             ", " + std::to_string(ld) + "]");
  // Vᵀ [heads·d, n]: row i holds element i of every value, so that a block of keys' values is a
  // block of contiguous columns for the tile that multiplies them by the probabilities.
  AlignedFloats vt(ld * n);
  constexpr int64_t kColumns = 16;
#pragma omp parallel for schedule(dynamic)
  for (int64_t c0 = 0; c0 < ld; c0 += kColumns) {
    const int64_t cols = std::min(kColumns, ld - c0);
    for (int64_t j = 0; j < n; ++j)
      for (int64_t c = 0; c < cols; ++c) vt.data[(c0 + c) * n + j] = v.data()[j * ld + c0 + c];
  }
  const kernels::simd::GemmLayout layout = kernels::call(kernels::simd::GemmTokenLayout{});
  const int64_t panels = (n + layout.panel - 1) / layout.panel;
  Mat<float> out(n, ld);
#pragma omp parallel
  {
    AlignedFloats qp(d * layout.panel), scores(kernels::simd::kAttendKeyBlock * layout.panel),
        acc(d * layout.panel);
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < heads * panels; ++task) {
      const int64_t h = task / panels, t0 = task % panels * layout.panel;
      const int64_t valid = std::min(layout.panel, n - t0);
      const int64_t width = (valid + layout.lanes - 1) / layout.lanes * layout.lanes;
      for (int64_t i = 0; i < d; ++i)  // the panel's queries, transposed
        for (int64_t j = 0; j < width; ++j)
          qp.data[i * width + j] = j < valid ? q.data()[(t0 + j) * ld + h * d + i] : 0.f;
      kernels::call(kernels::simd::AttendPanel{}, qp.data, width, d, k.data() + h * d, ld,
                    vt.data + h * d * n, n, scale, scores.data, acc.data,
                    out.data() + t0 * ld + h * d, ld, valid);
    }
  }
  return out;
}

}  // namespace gemma3::inline GEMMA3_MODE::fast
