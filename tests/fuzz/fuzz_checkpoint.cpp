// Fuzz target: a checkpoint directory — config.json, model.safetensors.index.json and its shards,
// or a single model.safetensors — through Checkpoint::open (TensorStore, the index's weight_map,
// name scheme detection, binding and shape checks), then, for small configs, a forward pass.
//
// Input: files separated by the 8 bytes "#GEMMA3#":
//   config.json #GEMMA3# index.json #GEMMA3# shard 1 [#GEMMA3# shard 2 ...]
// An empty index section means "no index": shard 1 is written as model.safetensors. Otherwise the
// shards are written as s1.safetensors, s2.safetensors, ... beside model.safetensors.index.json
// (the seeds' weight_map names them so). Oracle: Checkpoint::open and the model either succeed or
// throw a gemma3::Error; a model that loads runs two tokens without a sanitizer report.
#include <fstream>

#include <gemma3/checkpoint.hpp>
#include <gemma3/multimodal.hpp>

#include "fuzz_common.hpp"

namespace {
void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out) std::abort();
}

// Small enough to run a forward pass in well under a millisecond.
bool small(const gemma3::ModelConfig& c) {
  const auto& t = c.text;
  const bool text_ok = t.vocab_size * t.hidden_size <= 65536 && t.num_hidden_layers <= 8 &&
                       t.num_attention_heads * t.head_dim <= 1024 && t.intermediate_size <= 1024 &&
                       t.hidden_size <= 512;
  if (!c.vision) return text_ok;
  const auto& v = *c.vision;
  return text_ok && v.image_size <= 64 && v.hidden_size <= 128 && v.num_hidden_layers <= 2 &&
         v.intermediate_size <= 256;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const auto& dir = fuzz::scratch_dir();
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    std::filesystem::remove(entry.path());
  const auto parts =
      fuzz::split(std::string_view(reinterpret_cast<const char*>(data), size), "#GEMMA3#");
  write_file(dir / "config.json", parts[0]);
  if (parts.size() >= 2 && !parts[1].empty()) {
    write_file(dir / gemma3::TensorStore::kIndexFile, parts[1]);
    for (std::size_t i = 2; i < parts.size(); ++i)
      write_file(dir / ("s" + std::to_string(i - 1) + ".safetensors"), parts[i]);
  } else if (parts.size() >= 3) {
    write_file(dir / gemma3::TensorStore::kSingleFile, parts[2]);
  }
  try {
    const auto ck = gemma3::Checkpoint::open(dir);
    if (!small(ck.config())) return 0;
    const gemma3::Gemma3<float> model(ck);
    const int32_t vocab = int32_t(ck.config().text.vocab_size);
    const std::vector<int32_t> ids{2 % vocab, (vocab - 1) % vocab};
    std::vector<int32_t> text_ids;
    for (int32_t id : ids)
      if (id != model.image_token_id()) text_ids.push_back(id);
    if (text_ids.empty()) return 0;
    const auto logits = model.forward(text_ids);
    fuzz::sink(logits.sum());
  } catch (const gemma3::Error&) {
  }
  return 0;
}
