// Fuzz target: the tokenizer on arbitrary bytes — encode in both modes (SentencePiece, and Hugging
// Face's parse_special that splits added tokens out first), decode, and streaming decode — plus
// decode of arbitrary token ids.
//
// Input: one flag byte, then the text (bit 0: add <bos>; bit 1: also read the text as little-endian
// int32 token ids and decode those). Needs the Gemma 3 tokenizer.model: $GEMMA3_TOKENIZER, or the
// path CMake compiled in. Oracles: invalid UTF-8 is an InvalidArgument, anything else encodes;
// every id is in range; in SentencePiece mode decode(encode(text)) == text for text without U+2581
// (the Gemma vocabulary has byte fallback and no normaliser); streaming decode equals decode
// (without control tokens); arbitrary ids decode or throw a gemma3::Error.
#include <cstring>
#include <memory>

#include <gemma3/tokenizer/tokenizer.hpp>

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
  const gemma3::Tokenizer& tok = *tokenizer;
  const bool add_bos = data[0] & 1;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const bool valid = gemma3::find_invalid_utf8(text) == std::string_view::npos;
  for (const bool parse_special : {false, true}) {
    std::vector<int32_t> ids;
    try {
      ids = tok.encode(text, {.add_bos = add_bos, .parse_special = parse_special});
    } catch (const gemma3::InvalidArgument&) {
      FUZZ_CHECK(!valid, "valid UTF-8 refused");
      continue;
    }
    FUZZ_CHECK(valid, "invalid UTF-8 accepted");
    for (const int32_t id : ids) FUZZ_CHECK(id >= 0 && id <= tok.vocab_size(), std::to_string(id));
    FUZZ_CHECK(!add_bos || (!ids.empty() && ids[0] == tok.bos()), "no <bos>");
    const std::vector<int32_t> body(ids.begin() + (add_bos ? 1 : 0), ids.end());
    const std::string decoded = tok.decode(body);
    // (SentencePiece writes spaces as U+2581 and decodes every U+2581 as a space, so a literal one
    // does not come back.)
    if (!parse_special && text.find("\xe2\x96\x81") == std::string_view::npos)
      FUZZ_CHECK(decoded == text, "decode(encode(text)) != text: '" + decoded + "'");
    gemma3::StreamDecoder stream(tok);
    std::string streamed;
    for (const int32_t id : body) streamed += stream.push(id);
    streamed += stream.finish();
    // The stream prints no control tokens: compare with decode(skip_special).
    const std::string plain = parse_special ? tok.decode(body, /*skip_special=*/true) : decoded;
    FUZZ_CHECK(streamed == plain, "streamed '" + streamed + "' != decoded '" + plain + "'");
  }
  if (data[0] & 2) {
    std::vector<int32_t> ids(text.size() / 4);
    if (!ids.empty()) std::memcpy(ids.data(), text.data(), ids.size() * 4);
    try {
      fuzz::sink(tok.decode(ids).size());
      fuzz::sink(tok.decode(ids, /*skip_special=*/true).size());
      gemma3::StreamDecoder stream(tok);
      std::string streamed;
      for (const int32_t id : ids) streamed += stream.push(id);
      streamed += stream.finish();
      FUZZ_CHECK(gemma3::find_invalid_utf8(streamed) == std::string_view::npos,
                 "streamed invalid UTF-8");
    } catch (const gemma3::Error&) {
    }
  }
  return 0;
}
