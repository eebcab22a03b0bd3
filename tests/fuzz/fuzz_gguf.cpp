// Fuzz target: a GGUF file through gguf::File (header, metadata, tensor infos, ranges), its
// tokenizer.ggml.* metadata as a SentencePiece model where it has one, and
// Checkpoint::open (the gemma3 metadata, llama.cpp names, 1 + w norms, dequantization, binding),
// then, for small configs, a forward pass of two tokens.
//
// Input: the bytes of one .gguf file. Oracle: opening either succeeds or throws a gemma3::Error; a
// model that loads runs without a sanitizer report.
#include <gemma3/checkpoint.hpp>
#include <gemma3/io/gguf_tokenizer.hpp>
#include <gemma3/text/model.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const fuzz::MemFile file(data, size);
  try {
    const gemma3::gguf::File parsed(file.path());
    for (const auto& t : parsed.tensors()) FUZZ_CHECK(t.nbytes > 0, t.name);
    if (gemma3::gguf::has_tokenizer(parsed)) {
      // The embedded tokenizer: the long arrays, and the ModelProto made of them, which reads back
      // as written.
      const std::string bytes = gemma3::spm::serialize(gemma3::gguf::sentencepiece_model(parsed));
      const auto again = gemma3::spm::parse_model_proto(bytes, "fuzz");
      FUZZ_CHECK(gemma3::spm::serialize(again) == bytes, "the ModelProto round trip");
      gemma3::gguf::tokenizer_config(parsed);
    }
    const auto ck = gemma3::Checkpoint::open(file.path());
    const auto& t = ck.config().text;
    const bool small = t.vocab_size * t.hidden_size <= 65536 && t.num_hidden_layers <= 8 &&
                       t.num_attention_heads * t.head_dim <= 1024 && t.intermediate_size <= 1024 &&
                       t.hidden_size <= 512;
    if (!small) return 0;
    const gemma3::TextModel<float> model(ck);
    const int32_t vocab = int32_t(t.vocab_size);
    const auto logits = model.forward(std::vector<int32_t>{2 % vocab, vocab - 1});
    fuzz::sink(logits.sum());
  } catch (const gemma3::Error&) {
  }
  return 0;
}
