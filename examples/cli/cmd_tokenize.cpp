// gemma3 tokenize / detokenize — JSON lines in, JSON lines out:
//   gemma3 tokenize --tokenizer tokenizer.model [--bos] [--parse-special] < in.jsonl > out.jsonl
//     adds "ids" to every object with a "text" field;
//   gemma3 detokenize --tokenizer tokenizer.model < in.jsonl > out.jsonl
//     adds "text" to every object with an "ids" field.
// Other fields pass through unchanged, so references can travel with the data. --tokenizer may also
// be a .gguf model that carries its tokenizer (tokenizer.ggml.* metadata).
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include <gemma3/tokenizer/load_tokenizer.hpp>

#include "commands.hpp"
#include "console.hpp"

namespace gemma3::cli {
namespace {

struct TokenizeOptions {
  std::string tokenizer;
  bool bos = false, parse_special = false, skip_special = false;
};

// Applies `f` to each JSON line of stdin and prints the result; errors name the line.
template <typename F>
void map_lines(F&& f) {
  std::string line;
  for (int64_t n = 1; std::getline(std::cin, line); ++n) {
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError("stdin line " + std::to_string(n),
                        std::string("invalid JSON: ") + e.what());
    }
    try {
      f(j);
    } catch (const Error& e) {
      throw FormatError("stdin line " + std::to_string(n), e.what());
    } catch (const nlohmann::json::exception& e) {
      throw FormatError("stdin line " + std::to_string(n), e.what());
    }
    // Checked line by line: a closed pipe stops the loop at once.
    write_stdout(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict) + "\n");
  }
}

std::string tokenizer_path(const std::string& given) {
  if (!given.empty()) return given;
  if (const char* env = std::getenv("GEMMA3_TOKENIZER")) return env;
  throw InvalidArgument("--tokenizer",
                        "give the tokenizer.model or .gguf path (or set GEMMA3_TOKENIZER)");
}

}  // namespace

void add_tokenize_commands(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  auto* tok =
      app.add_subcommand("tokenize", "JSON lines with \"text\" -> the same with \"ids\" added");
  tok->add_option("--tokenizer", o->tokenizer,
                  "tokenizer.model, or a .gguf holding one (default: $GEMMA3_TOKENIZER)");
  tok->add_flag("--bos", o->bos, "prepend <bos>");
  tok->add_flag("--parse-special", o->parse_special,
                "Hugging Face mode: split added tokens such as <bos> out of the text first");
  tok->callback([o] {
    const Tokenizer t = load_tokenizer(tokenizer_path(o->tokenizer));
    map_lines([&](nlohmann::json& j) {
      if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
        throw InvalidArgument("text", "expected an object with a string \"text\" field");
      j["ids"] = t.encode(j["text"].get<std::string>(),
                          {.add_bos = o->bos, .parse_special = o->parse_special});
    });
  });

  auto* detok =
      app.add_subcommand("detokenize", "JSON lines with \"ids\" -> the same with \"text\" added");
  detok->add_option("--tokenizer", o->tokenizer,
                    "tokenizer.model, or a .gguf holding one (default: $GEMMA3_TOKENIZER)");
  detok->add_flag("--skip-special", o->skip_special, "leave control tokens out of the text");
  detok->callback([o] {
    const Tokenizer t = load_tokenizer(tokenizer_path(o->tokenizer));
    map_lines([&](nlohmann::json& j) {
      if (!j.is_object() || !j.contains("ids") || !j["ids"].is_array())
        throw InvalidArgument("ids", "expected an object with an \"ids\" list");
      // Each element a whole number in the vocabulary: JSON's 4294967298 or 1.5 must not wrap or
      // truncate into some other id.
      std::vector<int32_t> ids;
      for (std::size_t i = 0; i < j["ids"].size(); ++i) {
        const auto& id = j["ids"][i];
        if (!id.is_number_integer() ||
            (id.is_number_unsigned() && id.get<uint64_t>() > INT32_MAX) || id.get<int64_t>() < 0 ||
            id.get<int64_t>() >= t.vocab_size())
          throw InvalidArgument("ids[" + std::to_string(i) + "]",
                                id.dump() + " is not a token id (a whole number in [0, " +
                                    std::to_string(t.vocab_size()) + "))");
        ids.push_back(int32_t(id.get<int64_t>()));
      }
      j["text"] = t.decode(ids, o->skip_special);
    });
  });
}

}  // namespace gemma3::cli
