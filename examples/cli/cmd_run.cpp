// gemma3 run  — one prompt in, the streamed answer out, then a stats line.
// gemma3 chat — an interactive multi-turn REPL whose KV cache is reused across turns.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

#include <omp.h>
#include <nlohmann/json.hpp>

#include <gemma3/checkpoint.hpp>
#include <gemma3/multimodal.hpp>
#include <gemma3/session.hpp>
#include <gemma3/tokenizer/load_tokenizer.hpp>
#include <gemma3/tokenizer/tool_call.hpp>

#include "commands.hpp"
#include "console.hpp"

namespace gemma3::cli {

std::string default_tokenizer_path(const std::string& given, const std::string& model_dir) {
  if (!given.empty()) return given;
  // Beside the weights: in the checkpoint directory, or in a .gguf file's directory.
  const std::filesystem::path model_path(model_dir);
  const std::filesystem::path beside =
      (std::filesystem::is_regular_file(model_path) ? model_path.parent_path() : model_path) /
      "tokenizer.model";
  if (std::filesystem::exists(beside)) return beside.string();
  // One file is a model: a .gguf that carries its tokenizer in tokenizer.ggml.* metadata.
  if (is_gguf_file(model_path) && gguf::has_tokenizer(gguf::File(model_path))) return model_dir;
  if (const char* env = std::getenv("GEMMA3_TOKENIZER")) return env;
  // Where scripts/setup.sh (scripts/get_tokenizer.sh) builds it.
  std::filesystem::path cache;
  if (const char* c = std::getenv("GEMMA3_CACHE"))
    cache = c;
  else if (const char* home = std::getenv("HOME"))
    cache = std::filesystem::path(home) / ".cache" / "gemma3";
  const auto built = cache / "tokenizer" / "tokenizer.model";
  if (std::filesystem::exists(built)) return built.string();
  throw InvalidArgument("--tokenizer", "no tokenizer.model in " + model_dir +
                                           " nor tokenizer metadata in it, none given, and none "
                                           "built by scripts/setup.sh");
}

void add_mmproj_option(CLI::App* cmd, std::string& mmproj) {
  cmd->add_option("--mmproj", mmproj,
                  "the vision tower and projector of a .gguf model: llama.cpp's mmproj GGUF "
                  "(needed for images)")
      ->check(CLI::ExistingFile);
}

long peak_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

Checkpoint open_model(const std::string& model, const std::string& mmproj, Residency residency,
                      const Progress& progress) {
  if (mmproj.empty()) return Checkpoint::open(model, residency, progress);
  if (!Checkpoint::is_gguf(model))
    throw InvalidArgument("--mmproj", "goes with a .gguf --model (" + model +
                                          " is a checkpoint directory, which holds its own vision "
                                          "tower)");
  return Checkpoint::open(model, mmproj, residency, progress);
}

namespace {

struct RunOptions {
  std::string model, tokenizer, prompt, system, tools, backend = "fast", on_full_context = "refuse";
  std::string mmproj;
  std::vector<std::string> images;
  bool pan_and_scan = false;
  int64_t max_new_tokens = 256, context = 4096;
  SamplerConfig sampling;
  int threads = 0;
  bool raw = false, json = false, huge_pages = false;
  std::vector<std::string> stop;
};

void add_common_options(CLI::App* cmd, RunOptions& o) {
  cmd->add_option("--model", o.model, "checkpoint directory (config.json + safetensors)")
      ->required();
  cmd->add_option(
      "--tokenizer", o.tokenizer,
      "tokenizer.model, or a .gguf holding one (default: the model directory's tokenizer.model, "
      "then a .gguf model's own, then $GEMMA3_TOKENIZER, then the one scripts/setup.sh built)");
  cmd->add_option("--system", o.system, "system prompt, folded into the first user turn");
  cmd->add_option("--max-new-tokens", o.max_new_tokens, "most tokens to generate per answer")
      ->check(whole_in(1, int64_t(INT32_MAX)));
  cmd->add_option("--context", o.context, "KV cache size in tokens (prompt + answers)")
      ->check(whole_in(1, INT64_MAX));
  cmd->add_option("--temperature", o.sampling.temperature, "softmax temperature; 0 = greedy")
      ->check(real_in(0, 1e6));
  cmd->add_option("--top-k", o.sampling.top_k, "keep the k most likely tokens; 0 = off")
      ->check(whole_in(0, int64_t(INT32_MAX)));
  cmd->add_option("--top-p", o.sampling.top_p, "nucleus: smallest set with probability mass >= p")
      ->check(real_in(0, 1, /*above_lo=*/true));
  cmd->add_option("--min-p", o.sampling.min_p, "drop tokens below min-p x the top probability")
      ->check(real_in(0, 1));
  cmd->add_option("--repetition-penalty", o.sampling.repetition_penalty,
                  "HF-style repetition penalty; 1 = off")
      ->check(real_in(0, 1e6, /*above_lo=*/true));
  cmd->add_option("--seed", o.sampling.seed, "random seed: the same seed gives the same tokens")
      ->check(any_uint64());
  cmd->add_option("--top-logprobs", o.sampling.top_logprobs,
                  "with --json: also list the N most likely tokens at each step")
      ->check(whole_in(0, 1000));
  cmd->add_option("--stop", o.stop, "stop generating at this string (repeatable)")
      ->check(CLI::Validator(
          [](std::string& s) { return s.empty() ? std::string("an empty stop string") : ""; },
          "TEXT (not empty)"));
  cmd->add_option("--threads", o.threads,
                  "OpenMP threads (default: $GEMMA3_NUM_THREADS or all cores)")
      ->check(whole_in(1, 1 << 20));
  cmd->add_flag("--json", o.json, "print one JSON object per answer instead of streaming text");
  cmd->add_option("--backend", o.backend,
                  "plain (Eigen, the definition), fast (SIMD kernels) or fast-bf16 (matrix inputs "
                  "rounded to bf16)")
      ->check(CLI::IsMember({"plain", "fast", "fast-bf16"}));
  cmd->add_flag(
      "--huge-pages", o.huge_pages,
      "read the weights into 2 MiB pages instead of mapping the file (slower load, faster decode; "
      "with AVX512-VNNI, Q8_0/Q4_0/Q5_0/Q4_K/Q5_K/Q6_K rows interleaved for the int8 kernel: "
      "docs/gguf.md)");
  cmd->add_flag(
      "--pan-and-scan", o.pan_and_scan,
      "also feed crops of images whose aspect ratio is far from square (HF's do_pan_and_scan)");
  add_mmproj_option(cmd, o.mmproj);
}

Checkpoint open_checkpoint(const RunOptions& o) {
  if (!o.huge_pages) return open_model(o.model, o.mmproj);
  ProgressBar bar("reading into huge pages");
  return open_model(o.model, o.mmproj, Residency::HugePages, bar.callback());
}

// Everything a run or chat needs, loaded once.
struct Loaded {
  Checkpoint checkpoint;
  Gemma3<float> model;
  Tokenizer tokenizer;
  std::optional<ImageProcessor> processor;  // with the --pan-and-scan choice applied

  explicit Loaded(const RunOptions& o)
      : checkpoint(open_checkpoint(o)),
        model(checkpoint, backend_from_string(o.backend)),
        tokenizer(load_tokenizer(default_tokenizer_path(o.tokenizer, o.model))) {
    if (model.has_vision()) {
      ImageProcessorConfig pc = model.processor().config();
      pc.do_pan_and_scan = o.pan_and_scan;
      processor.emplace(pc);
    }
    if (tokenizer.vocab_size() > checkpoint.config().text.vocab_size)
      throw InvalidArgument("--tokenizer",
                            "the tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                                " pieces but the model's embedding only " +
                                std::to_string(checkpoint.config().text.vocab_size) + " rows");
  }

  // Loads, preprocesses and encodes image files: the prompt parts and their soft tokens. The
  // session encodes each image once (an image shown again comes from its cache).
  std::pair<std::vector<ContentPart>, ImageEmbeddings<float>> images(
      const std::vector<std::string>& files, Session<float>& session, bool report) const {
    std::vector<ContentPart> parts;
    ImageEmbeddings<float> embeddings;
    if (files.empty()) return {parts, embeddings};
    if (!model.has_vision() && checkpoint.gguf_file())
      throw InvalidArgument("image", checkpoint.path().string() +
                                         " is a text model: llama.cpp keeps the vision tower in a "
                                         "separate mmproj GGUF; give it with --mmproj");
    model.vision();  // throws for a text-only checkpoint
    using clock = std::chrono::steady_clock;
    double preprocess_s = 0, encode_s = 0;
    const int64_t hits = session.image_cache().hits();
    for (const auto& f : files) {
      auto t0 = clock::now();
      const ProcessedImage p = (*processor)(load_image(f));
      auto t1 = clock::now();
      for (Mat<float>& soft : session.encode(p)) embeddings.push_back(std::move(soft));
      auto t2 = clock::now();
      preprocess_s += std::chrono::duration<double>(t1 - t0).count();
      encode_s += std::chrono::duration<double>(t2 - t1).count();
      parts.push_back(ContentPart::Image(p.num_crops));
    }
    if (report)
      std::fprintf(stderr,
                   "[%zu image(s), %zu encoded (crops included), %ld of them already seen: "
                   "preprocessing %.2f s, vision encoder %.2f s]\n",
                   files.size(), embeddings.size(), long(session.image_cache().hits() - hits),
                   preprocess_s, encode_s);
    return {parts, embeddings};
  }
};

// The KV cache's size for `context` positions: what Session checked against the available memory
// before allocating it (docs/robustness.md), reported with the speeds.
double kv_cache_gib(const Loaded& l, int64_t context) {
  return double(KVCache<float>::bytes_needed(l.checkpoint.config().text, context)) /
         double(int64_t(1) << 30);
}

nlohmann::json result_json(const GenerateResult& r, double kv_gib) {
  // Every sampled token (the stop token included) with its log-probability under the model and
  // the --top-logprobs alternatives.
  nlohmann::json tokens = nlohmann::json::array();
  for (const SampleResult& t : r.tokens) {
    nlohmann::json top = nlohmann::json::array();
    for (const auto& [id, lp] : t.top) top.push_back({{"id", id}, {"logprob", lp}});
    tokens.push_back({{"id", t.id}, {"logprob", t.logprob}, {"top", top}});
  }
  return {
      {"text", r.text},
      {"ids", r.ids},
      {"tokens", tokens},
      {"stop_reason", to_string(r.reason)},
      {"prefill_tokens", r.prefill_tokens},
      {"generated_tokens", r.ids.size()},
      {"prefill_tokens_per_s", r.prefill_seconds > 0 ? r.prefill_tokens / r.prefill_seconds : 0.0},
      {"decode_tokens_per_s", r.decode_seconds > 0 ? double(r.ids.size()) / r.decode_seconds : 0.0},
      {"time_to_first_token_s", r.time_to_first_token},
      {"peak_rss_mib", double(peak_rss_kib()) / 1024.0},
      {"kv_cache_gib", kv_gib}};
}

void print_stats(const GenerateResult& r, const std::string& reason, double kv_gib) {
  std::fprintf(stderr,
               "[%ld prompt tokens, prefill %.1f tok/s, decode %.1f tok/s (%zu tokens, %s), "
               "first token after %.2f s, peak RSS %.0f MiB, KV cache %.3f GiB]\n",
               long(r.prefill_tokens),
               r.prefill_seconds > 0 ? r.prefill_tokens / r.prefill_seconds : 0.0,
               r.decode_seconds > 0 ? double(r.ids.size()) / r.decode_seconds : 0.0, r.ids.size(),
               reason.c_str(), r.time_to_first_token, double(peak_rss_kib()) / 1024.0, kv_gib);
}

// One answer's streaming: pieces to stdout (none with --json), and generation stopped cleanly
// after every token where it must not go on: on Ctrl-C (the answer so far stands), on a failed
// write to stdout or a change to the mapped weights (the error is kept and rethrown by finish()).
class Streamer {
 public:
  Streamer(bool json, const Checkpoint& checkpoint) : json_(json), checkpoint_(&checkpoint) {}

  PieceCallback pieces() {
    if (json_) return {};
    return [this](const std::string& piece) { return guarded([&] { write_stdout(piece); }); };
  }
  GenerateOptions options(GenerateOptions gen) {
    gen.on_token = [this](const SampleResult&) {
      if (interrupted()) return false;
      return guarded([&] { checkpoint_->check_unchanged(); });
    };
    return gen;
  }
  // The stop reason to report ("interrupted" for a Ctrl-C); throws a kept error.
  std::string finish(const GenerateResult& r) {
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
    return r.reason == StopReason::Callback && interrupted() ? "interrupted" : to_string(r.reason);
  }

 private:
  template <typename F>
  bool guarded(F&& f) {
    try {
      f();
      return true;
    } catch (...) {
      error_ = std::current_exception();
      return false;
    }
  }
  bool json_;
  const Checkpoint* checkpoint_;
  std::exception_ptr error_;
};

void run(const RunOptions& o) {
  set_threads(o.threads);
  Loaded l(o);
  Session<float> session(l.model, l.tokenizer, o.context, o.sampling);
  Streamer streamer(o.json, l.checkpoint);
  const GenerateOptions gen =
      streamer.options({.max_new_tokens = o.max_new_tokens, .stop_strings = o.stop});
  GenerateResult r;
  if (o.raw) {
    if (!o.images.empty()) throw InvalidArgument("--image", "needs the chat template (drop --raw)");
    r = session.generate(l.tokenizer.encode(o.prompt, {.add_bos = true}), gen, streamer.pieces());
  } else {
    auto [parts, embeddings] = l.images(o.images, session, !o.json);
    parts.push_back(
        ContentPart::Text(o.prompt));  // images first, then the question, as HF's examples
    Conversation conv;
    if (!o.system.empty()) conv.system(o.system);
    conv.user(parts);
    const int64_t mm = l.checkpoint.config().mm_tokens_per_image;
    r = session.generate(conv.render_ids(l.tokenizer, mm), gen, streamer.pieces(), embeddings);
  }
  const std::string reason = streamer.finish(r);
  if (o.json) {
    auto j = result_json(r, kv_cache_gib(l, o.context));
    j["stop_reason"] = reason;
    write_stdout(j.dump() + "\n");
  } else {
    write_stdout("\n");
    print_stats(r, reason, kv_cache_gib(l, o.context));
  }
  throw_if_interrupted();  // stopped by Ctrl-C: what was generated is out; exit 130
}

// The longest line chat reads; the rest of a longer one is skipped.
constexpr std::size_t kMaxLineBytes = std::size_t(1) << 20;

enum class LineRead { Line, TooLong, Interrupted, End };

// One line of stdin, without its newline.
LineRead read_line(std::string& line) {
  line.clear();
  bool too_long = false;
  for (;;) {
    const int c = std::getc(stdin);
    if (c == EOF) {
      if (interrupted()) {
        std::clearerr(stdin);
        return LineRead::Interrupted;
      }
      return line.empty() && !too_long ? LineRead::End
             : too_long                ? LineRead::TooLong
                                       : LineRead::Line;
    }
    if (c == '\n') return too_long ? LineRead::TooLong : LineRead::Line;
    if (line.size() < kMaxLineBytes)
      line += char(c);
    else
      too_long = true;
  }
}

void chat(const RunOptions& o) {
  set_threads(o.threads);
  Loaded l(o);
  Session<float> session(l.model, l.tokenizer, o.context, o.sampling);
  Streamer streamer(o.json, l.checkpoint);
  const GenerateOptions gen = streamer.options(
      {.max_new_tokens = o.max_new_tokens,
       .stop_strings = o.stop,
       .on_full_context =
           o.on_full_context == "drop-oldest" ? ContextFull::DropOldest : ContextFull::Refuse});
  const bool tty = isatty(STDIN_FILENO);
  if (tty)
    std::fprintf(stderr,
                 "gemma3 chat — /image FILE attaches an image to your next message, /reset clears "
                 "the history, /stats shows the cache, Ctrl-C stops an answer, Ctrl-D leaves\n");
  std::vector<std::string> pending_images = o.images;
  // Function calling: the declarations go before the first message; a tool_code block in an answer
  // is parsed and shown, and the next line you type is the tool's result (JSON), sent back to the
  // model as a tool_output block.
  std::string tool_preamble;
  if (!o.tools.empty()) {
    const std::string text = read_file(o.tools, "tools file", 64 << 20);
    nlohmann::json tools;
    try {
      tools = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(o.tools, std::string("invalid JSON: ") + e.what());
    }
    tool_preamble = render_tool_declarations(tools);
  }
  bool awaiting_tool_result = false;
  std::string line;
  while (true) {
    if (tty) std::fprintf(stderr, "> ");
    const LineRead got = read_line(line);
    if (got == LineRead::End) break;
    if (got == LineRead::Interrupted) {  // Ctrl-C at the prompt: a fresh prompt
      clear_interrupt();
      std::fprintf(stderr, "\n");
      continue;
    }
    if (got == LineRead::TooLong) {
      std::fprintf(stderr, "[line skipped: longer than %zu bytes; the conversation is unchanged]\n",
                   kMaxLineBytes);
      continue;
    }
    if (line.empty()) continue;
    if (line == "/reset") {
      session.reset();
      awaiting_tool_result = false;
      std::fprintf(stderr, "[history cleared]\n");
      continue;
    }
    if (line == "/stats") {
      std::fprintf(stderr, "[%ld of %ld context positions used, %zu messages]\n",
                   long(session.cache().length()), long(session.context()),
                   session.conversation().messages().size());
      continue;
    }
    if (line.rfind("/image ", 0) == 0) {
      try {
        check_regular_file(line.substr(7));  // now, so that a typo is reported before the turn
        pending_images.push_back(line.substr(7));
      } catch (const Error& e) {
        std::fprintf(stderr, "[image not attached: %s]\n", e.what());
      }
      continue;
    }
    // A bad turn (invalid UTF-8, too long for the context, an image that does not decode) is
    // reported and the conversation goes on as it was. Errors that void the session (the weights
    // changed on disk, stdout failed) end it.
    const std::size_t tokens_before = session.tokens().size();
    std::optional<ToolCall> call;
    try {
      std::string text = line;
      if (awaiting_tool_result) {
        nlohmann::json result;
        try {
          result = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception&) {
          result = line;  // plain text is a string result
        }
        text = render_tool_output(result);
      } else if (session.conversation().messages().empty() && !tool_preamble.empty()) {
        text = tool_preamble + "\n\n" + line;
      }
      auto [parts, embeddings] = l.images(pending_images, session, !o.json);
      pending_images.clear();
      parts.push_back(ContentPart::Text(text));
      if (session.conversation().messages().empty() && !o.system.empty())
        session.chat_system(o.system);
      const GenerateResult last =
          session.chat(Message{"user", parts, parts.size() == 1}, gen, streamer.pieces(),
                       embeddings, l.checkpoint.config().mm_tokens_per_image);
      const std::string reason = streamer.finish(last);
      awaiting_tool_result = false;
      if (!tool_preamble.empty()) {
        try {
          call = find_tool_call(last.text);
        } catch (const ToolCallError& e) {
          std::fprintf(stderr, "[malformed tool call: %s]\n", e.what());
        }
        awaiting_tool_result = call.has_value();
      }
      if (last.dropped_messages > 0)
        std::fprintf(stderr, "[context full: dropped the %ld oldest messages]\n",
                     long(last.dropped_messages));
      if (o.json) {
        auto j = result_json(last, kv_cache_gib(l, o.context));
        j["stop_reason"] = reason;
        j["context_used"] = session.cache().length();
        j["dropped_messages"] = last.dropped_messages;
        if (call)
          j["tool_call"] = {{"name", call->name},
                            {"arguments", call->arguments},
                            {"positional", call->positional}};
        write_stdout(j.dump() + "\n");
      } else {
        write_stdout("\n");
        print_stats(last, reason, kv_cache_gib(l, o.context));
      }
    } catch (const ContextOverflow& e) {
      pending_images.clear();
      std::fprintf(stderr,
                   "[turn not taken: %s; the conversation is unchanged (/reset, a larger "
                   "--context or --on-full-context drop-oldest make room)]\n",
                   e.what());
    } catch (const Error& e) {
      l.checkpoint.check_unchanged();  // a model changed on disk ends the session
      if (std::string_view(e.subject()) == "stdout") throw;
      pending_images.clear();
      if (session.tokens().size() != tokens_before) {
        // Failed after it had begun (not expected): start over rather than go on half-updated.
        session.reset();
        std::fprintf(stderr, "[turn failed: %s; the history was cleared]\n", e.what());
      } else {
        std::fprintf(stderr, "[turn not taken: %s; the conversation is unchanged]\n", e.what());
      }
    }
    clear_interrupt();  // an answer stopped by Ctrl-C: back to the prompt
    if (call && tty)
      std::fprintf(stderr, "[tool call: %s — type the tool's result (JSON) as your next line]\n",
                   render_tool_call(*call).c_str());
  }
}

}  // namespace

void add_run_commands(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  auto* r = app.add_subcommand("run", "generate an answer to one prompt (chat template applied)");
  add_common_options(r, *o);
  r->add_option("--prompt", o->prompt, "the user's message")->required();
  r->add_flag("--raw", o->raw, "no chat template: the prompt is encoded as is, after <bos>");
  r->add_option("--image", o->images,
                "an image for the prompt (repeatable; multimodal checkpoints)")
      ->check(CLI::ExistingFile);
  r->callback([o] { run(*o); });

  auto c = std::make_shared<RunOptions>();
  auto* ch = app.add_subcommand(
      "chat", "interactive multi-turn chat on stdin (KV cache reused across turns)");
  add_common_options(ch, *c);
  ch->add_option("--image", c->images, "an image for the first message (repeatable)")
      ->check(CLI::ExistingFile);
  ch->add_option(
        "--tools", c->tools,
        "function declarations (JSON list); the model may answer with a tool_code call, and "
        "the line after it is the tool's result")
      ->check(CLI::ExistingFile);
  ch->add_option("--on-full-context", c->on_full_context,
                 "a turn that does not fit: refuse it (the default), or drop-oldest: drop the "
                 "oldest exchanges until it fits, and say so")
      ->check(CLI::IsMember({"refuse", "drop-oldest"}));
  ch->callback([c] { chat(*c); });
}

}  // namespace gemma3::cli
