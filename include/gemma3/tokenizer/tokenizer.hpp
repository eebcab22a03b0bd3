// gemma3::Tokenizer — Gemma 3's SentencePiece BPE vocabulary (262144 pieces, byte fallback) over
// libsentencepiece, with the two encode modes users compare against:
//
//   * SentencePiece (default), what Google's own code does (gemma.cpp, gemma_pytorch, JAX): control
//     pieces written inside text (`<bos>`, `<eos>`, `<pad>`, `<unk>`) are plain text.
//   * Hugging Face (`parse_special = true`), what transformers' tokenizer does: every added token
//     (all non-NORMAL, non-byte pieces plus `<image_soft_token>`) is split out of the raw text
//     first, leftmost-longest, and the text between is encoded by the BPE model. This also makes a
//     literal run of U+2581 an added token before a neighbouring space is escaped
//     (docs/tokenizer.md).
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <sentencepiece_processor.h>

#include "gemma3/error.hpp"
#include "gemma3/io/files.hpp"
#include "gemma3/tokenizer/spm_model.hpp"
#include "gemma3/tokenizer/utf8.hpp"

namespace gemma3::inline GEMMA3_MODE {

struct EncodeOptions {
  bool add_bos = false;        // prepend <bos> (HF's add_special_tokens adds it, never <eos>)
  bool parse_special = false;  // Hugging Face mode: split added tokens out of the raw text first
};

class Tokenizer {
 public:
  // The piece HF appends after the SentencePiece vocabulary for image placeholders
  // (docs/model.md, Sizes).
  static constexpr std::string_view kImageSoftTokenPiece = "<image_soft_token>";

  // A tokenizer.model file.
  explicit Tokenizer(const std::filesystem::path& model_path) : path_(model_path.string()) {
    if (!std::filesystem::exists(model_path))
      throw IoError(path_, "tokenizer model not found (run scripts/get_tokenizer.sh to build one)");
    check_regular_file(model_path);  // a FIFO or a directory is refused here, without blocking
    sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto status = sp_->Load(path_);
    if (!status.ok()) throw FormatError(path_, "not a SentencePiece model: " + status.ToString());
    init();
  }

  // A serialized ModelProto: a tokenizer.model's bytes, or one rebuilt from elsewhere (a GGUF's
  // tokenizer.ggml.* metadata: io/gguf_tokenizer.hpp). `source` names it in errors and path().
  static Tokenizer from_serialized_proto(std::string_view proto, std::string source) {
    Tokenizer t(FromProto{}, std::move(source));
    t.sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto status = t.sp_->LoadFromSerializedProto(proto);
    if (!status.ok()) throw FormatError(t.path_, "not a SentencePiece model: " + status.ToString());
    t.init();
    return t;
  }

  // ids 0 .. vocab_size()-1 are SentencePiece pieces; image_soft_token() == vocab_size() is HF's
  // extra.
  int32_t vocab_size() const { return sp_->GetPieceSize(); }
  const std::string& path() const { return path_; }

  int32_t pad() const { return pad_; }
  int32_t eos() const { return eos_; }
  int32_t bos() const { return bos_; }
  int32_t unk() const { return unk_; }
  int32_t start_of_turn() const { return start_of_turn_; }
  int32_t end_of_turn() const { return end_of_turn_; }
  int32_t start_of_image() const { return start_of_image_; }
  int32_t end_of_image() const { return end_of_image_; }
  // The image placeholder: a piece of that name if the model has one, else the id right after the
  // SentencePiece vocabulary, where transformers adds it (262144 for Gemma 3).
  int32_t image_soft_token() const {
    const int id = sp_->PieceToId(std::string(kImageSoftTokenPiece));
    return id != sp_->unk_id() ? id : vocab_size();
  }

  // The id of a piece by name; throws if the model has no such piece.
  int32_t id_of(std::string_view piece) const {
    if (piece == kImageSoftTokenPiece) return image_soft_token();
    const int id = sp_->PieceToId(std::string(piece));
    if (id == sp_->unk_id() && piece != sp_->IdToPiece(id))
      throw InvalidArgument("piece", "'" + std::string(piece) + "' is not a piece of " + path_);
    return id;
  }
  std::string piece(int32_t id) const {
    check_id(id);
    if (id == vocab_size()) return std::string(kImageSoftTokenPiece);
    return sp_->IdToPiece(id);
  }
  // Control, unknown and user-defined pieces (and the image placeholder): HF's "added tokens".
  bool is_added_token(int32_t id) const {
    return id == vocab_size() || sp_->IsControl(id) || sp_->IsUnknown(id) || is_user_defined(id);
  }
  bool is_user_defined(int32_t id) const {
    return id >= 0 && id < vocab_size() && types_[id] == spm::PieceType::UserDefined;
  }
  bool is_control(int32_t id) const {
    return id == vocab_size() || sp_->IsControl(id) || sp_->IsUnknown(id);
  }

  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& opt = {}) const {
    if (const auto bad = find_invalid_utf8(text); bad != std::string_view::npos)
      throw InvalidArgument("text", "invalid UTF-8 at byte " + std::to_string(bad));
    std::vector<int32_t> ids;
    if (opt.add_bos) ids.push_back(bos_);
    if (!opt.parse_special) {
      append_sp(text, ids);
      return ids;
    }
    // HF: leftmost-longest added-token matches split the text; the rest goes through BPE.
    std::size_t start = 0, i = 0;
    while (i < text.size()) {
      const auto [len, id] = longest_added_token(text, i);
      if (len == 0) {
        ++i;
        continue;
      }
      append_sp(text.substr(start, i - start), ids);
      ids.push_back(id);
      i += len;
      start = i;
    }
    append_sp(text.substr(start), ids);
    return ids;
  }

  // Text of `ids`, as HF's decode(skip_special_tokens=false): control and unknown pieces appear as
  // their names; everything else as SentencePiece decodes it (▁ → space, byte pieces → bytes).
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const {
    std::string out;
    std::vector<int> run;
    auto flush = [&] {
      if (run.empty()) return;
      std::string s;
      sp_->Decode(run, &s);
      out += s;
      run.clear();
    };
    for (const int32_t id : ids) {
      check_id(id);
      if (is_control(id)) {
        flush();
        if (!skip_special) out += piece(id);
      } else {
        run.push_back(id);
      }
    }
    flush();
    return out;
  }

  // Throws unless 0 <= id <= vocab_size() (the last being the image placeholder).
  void check_id(int32_t id) const {
    if (id < 0 || id > vocab_size())
      throw InvalidArgument("id", "token id " + std::to_string(id) +
                                      " is outside the tokenizer's [0, " +
                                      std::to_string(vocab_size()) + "]");
  }

  const sentencepiece::SentencePieceProcessor& processor() const { return *sp_; }

 private:
  struct FromProto {};
  Tokenizer(FromProto, std::string source) : path_(std::move(source)) {}

  // Everything after libsentencepiece has loaded the model: piece types and the special ids.
  void init() {
    // libsentencepiece 0.1.97 exposes IsControl/IsUnknown/IsByte but not IsUserDefined, so the
    // types are read from the proto itself.
    types_ = spm::piece_types(sp_->serialized_model_proto(), path_);
    if (static_cast<int>(types_.size()) != sp_->GetPieceSize())
      throw FormatError(path_, "piece count mismatch");
    build_added_tokens();
    pad_ = required_id("<pad>");
    eos_ = required_id("<eos>");
    bos_ = required_id("<bos>");
    unk_ = required_id("<unk>");
    start_of_turn_ = required_id("<start_of_turn>");
    end_of_turn_ = required_id("<end_of_turn>");
    start_of_image_ = required_id("<start_of_image>");
    end_of_image_ = required_id("<end_of_image>");
  }

  int32_t required_id(const std::string& piece) const {
    const int id = sp_->PieceToId(piece);
    if (sp_->IdToPiece(id) != piece)
      throw FormatError(path_, "has no '" + piece + "' piece: not a Gemma 3 tokenizer");
    return id;
  }

  void append_sp(std::string_view text, std::vector<int32_t>& ids) const {
    if (text.empty()) return;
    std::vector<int> piece_ids;
    const auto status = sp_->Encode(text, &piece_ids);
    if (!status.ok())
      throw InvalidArgument("text", "SentencePiece cannot encode it: " + status.ToString());
    ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
  }

  // A byte trie of the added tokens, for leftmost-longest matching.
  struct TrieNode {
    std::vector<std::pair<unsigned char, int32_t>> children;  // sorted by byte
    int32_t id = -1;                                          // token ending here
  };
  void build_added_tokens() {
    trie_.assign(1, TrieNode{});
    auto insert = [&](const std::string& s, int32_t id) {
      int32_t node = 0;
      for (unsigned char c : s) {
        auto& ch = trie_[node].children;
        auto it = std::lower_bound(ch.begin(), ch.end(), c,
                                   [](const auto& p, unsigned char b) { return p.first < b; });
        if (it == ch.end() || it->first != c) {
          const auto next = static_cast<int32_t>(trie_.size());
          it = ch.insert(it, {c, next});
          trie_.emplace_back();
        }
        node = it->second;
      }
      trie_[node].id = id;
    };
    for (int32_t id = 0; id < vocab_size(); ++id)
      if (is_added_token(id)) insert(sp_->IdToPiece(id), id);
    insert(std::string(kImageSoftTokenPiece), image_soft_token());
  }
  std::pair<std::size_t, int32_t> longest_added_token(std::string_view text,
                                                      std::size_t pos) const {
    std::size_t best_len = 0;
    int32_t best_id = -1;
    int32_t node = 0;
    for (std::size_t i = pos; i < text.size(); ++i) {
      const auto c = static_cast<unsigned char>(text[i]);
      const auto& ch = trie_[node].children;
      auto it = std::lower_bound(ch.begin(), ch.end(), c,
                                 [](const auto& p, unsigned char b) { return p.first < b; });
      if (it == ch.end() || it->first != c) break;
      node = it->second;
      if (trie_[node].id >= 0) best_len = i - pos + 1, best_id = trie_[node].id;
    }
    return {best_len, best_id};
  }

  std::string path_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::vector<spm::PieceType> types_;  // per piece
  std::vector<TrieNode> trie_;
  int32_t pad_ = -1, eos_ = -1, bos_ = -1, unk_ = -1, start_of_turn_ = -1, end_of_turn_ = -1,
          start_of_image_ = -1, end_of_image_ = -1;
};

// Decodes a token stream for printing as it is generated: byte-fallback pieces are held back until
// they complete a UTF-8 sequence, so every returned chunk is valid UTF-8 on its own.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(&tok) {}

  // The text that token `id` completes (possibly empty). Control tokens print nothing.
  std::string push(int32_t id) {
    tok_->check_id(id);
    if (tok_->is_control(id)) return flush_invalid();
    const auto& sp = tok_->processor();
    std::string out;
    if (sp.IsByte(id)) {
      pending_ += static_cast<char>(std::stoi(sp.IdToPiece(id).substr(3, 2), nullptr, 16));
    } else {
      out = flush_invalid();
      std::string text = sp.IdToPiece(id);
      replace_all(text, "\xe2\x96\x81", " ");  // ▁ is a space
      out += text;
      return out;
    }
    // Emit every complete sequence; keep an unfinished one for later; replace broken bytes.
    while (!pending_.empty()) {
      const std::size_t bad = find_invalid_utf8(pending_);
      if (bad == std::string::npos) {
        out += pending_;
        pending_.clear();
        break;
      }
      out += pending_.substr(0, bad);
      pending_.erase(0, bad);
      if (could_complete(pending_)) break;
      out += "\xef\xbf\xbd";  // U+FFFD, as SentencePiece decodes a broken byte
      pending_.erase(0, 1);
    }
    return out;
  }
  // Whatever is still held back at the end of a stream (an incomplete sequence becomes U+FFFD).
  std::string finish() { return flush_invalid(); }

 private:
  static void replace_all(std::string& s, const std::string& from, const std::string& to) {
    for (std::size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
      s.replace(p, from.size(), to);
  }
  // True if `tail` is the start of a valid multi-byte sequence that more bytes could finish.
  static bool could_complete(std::string_view tail) {
    const auto c = static_cast<unsigned char>(tail[0]);
    const std::size_t len = (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (len == 0 || tail.size() >= len) return false;
    for (std::size_t k = 1; k < tail.size(); ++k)
      if ((static_cast<unsigned char>(tail[k]) & 0xc0) != 0x80) return false;
    return true;
  }
  std::string flush_invalid() {
    if (pending_.empty()) return {};
    pending_.clear();
    return "\xef\xbf\xbd";
  }

  const Tokenizer* tok_;
  std::string pending_;
};

}  // namespace gemma3::inline GEMMA3_MODE
