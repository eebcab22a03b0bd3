// The plain reference kernels at the real shapes of Gemma 3 270m/1b/4b: the baseline every fast kernel
// is measured against. Counters: bytes of weights read per second, FLOP/s.
#include <benchmark/benchmark.h>

#include <gemma3/kernels/reference.hpp>
#include <gemma3/synth.hpp>

namespace {

using namespace gemma3;

// A bf16 weight [rows, cols] with seeded values, kept alive for the benchmark's duration.
struct Weight {
  std::vector<std::byte> bytes;
  TensorView view;
  Weight(int64_t rows, int64_t cols) {
    bytes = synthesize_tensor(1, "w", {rows, cols}, Init::Linear, DType::BF16);
    view = TensorView{.name = "w", .dtype = DType::BF16, .shape = {rows, cols}, .data = bytes.data()};
  }
};

// y = x·Wᵀ for one token (decode) or a batch of tokens (prefill).
void BM_ReferenceLinear(benchmark::State& state) {
  const int64_t out = state.range(0), in = state.range(1), tokens = state.range(2);
  const Weight w(out, in);
  const Mat<float> x = Mat<float>::Random(tokens, in);
  for (auto _ : state) benchmark::DoNotOptimize(ref::linear<float>(x, w.view));
  state.counters["weight_bytes/s"] =
      benchmark::Counter(double(w.view.nbytes()), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * double(out * in * tokens), benchmark::Counter::kIsIterationInvariantRate);
}
// 1b MLP up/gate (6912x1152), 1b down (1152x6912), 4b MLP (10240x2560); decode and a 64-token prefill.
BENCHMARK(BM_ReferenceLinear)
    ->Args({6912, 1152, 1})
    ->Args({1152, 6912, 1})
    ->Args({10240, 2560, 1})
    ->Args({6912, 1152, 64})
    ->Unit(benchmark::kMillisecond);

void BM_ReferenceRmsNorm(benchmark::State& state) {
  const int64_t hidden = state.range(0), tokens = state.range(1);
  const Mat<float> x = Mat<float>::Random(tokens, hidden);
  const Vec<float> w = Vec<float>::Random(hidden);
  for (auto _ : state) benchmark::DoNotOptimize(ref::rms_norm<float>(x, w, 1e-6));
  state.counters["bytes/s"] =
      benchmark::Counter(double(x.size() * 4), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ReferenceRmsNorm)->Args({1152, 1})->Args({2560, 512});

}  // namespace
