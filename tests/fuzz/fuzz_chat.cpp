// Fuzz target: chat template rendering — Conversation::render (the official Jinja template's text)
// and render_ids (token ids with images expanded), on conversations built from the input.
//
// Input: a flag byte, then messages separated by 0x1e; each message is a role byte then its
// content, whose parts are separated by 0x1f. A part starting with 0x01 is an image whose pan &
// scan crop count is the next byte % 4; any other part is text (invalid UTF-8 included).
//   flags: bit 0 add_generation_prompt, bit 1 parse_special, bits 2-4 mm_tokens_per_image - 1,
//          bits 5-6 from_message;  role byte % 5: system, user, assistant, model, "tool";
//          role byte & 0x80: list content (else a plain string: its parts are joined).
// Needs the tokenizer (see fuzz_tokenizer.cpp). Oracles: failures are gemma3::Errors; render starts
// with <bos> and ends with the generation prompt when asked; without parse_special, render_ids
// holds exactly num_images() x mm_tokens_per_image image soft tokens.
#include <algorithm>
#include <memory>

#include <gemma3/tokenizer/chat.hpp>

#include "fuzz_common.hpp"

namespace {
std::unique_ptr<gemma3::Tokenizer> tokenizer;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tokenizer = fuzz::load_tokenizer<gemma3::Tokenizer>();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  const bool generation_prompt = flags & 1, parse_special = flags & 2;
  const int64_t mm = 1 + ((flags >> 2) & 7);
  const std::size_t from_message = (flags >> 5) & 3;
  static const char* const roles[] = {"system", "user", "assistant", "model", "tool"};

  gemma3::Conversation conv;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  for (const std::string_view m : fuzz::split(body, "\x1e")) {
    if (m.empty()) continue;
    gemma3::Message msg;
    const auto role = static_cast<uint8_t>(m[0]);
    msg.role = roles[role % 5];
    msg.content_is_string = !(role & 0x80);
    for (const std::string_view part : fuzz::split(m.substr(1), "\x1f")) {
      if (!part.empty() && part[0] == '\x01')
        msg.content.push_back(
            gemma3::ContentPart::Image(part.size() > 1 ? static_cast<uint8_t>(part[1]) % 4 : 0));
      else
        msg.content.push_back(gemma3::ContentPart::Text(std::string(part)));
    }
    conv.add(std::move(msg));
  }
  try {
    const std::string text = conv.render(generation_prompt);
    FUZZ_CHECK(text.rfind("<bos>", 0) == 0, "no <bos>");
    const std::string_view prompt = "<start_of_turn>model\n";
    if (generation_prompt)
      FUZZ_CHECK(text.size() >= prompt.size() &&
                     text.compare(text.size() - prompt.size(), prompt.size(), prompt) == 0,
                 "no generation prompt");
  } catch (const gemma3::Error&) {
  }
  try {
    const auto ids =
        conv.render_ids(*tokenizer, mm, generation_prompt, parse_special, from_message);
    for (const int32_t id : ids)
      FUZZ_CHECK(id >= 0 && id <= tokenizer->vocab_size(), std::to_string(id));
    if (!parse_special) {
      const auto soft = std::count(ids.begin(), ids.end(), tokenizer->image_soft_token());
      int64_t images = 0;
      // A system message contributes only its first part's text (as the official template does).
      const std::size_t first =
          !conv.messages().empty() && conv.messages()[0].role == "system" ? 1 : 0;
      for (std::size_t i = std::max(from_message, first); i < conv.messages().size(); ++i)
        for (const auto& p : conv.messages()[i].content)
          images += p.kind == gemma3::ContentPart::Kind::Image ? 1 + p.crops : 0;
      FUZZ_CHECK(soft == images * mm,
                 std::to_string(soft) + " soft tokens for " + std::to_string(images) + " images");
    }
  } catch (const gemma3::Error&) {
  }
  return 0;
}
