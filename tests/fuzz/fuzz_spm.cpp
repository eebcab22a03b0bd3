// Fuzz target: a SentencePiece tokenizer.model through the library's own ModelProto reader
// (tokenizer/spm_model.hpp), which `gemma3 convert` runs on the tokenizer it embeds in a GGUF.
//
// Input: the bytes of one tokenizer.model. Oracle: reading either succeeds or throws a
// gemma3::Error; what it read serialises, reads back and serialises to the same bytes; and
// piece_types (the tokenizer's reader of the types alone) gives the same types, or throws.
#include <gemma3/tokenizer/spm_model.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  try {
    const auto model = gemma3::spm::parse_model_proto(
        std::string_view(reinterpret_cast<const char*>(data), size), "fuzz input");
    // Compared as bytes: a NaN score is read as it was written, but is not equal to itself.
    const std::string bytes = gemma3::spm::serialize(model);
    const auto again = gemma3::spm::parse_model_proto(bytes, "round trip");
    FUZZ_CHECK(again.pieces.size() == model.pieces.size(), "pieces after the round trip");
    FUZZ_CHECK(gemma3::spm::serialize(again) == bytes, "the bytes after the round trip");
    const auto types = gemma3::spm::piece_types(
        std::string_view(reinterpret_cast<const char*>(data), size), "fuzz input");
    FUZZ_CHECK(types.size() == model.pieces.size(), "piece_types' count");
    for (std::size_t i = 0; i < types.size(); ++i)
      FUZZ_CHECK(types[i] == model.pieces[i].type, "piece_types' types");
  } catch (const gemma3::Error&) {
  }
  return 0;
}
