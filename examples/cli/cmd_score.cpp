// gemma3 score      — per-token log-probabilities of a text, or of continuations after prompts.
// gemma3 perplexity — sliding-window perplexity of a text file, as llama.cpp's perplexity tool and
//                     transformers' "Perplexity of fixed-length models" guide compute it.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include <unistd.h>

#include <omp.h>
#include <nlohmann/json.hpp>

#include <gemma3/checkpoint.hpp>
#include <gemma3/score.hpp>
#include <gemma3/text/model.hpp>
#include <gemma3/tokenizer/load_tokenizer.hpp>
#include <gemma3/tokenizer/tokenizer.hpp>

#include "commands.hpp"
#include "console.hpp"

namespace gemma3::cli {

namespace {

struct ScoreOptions {
  std::string model, tokenizer, text, jsonl, file, backend = "fast";
  std::string mmproj;  // accepted as run takes it; scoring reads text only
  int64_t top = 0, context = 2048, stride = 0;
  int threads = 0;
  bool no_bos = false;
};

void add_model_options(CLI::App* cmd, ScoreOptions& o) {
  cmd->add_option("--model", o.model, "checkpoint directory or .gguf file")->required();
  cmd->add_option(
      "--tokenizer", o.tokenizer,
      "tokenizer.model, or a .gguf holding one (default: the model directory's tokenizer.model, "
      "then a .gguf model's own, then $GEMMA3_TOKENIZER, then the one scripts/setup.sh built)");
  cmd->add_option("--backend", o.backend, "plain, fast or fast-bf16")
      ->check(CLI::IsMember({"plain", "fast", "fast-bf16"}));
  cmd->add_option("--threads", o.threads,
                  "OpenMP threads (default: $GEMMA3_NUM_THREADS or all cores)")
      ->check(whole_in(1, 1 << 20));
  cmd->add_flag("--no-bos", o.no_bos, "do not start the text with <bos>");
  add_mmproj_option(cmd, o.mmproj);
}

// The checkpoint, its text model and the tokenizer, checked against each other.
struct Loaded {
  Checkpoint checkpoint;
  TextModel<float> model;
  Tokenizer tokenizer;
  explicit Loaded(const ScoreOptions& o)
      : checkpoint(open_model(o.model, o.mmproj)),
        model(checkpoint, backend_from_string(o.backend)),
        tokenizer(load_tokenizer(default_tokenizer_path(o.tokenizer, o.model))) {
    if (tokenizer.vocab_size() > checkpoint.config().text.vocab_size)
      throw InvalidArgument("--tokenizer",
                            "the tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                                " pieces but the model's embedding only " +
                                std::to_string(checkpoint.config().text.vocab_size) + " rows");
  }
};

std::string read_all(const std::string& path, const char* option) {
  if (path == "-") {
    std::stringstream s;
    s << std::cin.rdbuf();
    return s.str();
  }
  try {
    return read_file(path, "text file");
  } catch (const IoError& e) {
    throw IoError(path, std::string(e.what() + e.subject().size() + 2) + " (" + option + ")");
  }
}

nlohmann::json token_json(const Tokenizer& tok, const TokenScore& s) {
  nlohmann::json t{{"position", s.position},
                   {"id", s.id},
                   {"piece", tok.decode({s.id})},
                   {"logprob", s.logprob},
                   {"rank", s.rank}};
  if (!s.top.empty()) {
    t["top"] = nlohmann::json::array();
    for (const auto& [id, lp] : s.top)
      t["top"].push_back({{"id", id}, {"piece", tok.decode({id})}, {"logprob", lp}});
  }
  return t;
}

void score_command(const ScoreOptions& o) {
  set_threads(o.threads);
  const Loaded l(o);
  const auto start = std::chrono::steady_clock::now();
  int64_t tokens = 0;
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  if (!o.text.empty()) {
    // Every token after the first, given what precedes it.
    const auto ids = l.tokenizer.encode(o.text, {.add_bos = !o.no_bos});
    if (ids.size() < 2) throw InvalidArgument("--text", "needs at least 2 tokens to score one");
    const auto scores = score_ids(l.model, ids, 1, o.top);
    nlohmann::json line{{"tokens", nlohmann::json::array()}};
    double sum = 0;
    for (const auto& s : scores)
      line["tokens"].push_back(token_json(l.tokenizer, s)), sum += s.logprob;
    line["logprob"] = sum;
    line["tokens_per_second"] = double(ids.size()) / seconds();
    std::printf("%s\n", line.dump().c_str());
    return;
  }
  // JSONL: one {"prompt": ..., "continuation": ...} per line, one result per line.
  std::istringstream in(read_all(o.jsonl, "--jsonl"));
  std::string text;
  for (int64_t line_no = 1; std::getline(in, text); ++line_no) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = o.jsonl + ":" + std::to_string(line_no);
    nlohmann::json item;
    try {
      item = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(where, std::string("not JSON: ") + e.what());
    }
    if (!item.is_object() || !item.contains("prompt") || !item["prompt"].is_string() ||
        !item.contains("continuation") || !item["continuation"].is_string())
      throw FormatError(where,
                        "expected an object with string fields \"prompt\" and \"continuation\"");
    const auto r = score(l.model, l.tokenizer, item["prompt"].get<std::string>(),
                         item["continuation"].get<std::string>(), !o.no_bos, o.top);
    nlohmann::json out{{"line", line_no},
                       {"logprob", r.logprob},
                       {"boundary_merged", r.boundary_merged},
                       {"tokens", nlohmann::json::array()}};
    for (const auto& s : r.tokens) out["tokens"].push_back(token_json(l.tokenizer, s));
    tokens += int64_t(r.ids.size());
    std::printf("%s\n", out.dump().c_str());
    std::fflush(stdout);
  }
  std::fprintf(stderr,
               "scored at %.1f tok/s (prompt and continuation tokens run through the model)\n",
               double(tokens) / seconds());
}

void perplexity_command(const ScoreOptions& o) {
  set_threads(o.threads);
  const Loaded l(o);
  const auto ids = l.tokenizer.encode(read_all(o.file, "--file"), {.add_bos = !o.no_bos});
  const int64_t max = l.checkpoint.config().text.max_position_embeddings;
  if (o.context > max)
    throw InvalidArgument("--context", std::to_string(o.context) +
                                           " exceeds the model's max_position_embeddings " +
                                           std::to_string(max));
  PerplexityOptions opt{.context = o.context,
                        .stride = o.stride > 0 ? o.stride : std::max<int64_t>(1, o.context / 2),
                        .bos = o.no_bos ? -1 : l.tokenizer.bos()};
  ProgressBar bar("tokens scored", /*bytes=*/false);
  opt.progress = [&](int64_t done, int64_t total) { bar(uint64_t(done), uint64_t(total)); };
  const auto r = perplexity(l.model, ids, opt);
  const nlohmann::json summary{{"perplexity", r.perplexity()},
                               {"nll_per_token", r.tokens ? r.nll / double(r.tokens) : 0.0},
                               {"tokens_scored", r.tokens},
                               {"tokens_in_text", int64_t(ids.size())},
                               {"windows", r.windows},
                               {"context", opt.context},
                               {"stride", opt.stride},
                               {"seconds", r.seconds},
                               {"tokens_per_second", double(r.processed) / r.seconds},
                               {"backend", o.backend}};
  std::printf("%s\n", summary.dump().c_str());
}

}  // namespace

void add_score_commands(CLI::App& app) {
  auto s = std::make_shared<ScoreOptions>();
  auto* score_cmd = app.add_subcommand("score", "per-token log-probabilities, as JSON lines");
  add_model_options(score_cmd, *s);
  auto* text =
      score_cmd->add_option("--text", s->text, "score every token of this text after the first");
  auto* jsonl = score_cmd->add_option(
      "--jsonl", s->jsonl,
      "score the continuation of each {\"prompt\", \"continuation\"} line (- for stdin)");
  text->excludes(jsonl);
  score_cmd->add_option("--top", s->top, "also list the N most likely tokens at each position")
      ->check(whole_in(0, 1000));
  score_cmd->callback([s, text, jsonl] {
    if (text->count() == 0 && jsonl->count() == 0)
      throw InvalidArgument("--text",
                            "give the text with --text, or prompts and continuations with --jsonl");
    score_command(*s);
  });

  auto p = std::make_shared<ScoreOptions>();
  auto* ppl =
      app.add_subcommand("perplexity", "sliding-window perplexity of a text file; a JSON summary");
  add_model_options(ppl, *p);
  ppl->add_option("--file", p->file, "the text (- for stdin)")->required();
  ppl->add_option("--context", p->context, "tokens per window (default 2048)")
      ->check(whole_in(2, int64_t(1) << 30));
  ppl->add_option("--stride", p->stride, "tokens between window starts (default context/2)")
      ->check(whole_in(1, int64_t(1) << 30));
  ppl->callback([p] { perplexity_command(*p); });
}

}  // namespace gemma3::cli
