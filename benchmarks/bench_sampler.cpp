// Sampling one token from a 262144-logit row (Gemma 3's vocabulary): greedy, Gemma's defaults
// (top-k 64, top-p 0.95), and the costlier settings. Every case also computes the reported
// log-probability, which needs one pass of exponentials over the row.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include <gemma3/sample/sampler.hpp>

namespace {

using namespace gemma3;

constexpr std::size_t kVocab = 262144;

// Logits shaped like a language model's: a broad Gaussian body (σ = 3) and a few clear favourites.
const std::vector<float>& lm_like_logits() {
  static const std::vector<float> logits = [] {
    std::vector<float> l(kVocab);
    sampling::Rng rng(2025);
    for (float& x : l) {  // Box-Muller
      const double u1 = 1.0 - rng.uniform(), u2 = rng.uniform();
      x = float(3.0 * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
    }
    const float favourites[] = {24, 23.5f, 22, 21, 19.5f, 18};
    for (std::size_t i = 0; i < std::size(favourites); ++i) l[1000 + 37 * i] = favourites[i];
    return l;
  }();
  return logits;
}

// The last 64 tokens of a made-up history, for the penalties.
std::vector<int32_t> recent_tokens() {
  std::vector<int32_t> ids(64);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 7919) % kVocab);
  return ids;
}

void sample_with(benchmark::State& state, const SamplerConfig& cfg) {
  const auto& logits = lm_like_logits();
  const auto recent = recent_tokens();
  Sampler sampler(cfg);
  for (auto _ : state) benchmark::DoNotOptimize(sampler.sample(logits, recent).id);
  state.counters["logits/s"] =
      benchmark::Counter(double(kVocab), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_SampleGreedy(benchmark::State& state) {
  sample_with(state, {.temperature = 0});
}
BENCHMARK(BM_SampleGreedy)->Unit(benchmark::kMicrosecond);

// Gemma 3's generation_config.json: temperature 1, top-k 64, top-p 0.95.
void BM_SampleTopK64TopP095(benchmark::State& state) {
  sample_with(state, SamplerConfig{});
}
BENCHMARK(BM_SampleTopK64TopP095)->Unit(benchmark::kMicrosecond);

// Penalties copy the row; five log-probabilities need one more selection pass.
void BM_SampleDefaultsPenaltiesTop5(benchmark::State& state) {
  sample_with(state, {.repetition_penalty = 1.1f,
                      .presence_penalty = 0.5f,
                      .frequency_penalty = 0.1f,
                      .top_logprobs = 5});
}
BENCHMARK(BM_SampleDefaultsPenaltiesTop5)->Unit(benchmark::kMicrosecond);

// Top-k off: the nucleus is found in a growing best-first prefix, plus a softmax over the whole
// row.
void BM_SampleTopP095(benchmark::State& state) {
  sample_with(state, {.top_k = 0});
}
BENCHMARK(BM_SampleTopP095)->Unit(benchmark::kMicrosecond);

void BM_SampleMinP005(benchmark::State& state) {
  sample_with(state, {.top_k = 0, .top_p = 1, .min_p = 0.05f});
}
BENCHMARK(BM_SampleMinP005)->Unit(benchmark::kMicrosecond);

}  // namespace
