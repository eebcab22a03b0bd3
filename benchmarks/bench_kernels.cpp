// The kernels at the real shapes of Gemma 3 270m / 1b / 4b, fast path and its plain twin.
// Counters: weight bytes read per second (decode GEMV: compare with the machine's read bandwidth,
// `gemma3 bench` measures it), FLOP/s (prefill GEMM: compare with the FMA peak), keys/s
// (attention); a chain of decode products against reading the same bytes (BM_DecodeProductChain's
// own ratios, measured in the same iterations).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <chrono>
#include <cstring>

#include <gemma3/kernels/fast.hpp>
#include <gemma3/kernels/machine.hpp>
#include <gemma3/kernels/plain.hpp>
#include <gemma3/synth.hpp>
#include <gemma3/text/functions.hpp>

namespace {

using namespace gemma3;

// A bf16 weight [rows, cols] with seeded values, kept alive for the benchmark's duration.
struct Weight {
  std::vector<std::byte> bytes;
  TensorView view;
  Weight(int64_t rows, int64_t cols) {
    bytes = synthesize_tensor(1, "w", {rows, cols}, Init::Linear, DType::BF16);
    view =
        TensorView{.name = "w", .dtype = DType::BF16, .shape = {rows, cols}, .data = bytes.data()};
  }
};

void set_linear_counters(benchmark::State& state, const TensorView& w, int64_t tokens) {
  state.counters["weight_bytes/s"] =
      benchmark::Counter(double(w.nbytes()), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * double(w.numel() * tokens),
                                                benchmark::Counter::kIsIterationInvariantRate);
}

// Args: out, in, tokens.
void BM_FastLinear(benchmark::State& state) {
  const int64_t out = state.range(0), in = state.range(1), tokens = state.range(2);
  const Weight w(out, in);
  const Mat<float> x = Mat<float>::Random(tokens, in);
  for (auto _ : state) benchmark::DoNotOptimize(fast::linear(x, w.view));
  set_linear_counters(state, w.view, tokens);
  state.SetLabel(kernels::active_isa());
}
// The same with bf16 inputs (Backend::FastBf16): vdpbf16ps prefill where the CPU has AVX512-BF16.
void BM_FastLinearBf16Inputs(benchmark::State& state) {
  const int64_t out = state.range(0), in = state.range(1), tokens = state.range(2);
  const Weight w(out, in);
  const Mat<float> x = Mat<float>::Random(tokens, in);
  for (auto _ : state) benchmark::DoNotOptimize(fast::linear(x, w.view, fast::MatmulInputs::Bf16));
  set_linear_counters(state, w.view, tokens);
  state.SetLabel(fast::bf16_dot_available() ? "vdpbf16ps" : kernels::active_isa());
}
void BM_PlainLinear(benchmark::State& state) {
  const int64_t out = state.range(0), in = state.range(1), tokens = state.range(2);
  const Weight w(out, in);
  const Mat<float> x = Mat<float>::Random(tokens, in);
  for (auto _ : state) benchmark::DoNotOptimize(plain::linear<float>(x, w.view));
  set_linear_counters(state, w.view, tokens);
}
// Decode GEMVs: 270m MLP (2048x640) and LM head (262144x640), 1b MLP up/gate (6912x1152) and down
// (1152x6912), 4b MLP (10240x2560), the 1b LM head (262144x1152); prefill GEMMs: 512 tokens through
// the 1b MLP.
#define GEMMA3_LINEAR_SHAPES    \
  ->Args({2048, 640, 1})        \
      ->Args({262144, 640, 1})  \
      ->Args({6912, 1152, 1})   \
      ->Args({1152, 6912, 1})   \
      ->Args({10240, 2560, 1})  \
      ->Args({262144, 1152, 1}) \
      ->Args({6912, 1152, 512}) \
      ->Args({1152, 6912, 512}) \
      ->Unit(benchmark::kMillisecond)
BENCHMARK(BM_FastLinear) GEMMA3_LINEAR_SHAPES->UseRealTime();
BENCHMARK(BM_FastLinearBf16Inputs)
    ->Args({6912, 1152, 512})
    ->Args({1152, 6912, 512})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_PlainLinear) GEMMA3_LINEAR_SHAPES->UseRealTime();

// Block-quantized weights (quant.hpp) through fast::linear: decode reads the quantized bytes
// (weight_bytes/s against the read bandwidth), prefill runs on int8 dot products (int8 OP/s against
// `gemma3 bench`'s int8_dot_peak_gops). Args: type (quant::Type's index), out, in, tokens. With
// `interleaved`, the rows in panels of 16 as a GGUF read with --huge-pages has them on an
// AVX512-VNNI CPU (quant::interleave_panel; Q8_0, Q4_0, Q5_0, Q4_K, Q5_K and Q6_K).
// A random [out, in] matrix quantized to `type`: its rows in file order, or, with `interleaved`,
// in panels of 16 as --huge-pages loads them (the rows past the last whole panel in file order).
std::vector<std::byte> random_quantized(quant::Type type, int64_t out, int64_t in,
                                        bool interleaved) {
  const Mat<float> values = Mat<float>::Random(out, in);
  const int64_t stride = quant::row_bytes(type, in);
  std::vector<std::byte> bytes(static_cast<std::size_t>(out * stride));
  quant::quantize(type, values.data(), values.size(), bytes.data());
  if (interleaved) {
    const std::vector<std::byte> file_order = bytes;
    for (int64_t r = 0; r < quant::interleaved_rows(out); r += quant::kPanelRows)
      quant::interleave_panel(type, file_order.data() + r * stride, in, bytes.data() + r * stride);
  }
  return bytes;
}
void run_fast_linear_quant(benchmark::State& state, bool interleaved) {
  const auto type = quant::kAllTypes[state.range(0)];
  const int64_t out = state.range(1), in = state.range(2), tokens = state.range(3);
  if (in % quant::layout(type).block_elements != 0) {
    state.SkipWithError("rows are not whole blocks of this type");
    return;
  }
  std::vector<std::byte> bytes = random_quantized(type, out, in, interleaved);
  TensorView w{.name = "w", .dtype = dtype_of(type), .shape = {out, in}, .data = bytes.data()};
  w.interleaved = interleaved;
  const Mat<float> x = Mat<float>::Random(tokens, in);
  for (auto _ : state) benchmark::DoNotOptimize(fast::linear(x, w));
  set_linear_counters(state, w, tokens);
  state.SetLabel(std::string(quant::name(type)) + " " +
                 (fast::vnni_available() ? "avx512vnni" : kernels::active_isa()));
}
void BM_FastLinearQuant(benchmark::State& state) {
  run_fast_linear_quant(state, false);
}
// Q8_0, Q4_0, Q5_0 (where llama.cpp's K-quant files fall back for rows that are not whole blocks
// of 256, as in 270m and 1b), Q4_K, Q5_K and Q6_K. Decode: the 270m LM head, the 4b MLP's gate, and
// 256 rows of it (in cache: the kernel's own speed); prefill: 512 tokens through the 1b MLP's down
// projection.
BENCHMARK(BM_FastLinearQuant)
    ->ArgsProduct({{0, 1, 3}, {262144}, {640}, {1}})
    ->ArgsProduct({{0, 1, 3, 5, 6, 7}, {10240, 256}, {2560}, {1}})
    ->ArgsProduct({{0, 1, 3, 5, 6, 7}, {1152}, {6912}, {512}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The same on interleaved rows: decode's panel kernel (kernels::quantdot::panels) and prefill's
// GEMM on the panels as they lie (panels_gemm); elsewhere the rows are put back in file order
// first.
void BM_FastLinearQuantInterleaved(benchmark::State& state) {
  run_fast_linear_quant(state, true);
}
// Decode: the 1b MLP's gate, down projection and LM head (blocks of 32; the LM head from memory:
// weight_bytes/s against the read bandwidth); about the LM head's bytes in Q4_0 rows as wide as
// down's, from memory too (a panel of 62 KB, longer than L1, against the LM head's 10 KB); the 4b
// MLP's gate and 256 rows of it (in cache) for the K-quants as well; prefill: 128 and 512 tokens
// through the 1b down projection.
BENCHMARK(BM_FastLinearQuantInterleaved)
    ->ArgsProduct({{0, 1, 3}, {6912, 262144}, {1152}, {1}})
    ->Args({1, 43008, 6912, 1})
    ->ArgsProduct({{0, 1, 3, 5, 6, 7}, {10240, 256}, {2560}, {1}})
    ->ArgsProduct({{0, 1, 3, 5, 6, 7}, {1152}, {6912}, {1, 128, 512}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// A chain of decode products as a decode step runs them: one after another on one held team
// (fast::Team::hold), each on its own Q4_0 matrix [out, in], its rows interleaved as --huge-pages
// loads them, from a pool of 128 MiB (four times the 32 MiB last-level cache of
// docs/performance.md), so that every product starts cold and streams from memory. A decode step is
// such a chain, with attention and norms between its products. Each iteration also reads the same
// bytes with no arithmetic, in the read bandwidth's own kernel (SumF32), twice: matrix by matrix,
// each one Team::parallel body split into one contiguous sum per thread (what the memory system and
// the team's hand-offs give a product of that size), and the whole pool as one stream per thread.
// The three alternate, so that they see the same host (whose bandwidth moves by half from minute to
// minute). Counters: weight_bytes/s, chunk_reads/s and stream_reads/s, and the ratios
// of_chunk_reads (the products against reading their bytes matrix by matrix) and chunks_of_stream
// (that against one stream). Unlike a decode step's, x is the same in every product, in both cores'
// caches.
struct ProductChain {
  static constexpr std::size_t kPoolBytes = std::size_t(128) << 20;
  std::size_t matrix_bytes;
  HugePageMemory memory;
  std::vector<TensorView> matrices;

  ProductChain(int64_t out, int64_t in) {
    const auto type = quant::Type::Q4_0;
    const bool interleave = kernels::quantdot::kBuilt && fast::vnni_available();
    const std::vector<std::byte> matrix = random_quantized(type, out, in, interleave);
    matrix_bytes = matrix.size();
    const std::size_t count = (kPoolBytes + matrix_bytes - 1) / matrix_bytes;
    memory = HugePageMemory(count * matrix_bytes);
    for (std::size_t m = 0; m < count; ++m) {
      std::byte* rows = memory.data() + m * matrix_bytes;
      std::memcpy(rows, matrix.data(), matrix_bytes);
      TensorView w{.name = "w", .dtype = dtype_of(type), .shape = {out, in}, .data = rows};
      w.interleaved = interleave;
      matrices.push_back(w);
    }
  }
  // The sum of `bytes` at p, split over the threads of the current Team::parallel body.
  static void read_share(const std::byte* p, std::size_t bytes) {
    const int64_t n = int64_t(bytes / sizeof(float));
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t begin = n * t / threads, end = n * (t + 1) / threads;
    benchmark::DoNotOptimize(kernels::call(kernels::simd::SumF32{},
                                           reinterpret_cast<const float*>(p) + begin, end - begin));
  }
};
// Args: out, in (1b: o projection, gate (one of gate/up), down projection; 4b: down).
void BM_DecodeProductChain(benchmark::State& state) {
  const ProductChain chain(state.range(0), state.range(1));
  const Mat<float> x = Mat<float>::Random(1, state.range(1));
  const auto timed = [](auto&& pass) {
    const auto t0 = std::chrono::steady_clock::now();
    fast::Team::hold(pass);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  double products = 0, chunks = 0, stream = 0;  // seconds
  for (auto _ : state) {
    products += timed([&] {
      for (const TensorView& w : chain.matrices) benchmark::DoNotOptimize(fast::linear(x, w));
    });
    chunks += timed([&] {
      for (const TensorView& w : chain.matrices)
        fast::Team::parallel([&] { ProductChain::read_share(w.data, chain.matrix_bytes); });
    });
    stream += timed([&] {
      fast::Team::parallel([&] {
        ProductChain::read_share(chain.memory.data(), chain.matrix_bytes * chain.matrices.size());
      });
    });
  }
  const double bytes = double(chain.matrix_bytes * chain.matrices.size() * state.iterations());
  state.counters["weight_bytes/s"] = bytes / products;
  state.counters["chunk_reads/s"] = bytes / chunks;
  state.counters["stream_reads/s"] = bytes / stream;
  state.counters["of_chunk_reads"] = chunks / products;
  state.counters["chunks_of_stream"] = stream / chunks;
}
BENCHMARK(BM_DecodeProductChain)
    ->Args({1152, 1024})
    ->Args({6912, 1152})
    ->Args({1152, 6912})
    ->Args({2560, 10240})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The MLP block down(gelu_tanh(gate·x) ⊙ up·x) as the decoder runs it (fast::mlp: for a prompt the
// activations stay packed from gate/up to down). Args: hidden, intermediate, tokens.
void BM_FastMlp(benchmark::State& state) {
  const int64_t hidden = state.range(0), intermediate = state.range(1), tokens = state.range(2);
  const Weight gate(intermediate, hidden), up(intermediate, hidden), down(hidden, intermediate);
  const Mat<float> x = Mat<float>::Random(tokens, hidden);
  for (auto _ : state) benchmark::DoNotOptimize(fast::mlp(x, gate.view, up.view, down.view));
  state.counters["FLOP/s"] = benchmark::Counter(6.0 * double(hidden * intermediate * tokens),
                                                benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(kernels::active_isa());
}
BENCHMARK(BM_FastMlp)
    ->Args({1152, 6912, 1})
    ->Args({1152, 6912, 512})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// GeGLU over a prompt's activations (1b: 512 x 6912): bytes of gate, up and the result per second.
void BM_FastGeglu(benchmark::State& state) {
  const Mat<float> gate = Mat<float>::Random(state.range(0), state.range(1)),
                   up = Mat<float>::Random(state.range(0), state.range(1));
  for (auto _ : state) benchmark::DoNotOptimize(fast::gelu_tanh_mul(gate, up));
  state.counters["bytes/s"] =
      benchmark::Counter(12.0 * double(gate.size()), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(kernels::active_isa());
}
BENCHMARK(BM_FastGeglu)->Args({512, 6912})->Unit(benchmark::kMicrosecond)->UseRealTime();

// A decode task's attention as a model step meets it: 4 query heads (1b's group) over a span of
// `keys` cached keys (args: keys, MiB of keys in the pool; each call takes the pool's next span,
// keys and values in two arrays as the KV cache holds them), with the partial stats of
// attend_spans. A pool of 128 MiB is read from memory (compare kv_bytes/s with the machine's read
// bandwidth); 1 MiB stays in the cache. On two threads, each its own pool, as a decode step's
// spans are read.
void BM_FastAttentionDecodeSpan(benchmark::State& state) {
  const int64_t keys = state.range(0), d = 256, heads = 4;
  const int64_t pool = (state.range(1) << 20) / (d * 4);  // rows of k, and of v
  std::vector<float> k(std::size_t(pool * d), 0.5f), v(std::size_t(pool * d), 0.25f);
  const Mat<float> q = Mat<float>::Random(heads, d);
  Mat<float> out(heads, d);
  float stats[2 * heads];
  int64_t row = 0;
  for (auto _ : state) {
    const kernels::simd::KeySegment seg{k.data() + row * d, v.data() + row * d, keys, d};
    kernels::call(kernels::simd::AttendQuery{}, q.data(), heads, d, &seg, int64_t(1), 0.0625f, 0.f,
                  out.data(), stats);
    benchmark::DoNotOptimize(out.data());
    row = row + 2 * keys <= pool ? row + keys : 0;
  }
  state.counters["kv_bytes/s"] =
      benchmark::Counter(double(keys * d * 2 * 4), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_FastAttentionDecodeSpan)
    ->Args({64, 128})
    ->Args({64, 1})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_FastAttentionDecodeSpan)
    ->Args({64, 128})
    ->Threads(2)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// One decode step's attention for one query head over a cache of `keys` (head_dim 256), as a local
// (window 512) or global layer sees it.
void BM_FastAttentionDecode(benchmark::State& state) {
  const int64_t keys = state.range(0), d = 256;
  const Mat<float> k = Mat<float>::Random(keys, d), v = Mat<float>::Random(keys, d),
                   q = Mat<float>::Random(1, d);
  const kernels::simd::KeySegment seg{k.data(), v.data(), keys, d};
  Mat<float> out(1, d);
  for (auto _ : state) {
    kernels::call(kernels::simd::AttendQuery{}, q.data(), int64_t(1), d, &seg, int64_t(1), 0.0625f,
                  0.f, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["keys/s"] =
      benchmark::Counter(double(keys), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["kv_bytes/s"] =
      benchmark::Counter(double(keys * d * 2 * 4), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_FastAttentionDecode)
    ->Arg(512)
    ->Arg(1024)
    ->Arg(8192)
    ->Arg(32768)
    ->Unit(benchmark::kMicrosecond);

// SigLIP at the 4b/12b/27b shapes (4096 patches, hidden 1152, 16 heads of 72, fc1 4304): the
// full bidirectional attention of one layer (fast::attend_bidirectional, online softmax over blocks
// of keys), its MLP (fast::gelu_mlp, packed from fc1 to fc2) and LayerNorm. FLOP/s against the FMA
// peak. Args: patches (and, for the MLP, bf16 inputs).
void BM_VisionAttention(benchmark::State& state) {
  const int64_t n = state.range(0), heads = 16, d = 72;
  const Mat<float> q = Mat<float>::Random(n, heads * d), k = Mat<float>::Random(n, heads * d),
                   v = Mat<float>::Random(n, heads * d);
  for (auto _ : state)
    benchmark::DoNotOptimize(fast::attend_bidirectional(q, k, v, heads, d, 0.11785f));
  state.counters["FLOP/s"] = benchmark::Counter(4.0 * double(n * n * heads * d),
                                                benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(kernels::active_isa());
}
BENCHMARK(BM_VisionAttention)->Arg(1024)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_VisionMlp(benchmark::State& state) {
  const int64_t n = state.range(0), hidden = 1152, intermediate = 4304;
  const auto inputs = state.range(1) ? fast::MatmulInputs::Bf16 : fast::MatmulInputs::F32;
  const Weight fc1(intermediate, hidden), fc2(hidden, intermediate);
  const Vec<float> b1 = Vec<float>::Random(intermediate), b2 = Vec<float>::Random(hidden);
  const Mat<float> x = Mat<float>::Random(n, hidden);
  for (auto _ : state)
    benchmark::DoNotOptimize(fast::gelu_mlp(x, fc1.view, b1.data(), fc2.view, b2.data(), inputs));
  state.counters["FLOP/s"] = benchmark::Counter(4.0 * double(n * hidden * intermediate),
                                                benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(inputs == fast::MatmulInputs::Bf16 && fast::bf16_dot_available()
                     ? "vdpbf16ps"
                     : kernels::active_isa());
}
BENCHMARK(BM_VisionMlp)
    ->Args({4096, 0})
    ->Args({4096, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_VisionLayerNorm(benchmark::State& state) {
  const Mat<float> x = Mat<float>::Random(state.range(0), 1152);
  const Vec<float> w = Vec<float>::Random(1152), b = Vec<float>::Random(1152);
  for (auto _ : state) benchmark::DoNotOptimize(fast::layer_norm(x, w, b, 1e-6));
  state.counters["bytes/s"] =
      benchmark::Counter(8.0 * double(x.size()), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_VisionLayerNorm)->Arg(4096)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_PlainRmsNorm(benchmark::State& state) {
  const int64_t hidden = state.range(0), tokens = state.range(1);
  const Mat<float> x = Mat<float>::Random(tokens, hidden);
  const Vec<float> w = Vec<float>::Random(hidden);
  for (auto _ : state) benchmark::DoNotOptimize(plain::rms_norm<float>(x, w, 1e-6));
  state.counters["bytes/s"] =
      benchmark::Counter(double(x.size() * 4), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_PlainRmsNorm)->Args({1152, 1})->Args({2560, 512});

// The machine's limits, for the ratios above.
void BM_MachineReadBandwidth(benchmark::State& state) {
  for (auto _ : state)
    state.counters["read_GB/s"] = measure_bandwidth(std::size_t(128) << 20, 2).read_gb_s;
}
BENCHMARK(BM_MachineReadBandwidth)->Iterations(1)->Unit(benchmark::kMillisecond);
void BM_MachineFmaPeak(benchmark::State& state) {
  for (auto _ : state) state.counters["GFLOP/s"] = measure_fma_peak_gflops(0.2);
  state.SetLabel(kernels::active_isa());
}
BENCHMARK(BM_MachineFmaPeak)->Iterations(1)->Unit(benchmark::kMillisecond);
void BM_MachineBf16DotPeak(benchmark::State& state) {
  for (auto _ : state) state.counters["GFLOP/s"] = measure_bf16_dot_peak_gflops(0.2);
  state.SetLabel(fast::bf16_dot_available() ? "vdpbf16ps" : "n/a: no AVX512-BF16");
}
BENCHMARK(BM_MachineBf16DotPeak)->Iterations(1)->Unit(benchmark::kMillisecond);
void BM_MachineInt8DotPeak(benchmark::State& state) {
  for (auto _ : state) state.counters["GOP/s"] = measure_int8_dot_peak_gops(0.2);
  state.SetLabel(fast::vnni_available() ? "vpdpbusd" : "n/a: no AVX512-VNNI");
}
BENCHMARK(BM_MachineInt8DotPeak)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
