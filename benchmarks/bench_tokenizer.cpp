// Tokenizer throughput on the reference corpus (tests/data/tokenizer: prose, code, CJK, emoji,
// ...).
#include <benchmark/benchmark.h>

#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <gemma3/tokenizer/tokenizer.hpp>

namespace {

using namespace gemma3;

std::vector<std::string> corpus() {
  std::vector<std::string> texts;
  std::ifstream in(std::string(GEMMA3_BENCH_DATA) + "/tokenizer/gemma3_tokenizer_reference.jsonl");
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) texts.push_back(nlohmann::json::parse(line)["text"].get<std::string>());
  return texts;
}

void BM_TokenizerEncode(benchmark::State& state) {
  const std::string model = GEMMA3_TOKENIZER_MODEL;
  if (model.empty()) {
    state.SkipWithError(
        "configure with -DGEMMA3_TOKENIZER_MODEL=... (scripts/get_tokenizer.sh builds it)");
    return;
  }
  const Tokenizer tok(model);
  const auto texts = corpus();
  std::size_t bytes = 0, tokens = 0;
  for (const auto& t : texts) bytes += t.size();
  const EncodeOptions opt{.parse_special = state.range(0) != 0};
  for (auto _ : state)
    for (const auto& t : texts) tokens += tok.encode(t, opt).size();
  state.counters["bytes/s"] =
      benchmark::Counter(double(bytes), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["tokens/s"] = benchmark::Counter(double(tokens), benchmark::Counter::kIsRate);
  state.SetLabel(opt.parse_special ? "Hugging Face mode" : "SentencePiece mode");
}
BENCHMARK(BM_TokenizerEncode)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace
