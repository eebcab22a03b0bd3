// A SentencePiece tokenizer in GGUF metadata, both ways: written as llama.cpp's
// convert_hf_to_gguf.py writes Gemma 3's (TextModel._create_vocab_sentencepiece and
// _set_vocab_sentencepiece, gguf-py's SpecialVocab, Gemma3Model.set_vocab), and read back into the
// SentencePiece ModelProto it came from (tokenizer/spm_model.hpp).
//
//   tokenizer.ggml.model                   "llama" (llama.cpp's name for SentencePiece)
//   tokenizer.ggml.pre                     "default"
//   tokenizer.ggml.tokens                  [STRING] one per token id
//   tokenizer.ggml.scores                  [FLOAT32]
//   tokenizer.ggml.token_type              [INT32] SentencePiece's numbers (1 NORMAL ... 6 BYTE)
//   tokenizer.ggml.{bos,eos,unknown,padding}_token_id, eot_token_id   UINT32
//   tokenizer.ggml.add_{bos,sep,eos}_token, add_space_prefix          BOOL
//   tokenizer.chat_template                STRING
//
// What the converter changes (llama.cpp's convert_hf_to_gguf.py, Gemma3Model via
// TextModel._create_vocab_sentencepiece), and so what reading undoes. (Measured on the
// 262144-piece file llama.cpp wrote, tests/data/gguf/gemma3-270m-metadata.llamacpp.gguf: every
// piece comes back as tokenizer.model has it, text, score and type.)
//   * Each added token of tokenizer_config.json (`added_tokens_decoder`: for Gemma 3 its CONTROL,
//     UNKNOWN and USER_DEFINED pieces, 6414 of them) gets score -1000, and type CONTROL where HF
//     marks it special or it "looks special" (<mask>, <unusedN>, <|...|>), USER_DEFINED otherwise.
//     So <unk> and 6247 USER_DEFINED pieces (<start_of_turn>, <unused0>, ...) arrive as CONTROL. In
//     SentencePiece that difference changes ids: a USER_DEFINED piece written in the text is that
//     piece, a CONTROL piece is plain text. Reading makes a CONTROL token CONTROL only when it is
//     one of SentencePiece's own special pieces (bos, eos, pad), UNKNOWN when it is the unknown
//     token, and USER_DEFINED otherwise; their -1000 becomes the 0 SentencePiece gives them.
//   * USER_DEFINED tokens have U+2581 written as spaces ("pre-normalize user-defined spaces": the
//     piece "▁▁" is written "  "). Reading puts U+2581 back: SentencePiece matches these pieces
//     against the escaped text, in which every space is U+2581.
//   * tokenizer.ggml.eos_token_id is tokenizer_config.json's eos_token, which is <end_of_turn>
//     (106) for the instruction-tuned models, not SentencePiece's eos. So SentencePiece's eos piece
//     is found by Gemma's name for it, <eos>.
// The settings: llama.cpp's SentencePiece tokenizer merges the highest-scoring pair first (BPE),
// falls back to <0xXX> byte pieces, escapes spaces as U+2581 and normalizes nothing else;
// add_space_prefix is SentencePiece's add_dummy_prefix. The training-only TrainerSpec fields are
// set as Gemma 3's tokenizer.model has them (scripts/convert_tokenizer.py, build_proto), so the
// proto rebuilt from a Gemma 3 GGUF equals that file.
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "gemma3/config.hpp"
#include "gemma3/error.hpp"
#include "gemma3/io/gguf.hpp"
#include "gemma3/tokenizer/spm_model.hpp"

namespace gemma3::inline GEMMA3_MODE::gguf {

// The score llama.cpp's converter gives every added token (and its [PAD] fillers get -10000).
inline constexpr float kAddedTokenScore = -1000.0f;
inline constexpr float kPaddingTokenScore = -10000.0f;

// True if the file carries a tokenizer (tokenizer.ggml.model).
inline bool has_tokenizer(const File& f) {
  return f.type_of("tokenizer.ggml.model").has_value();
}

namespace detail {
inline void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (s.find(from) == std::string::npos) return;
  std::string out;  // (built anew: GCC 12 warns falsely, -Wrestrict, on std::string::replace)
  for (std::size_t i = 0; i < s.size();)
    if (s.compare(i, from.size(), from) == 0)
      out.append(to), i += from.size();
    else
      out += s[i++];
  s = std::move(out);
}
inline constexpr std::string_view kSpaceMark = "\xe2\x96\x81";  // U+2581, SentencePiece's space

// convert_hf_to_gguf.py, ModelBase.does_token_look_special: added tokens some models forget to mark
// special (deepseek-coder, gemma).
inline bool looks_special(std::string_view t) {
  auto starts = [&](std::string_view p) { return t.substr(0, p.size()) == p; };
  auto ends = [&](std::string_view s) {
    return t.size() >= s.size() && t.substr(t.size() - s.size()) == s;
  };
  return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" ||
         (starts("<|") && ends("|>")) ||
         (starts("<\xef\xbd\x9c") && ends("\xef\xbd\x9c>")) ||  // <｜...｜>, deepseek-coder
         (starts("<unused") && ends(">"));
}
}  // namespace detail

// The SentencePiece model a GGUF's tokenizer.ggml.* metadata describes (see the top). Errors are
// FormatErrors naming the file and the key.
inline spm::ModelProto sentencepiece_model(const File& f) {
  const std::string where = f.path().string();
  const auto& md = f.metadata();
  if (!has_tokenizer(f))
    throw FormatError(
        where, "has no tokenizer (no tokenizer.ggml.model metadata); give a tokenizer.model");
  const auto model = md.find("tokenizer.ggml.model");
  if (model == md.end() || !model->is_string() || model->get<std::string>() != "llama")
    throw FormatError(where, "tokenizer.ggml.model is " +
                                 (model == md.end() ? "a long array" : model->dump()) +
                                 "; only \"llama\" (SentencePiece) tokenizers are read");
  const auto tokens = f.string_array("tokenizer.ggml.tokens");
  const auto scores = f.f32_array("tokenizer.ggml.scores");
  const auto types = f.i32_array("tokenizer.ggml.token_type");
  const std::size_t n = tokens.size();
  if (n == 0 || n > std::size_t(INT32_MAX))
    throw FormatError(where, "tokenizer.ggml.tokens has " + std::to_string(n) + " tokens");
  if (scores.size() != n || types.size() != n)
    throw FormatError(where, "tokenizer.ggml.tokens has " + std::to_string(n) +
                                 " entries but tokenizer.ggml.scores " +
                                 std::to_string(scores.size()) + " and tokenizer.ggml.token_type " +
                                 std::to_string(types.size()));

  // A special token id, if the file gives one; it must name a token.
  auto id_of_key = [&](const std::string& key) -> std::optional<int32_t> {
    const auto it = md.find(key);
    if (it == md.end() || it->is_null()) return std::nullopt;
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() >= int64_t(n))
      throw FormatError(where, key + " is " + it->dump() + ", not one of the " + std::to_string(n) +
                                   " token ids");
    return int32_t(it->get<int64_t>());
  };
  auto id_of_piece = [&](std::string_view piece) -> std::optional<int32_t> {
    const auto it = std::find(tokens.begin(), tokens.end(), piece);
    if (it == tokens.end()) return std::nullopt;
    return int32_t(it - tokens.begin());
  };
  for (std::size_t i = 0; i < n; ++i)
    if (types[i] < 1 || types[i] > 6)
      throw FormatError(where, "tokenizer.ggml.token_type[" + std::to_string(i) + "] is " +
                                   std::to_string(types[i]) +
                                   ", not a token type (1 NORMAL ... 6 BYTE)");

  // SentencePiece needs exactly one unknown piece: the file's unknown_token_id, else its UNKNOWN
  // token, else SentencePiece's default name for it.
  std::optional<int32_t> unk = id_of_key("tokenizer.ggml.unknown_token_id");
  if (!unk)
    if (const auto it = std::find(types.begin(), types.end(), int32_t(spm::PieceType::Unknown));
        it != types.end())
      unk = int32_t(it - types.begin());
  if (!unk) unk = id_of_piece("<unk>");
  if (!unk)
    throw FormatError(where,
                      "has no unknown token (no tokenizer.ggml.unknown_token_id, no token of "
                      "type UNKNOWN, no '<unk>'), which a SentencePiece model needs");
  auto either = [](std::optional<int32_t> a, std::optional<int32_t> b) { return a ? a : b; };
  const auto bos = either(id_of_key("tokenizer.ggml.bos_token_id"), id_of_piece("<bos>"));
  const auto pad = either(id_of_key("tokenizer.ggml.padding_token_id"), id_of_piece("<pad>"));
  const auto eos = either(id_of_piece("<eos>"), id_of_key("tokenizer.ggml.eos_token_id"));

  spm::ModelProto m;
  m.pieces.reserve(n);
  bool has_bytes = false;
  for (std::size_t i = 0; i < n; ++i) {
    const auto id = int32_t(i);
    const auto gguf_type = static_cast<spm::PieceType>(types[i]);
    spm::Piece p{tokens[i], scores[i], gguf_type};
    if (id == *unk)
      p.type = spm::PieceType::Unknown;
    else if (gguf_type == spm::PieceType::Control && id != bos && id != eos && id != pad)
      p.type = spm::PieceType::UserDefined;
    if (p.type == spm::PieceType::UserDefined)
      detail::replace_all(p.piece, " ", detail::kSpaceMark);
    const bool added = gguf_type == spm::PieceType::Control ||
                       gguf_type == spm::PieceType::UserDefined ||
                       gguf_type == spm::PieceType::Unknown;
    if (added && p.score == kAddedTokenScore) p.score = 0;
    has_bytes |= p.type == spm::PieceType::Byte;
    m.pieces.push_back(std::move(p));
  }

  spm::TrainerSpec& t = m.trainer_spec;
  t.model_type = spm::TrainerSpec::ModelType::Bpe;
  t.vocab_size = int32_t(n);
  t.split_digits = true;  // Gemma 3's training settings (see the top)
  t.allow_whitespace_only_pieces = true;
  t.byte_fallback = has_bytes;
  t.unk_id = *unk;
  t.unk_piece = m.pieces[std::size_t(*unk)].piece;
  auto special = [&](const std::optional<int32_t>& id, int32_t& id_field, std::string& piece) {
    id_field = id ? *id : -1;
    if (id) piece = m.pieces[std::size_t(*id)].piece;
  };
  special(bos, t.bos_id, t.bos_piece);
  special(eos, t.eos_id, t.eos_piece);
  special(pad, t.pad_id, t.pad_piece);

  spm::NormalizerSpec& ns = m.normalizer_spec;
  auto flag = [&](const std::string& key, bool fallback) {
    const auto it = md.find(key);
    if (it == md.end()) return fallback;
    if (!it->is_boolean()) throw FormatError(where, key + " is " + it->dump() + ", not a bool");
    return it->get<bool>();
  };
  ns.name = "identity";
  ns.precompiled_charsmap = "";
  // llama.cpp's defaults for a SentencePiece vocabulary when the keys are absent.
  ns.add_dummy_prefix = flag("tokenizer.ggml.add_space_prefix", true);
  ns.remove_extra_whitespaces = flag("tokenizer.ggml.remove_extra_whitespaces", false);
  ns.escape_whitespaces = true;
  return m;
}

// What a GGUF keeps of tokenizer_config.json: the chat template and the add_<special>_token flags,
// as the JSON they came from (for writing the tokenizer of one GGUF into another). The added
// tokens' types are in the model sentencepiece_model() rebuilds.
inline nlohmann::json tokenizer_config(const File& f) {
  nlohmann::json config = nlohmann::json::object();
  const auto& md = f.metadata();
  if (const auto it = md.find("tokenizer.chat_template"); it != md.end() && it->is_string())
    config["chat_template"] = *it;
  for (const char* name : {"add_bos_token", "add_sep_token", "add_eos_token"})
    if (const auto it = md.find(std::string("tokenizer.ggml.") + name);
        it != md.end() && it->is_boolean())
      config[name] = *it;
  return config;
}

// tokenizer.ggml.tokens, scores and token_type as llama.cpp's converter makes them from a
// tokenizer.model and tokenizer_config.json (TextModel._create_vocab_sentencepiece).
struct LlamaCppVocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> token_types;
};

// `vocab_size` is the model's (config.json's): the converter keeps the first vocab_size pieces and
// fills ids past the tokenizer with "[PAD<id>]" UNUSED tokens. `tokenizer_config` is the HF
// tokenizer_config.json (null if there is none); its added_tokens_decoder decides the added
// tokens' types. Without one, the added tokens are taken to be what HF's GemmaConverter makes of a
// tokenizer.model: every CONTROL, UNKNOWN and USER_DEFINED piece, special when CONTROL or UNKNOWN,
// and Gemma 3's <image_soft_token> right after the SentencePiece vocabulary. (llama.cpp's
// converter, with no tokenizer_config.json, would write USER_DEFINED pieces as NORMAL: then neither
// llama.cpp nor a reader could tell <start_of_turn> from text.)
inline LlamaCppVocab llama_cpp_vocab(const spm::ModelProto& m,
                                     const nlohmann::json& tokenizer_config, int64_t vocab_size,
                                     const std::string& where = "tokenizer") {
  if (vocab_size <= 0 || vocab_size > INT32_MAX)
    throw InvalidArgument("vocab_size", std::to_string(vocab_size));
  const auto n = std::size_t(vocab_size);
  LlamaCppVocab v;
  v.tokens.resize(n);
  v.scores.assign(n, kPaddingTokenScore);
  v.token_types.assign(n, int32_t(spm::PieceType::Unused));
  for (std::size_t i = 0; i < n; ++i) {
    if (i >= m.pieces.size()) {
      v.tokens[i] = "[PAD" + std::to_string(i) + "]";
      continue;
    }
    const auto& p = m.pieces[i];
    v.tokens[i] = p.piece;
    v.scores[i] = p.score;
    // SentencePieceProcessor's IsUnknown / IsControl / IsUnused / IsByte, in the converter's order;
    // it has no IsUserDefined, so USER_DEFINED pieces are NORMAL until an added token says else.
    const spm::PieceType t =
        p.type == spm::PieceType::UserDefined ? spm::PieceType::Normal : p.type;
    v.token_types[i] = int32_t(t);
  }

  // added_tokens_decoder: {"<id>": {"content": ..., "special": ...}, ...}.
  nlohmann::json added = nlohmann::json::object();
  if (tokenizer_config.is_object() && tokenizer_config.contains("added_tokens_decoder")) {
    added = tokenizer_config["added_tokens_decoder"];
    if (!added.is_object())
      throw FormatError(where, "tokenizer_config.json: added_tokens_decoder is not an object");
  } else {
    for (std::size_t i = 0; i < m.pieces.size(); ++i) {
      const auto t = m.pieces[i].type;
      if (t == spm::PieceType::Control || t == spm::PieceType::Unknown ||
          t == spm::PieceType::UserDefined)
        added[std::to_string(i)] = {{"content", m.pieces[i].piece},
                                    {"special", t != spm::PieceType::UserDefined}};
    }
    added[std::to_string(m.pieces.size())] = {{"content", "<image_soft_token>"}, {"special", true}};
  }
  for (const auto& [key, token] : added.items()) {
    std::size_t id = 0;
    try {
      std::size_t used = 0;
      id = std::stoul(key, &used);
      if (used != key.size()) throw std::invalid_argument(key);
    } catch (const std::exception&) {
      throw FormatError(
          where, "tokenizer_config.json: added_tokens_decoder key '" + key + "' is not a token id");
    }
    if (!token.is_object() || !token.contains("content") || !token["content"].is_string())
      throw FormatError(where, "tokenizer_config.json: added_tokens_decoder[" + key +
                                   "] has no string \"content\"");
    if (id >= n) continue;  // the converter ignores ids past vocab_size
    std::string content = token["content"];
    const bool special = (token.contains("special") && token["special"].is_boolean() &&
                          token["special"].get<bool>()) ||
                         detail::looks_special(content);
    if (!special) detail::replace_all(content, detail::kSpaceMark, " ");
    v.tokens[id] = std::move(content);
    v.scores[id] = kAddedTokenScore;
    v.token_types[id] = int32_t(special ? spm::PieceType::Control : spm::PieceType::UserDefined);
  }
  return v;
}

// Writes the tokenizer.* keys of a gemma3 GGUF: the special ids of `t` always, and with a
// tokenizer.model (`model`, may be null) its vocabulary, flags and chat template as llama.cpp's
// converter writes them. The eos id is config.json's first (<eos>); a second one (<end_of_turn> for
// Gemma 3) is written as eot_token_id, which llama.cpp also counts as the end of generation.
inline void write_tokenizer_metadata(Writer& out, const TextConfig& t, const spm::ModelProto* model,
                                     const nlohmann::json& tokenizer_config = nullptr) {
  if (model) {
    const LlamaCppVocab v = llama_cpp_vocab(*model, tokenizer_config, t.vocab_size);
    out.set("tokenizer.ggml.model", ValueType::String, "llama");
    out.set("tokenizer.ggml.pre", ValueType::String, "default");
    out.set_array("tokenizer.ggml.tokens", ValueType::String, v.tokens);
    out.set_array("tokenizer.ggml.scores", ValueType::F32, v.scores);
    out.set_array("tokenizer.ggml.token_type", ValueType::I32, v.token_types);
  }
  out.set("tokenizer.ggml.bos_token_id", ValueType::U32, t.bos_token_id);
  out.set("tokenizer.ggml.eos_token_id", ValueType::U32, t.eos_token_ids.at(0));
  if (model && model->trainer_spec.unk_id >= 0 && model->trainer_spec.unk_id < t.vocab_size)
    out.set("tokenizer.ggml.unknown_token_id", ValueType::U32, model->trainer_spec.unk_id);
  out.set("tokenizer.ggml.padding_token_id", ValueType::U32, t.pad_token_id);
  if (t.eos_token_ids.size() > 1)
    out.set("tokenizer.ggml.eot_token_id", ValueType::U32, t.eos_token_ids[1]);
  if (!model) return;
  // tokenizer_config.json's add_<special>_token flags; Gemma 3's (add <bos>, not <eos>) without
  // one.
  auto config_flag = [&](const std::string& name) -> std::optional<bool> {
    if (!tokenizer_config.is_object() || !tokenizer_config.contains(name) ||
        !tokenizer_config[name].is_boolean())
      return std::nullopt;
    return tokenizer_config[name].get<bool>();
  };
  out.set("tokenizer.ggml.add_bos_token", ValueType::Bool,
          config_flag("add_bos_token").value_or(true));
  if (const auto sep = config_flag("add_sep_token"))
    out.set("tokenizer.ggml.add_sep_token", ValueType::Bool, *sep);
  out.set("tokenizer.ggml.add_eos_token", ValueType::Bool,
          config_flag("add_eos_token").value_or(false));
  if (tokenizer_config.is_object() && tokenizer_config.contains("chat_template") &&
      tokenizer_config["chat_template"].is_string())
    out.set("tokenizer.chat_template", ValueType::String, tokenizer_config["chat_template"]);
  // Gemma3Model.set_vocab: Gemma 3 never prepends a space, whatever the tokenizer.model says.
  out.set("tokenizer.ggml.add_space_prefix", ValueType::Bool, false);
}

}  // namespace gemma3::inline GEMMA3_MODE::gguf
