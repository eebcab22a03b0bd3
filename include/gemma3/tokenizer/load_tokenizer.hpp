// The tokenizer of a file that is either a SentencePiece tokenizer.model or a GGUF model carrying
// its tokenizer in tokenizer.ggml.* metadata (io/gguf_tokenizer.hpp): one file is a model.
#pragma once

#include "gemma3/build_mode.hpp"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "gemma3/io/files.hpp"
#include "gemma3/io/gguf.hpp"
#include "gemma3/io/gguf_tokenizer.hpp"
#include "gemma3/tokenizer/spm_model.hpp"
#include "gemma3/tokenizer/tokenizer.hpp"

namespace gemma3::inline GEMMA3_MODE {

// The tokenizer in a GGUF file's metadata; errors name the file. The ModelProto is serialized in
// a statement of its own, so that its 262144 pieces are freed before libsentencepiece loads them.
inline Tokenizer tokenizer_from_gguf(const gguf::File& f) {
  const std::string proto = spm::serialize(gguf::sentencepiece_model(f));
  return Tokenizer::from_serialized_proto(proto, f.path().string());
}

// True if `path` is a regular file that starts with GGUF's magic.
inline bool is_gguf_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, gguf::kMagic, 4) == 0;
}

// A tokenizer.model, or the tokenizer embedded in a .gguf model.
inline Tokenizer load_tokenizer(const std::filesystem::path& path) {
  if (is_gguf_file(path)) return tokenizer_from_gguf(gguf::File(path));
  return Tokenizer(path);
}

}  // namespace gemma3::inline GEMMA3_MODE
