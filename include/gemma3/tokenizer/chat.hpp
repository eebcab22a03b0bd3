// The Gemma 3 instruction-tuned chat format: a Conversation of turns rendered exactly as the
// official Jinja template in tokenizer_config.json does, and to token ids with each image
// placeholder expanded as the HF processor does (transformers 4.51.3 processing_gemma3.py,
// Gemma3Processor.full_image_sequence; docs/model.md, Projector and merge):
//   "\n\n" <start_of_image> <image_soft_token> × mm_tokens_per_image <end_of_image> "\n\n"
#pragma once

#include "gemma3/build_mode.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gemma3/error.hpp"
#include "gemma3/tokenizer/tokenizer.hpp"

namespace gemma3::inline GEMMA3_MODE {

// One item of a message's content: text, or an image placeholder (the pixels travel separately).
struct ContentPart {
  enum class Kind { Text, Image } kind = Kind::Text;
  std::string text;
  int64_t crops = 0;  // an image's pan & scan crops (each enters the prompt as one more image)

  static ContentPart Text(std::string t) { return {Kind::Text, std::move(t), 0}; }
  static ContentPart Image(int64_t crops = 0) { return {Kind::Image, {}, crops}; }
};

struct Message {
  std::string role;  // "system", "user", "assistant" (rendered "model") or "model"
  std::vector<ContentPart> content;
  bool content_is_string = true;  // a plain string content (the template trims it the same way)
};

namespace detail {
// Python's str.strip() with no argument, which Jinja's `trim` filter calls: removes leading and
// trailing characters for which str.isspace() is true (ASCII and Unicode whitespace).
inline bool is_python_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202f || cp == 0x205f || cp == 0x3000;
}
// Decodes the code point at s[i] (valid UTF-8 assumed), returning it and its length.
inline std::pair<uint32_t, std::size_t> utf8_at(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  const std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : 4;
  uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
  for (std::size_t k = 1; k < len && i + k < s.size(); ++k) cp = (cp << 6) | (s[i + k] & 0x3f);
  return {cp, len};
}
inline std::string python_strip(std::string_view s) {
  if (const auto bad = find_invalid_utf8(s); bad != std::string_view::npos)
    throw InvalidArgument("message", "invalid UTF-8 at byte " + std::to_string(bad));
  std::size_t begin = 0, end = s.size();
  while (begin < end) {
    const auto [cp, len] = utf8_at(s, begin);
    if (!is_python_space(cp)) break;
    begin += len;
  }
  while (end > begin) {
    std::size_t start = end - 1;
    while (start > begin && (static_cast<unsigned char>(s[start]) & 0xc0) == 0x80) --start;
    if (!is_python_space(utf8_at(s, start).first)) break;
    end = start;
  }
  return std::string(s.substr(begin, end - begin));
}
}  // namespace detail

class Conversation {
 public:
  Conversation& add(Message m) {
    messages_.push_back(std::move(m));
    return *this;
  }
  Conversation& system(std::string text) {
    return add({"system", {ContentPart::Text(std::move(text))}, true});
  }
  Conversation& user(std::string text) {
    return add({"user", {ContentPart::Text(std::move(text))}, true});
  }
  Conversation& user(std::vector<ContentPart> parts) {
    return add({"user", std::move(parts), false});
  }
  Conversation& model(std::string text) {
    return add({"assistant", {ContentPart::Text(std::move(text))}, true});
  }

  const std::vector<Message>& messages() const { return messages_; }
  // Images in the prompt, pan & scan crops included: how many soft-token runs render_ids emits.
  int64_t num_images() const {
    int64_t n = 0;
    for (const auto& m : messages_)
      for (const auto& p : m.content) n += p.kind == ContentPart::Kind::Image ? 1 + p.crops : 0;
    return n;
  }

  // The text the official template renders: "<bos><start_of_turn>user\n...". Images appear as one
  // "<start_of_image>" each, as in the template (the processor expands them later).
  std::string render(bool add_generation_prompt = true) const {
    std::string out;
    for (const auto& seg : segments(add_generation_prompt)) out += seg.text;
    return out;
  }

  // Token ids of the rendered conversation with every image expanded to mm_tokens_per_image soft
  // tokens. Template markers become their ids directly; the text between them (the user's text
  // included) is encoded by SentencePiece, so a literal "<bos>" typed by a user stays text unless
  // `parse_special` asks for Hugging Face's behaviour. Adjacent text is encoded as one string, so
  // newline runs merge across the image's "\n\n" exactly as HF tokenizes the expanded prompt.
  //
  // With `from_message` > 0 only the tokens of messages [from_message, ...) (and the generation
  // prompt) are rendered, without <bos>: what a chat session appends to a cache holding the rest.
  std::vector<int32_t> render_ids(const Tokenizer& tok, int64_t mm_tokens_per_image = 256,
                                  bool add_generation_prompt = true, bool parse_special = false,
                                  std::size_t from_message = 0) const {
    std::vector<int32_t> ids;
    std::string text;
    auto flush = [&] {
      const auto enc = tok.encode(text, {.add_bos = false, .parse_special = parse_special});
      ids.insert(ids.end(), enc.begin(), enc.end());
      text.clear();
    };
    for (const auto& seg : segments(add_generation_prompt, from_message)) {
      if (seg.marker == Marker::None) {
        text += seg.text;
        continue;
      }
      if (seg.marker == Marker::Image) {
        // The processor's full image sequence (transformers 4.51.3 processing_gemma3.py,
        // Gemma3Processor.full_image_sequence).
        auto image_sequence = [&] {
          text += "\n\n";
          flush();
          ids.push_back(tok.start_of_image());
          ids.insert(ids.end(), std::size_t(mm_tokens_per_image), tok.image_soft_token());
          ids.push_back(tok.end_of_image());
          text += "\n\n";
        };
        if (seg.crops == 0) {
          image_sequence();
          continue;
        }
        // Pan & scan: the <start_of_image> is replaced by this sentence (transformers 4.51.3
        // processing_gemma3.py, Gemma3Processor.__call__).
        text += "Here is the original image ";
        image_sequence();
        text += " and here are some crops to help you see better ";
        for (int64_t c = 0; c < seg.crops; ++c) {
          if (c > 0) text += " ";
          image_sequence();
        }
        continue;
      }
      flush();
      ids.push_back(seg.marker == Marker::Bos           ? tok.bos()
                    : seg.marker == Marker::StartOfTurn ? tok.start_of_turn()
                                                        : tok.end_of_turn());
    }
    flush();
    return ids;
  }

 private:
  enum class Marker { None, Bos, StartOfTurn, EndOfTurn, Image };
  struct Segment {
    Marker marker;
    std::string text;
    int64_t crops = 0;
  };

  // The template, statement by statement (tokenizer_config.json chat_template of
  // google/gemma-3-*-it).
  std::vector<Segment> segments(bool add_generation_prompt, std::size_t from_message = 0) const {
    std::vector<Segment> out;
    if (from_message == 0) out.push_back({Marker::Bos, "<bos>"});
    std::string first_user_prefix;
    std::size_t first = 0;
    if (!messages_.empty() && messages_[0].role == "system") {
      // The system text is not trimmed; a list content contributes its first item's text.
      const auto& c = messages_[0].content;
      first_user_prefix = (c.empty() ? std::string() : c[0].text) + "\n\n";
      first = 1;
    }
    for (std::size_t i = first; i < messages_.size(); ++i) {
      const Message& m = messages_[i];
      const std::size_t index0 = i - first;
      if ((m.role == "user") != (index0 % 2 == 0))
        throw InvalidArgument("conversation",
                              "roles must alternate user/assistant/user/assistant/... (message " +
                                  std::to_string(i) + " has role '" + m.role + "')");
      if (i < from_message) continue;
      const std::string role = m.role == "assistant" ? "model" : m.role;
      out.push_back({Marker::StartOfTurn, "<start_of_turn>"});
      out.push_back({Marker::None, role + "\n" + (index0 == 0 ? first_user_prefix : "")});
      for (const auto& part : m.content) {
        if (part.kind == ContentPart::Kind::Image)
          out.push_back({Marker::Image, "<start_of_image>", part.crops});
        else
          out.push_back({Marker::None, detail::python_strip(part.text)});
      }
      out.push_back({Marker::EndOfTurn, "<end_of_turn>"});
      out.push_back({Marker::None, "\n"});
    }
    if (add_generation_prompt) {
      out.push_back({Marker::StartOfTurn, "<start_of_turn>"});
      out.push_back({Marker::None, "model\n"});
    }
    return out;
  }

  std::vector<Message> messages_;
};

}  // namespace gemma3::inline GEMMA3_MODE
