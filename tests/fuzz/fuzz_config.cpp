// Fuzz target: config.json (and the other JSON documents a checkpoint directory holds:
// preprocessor_config.json and generation_config.json).
//
// Input: a JSON document. It goes through load_config (from a memfd, so the error-rewriting path
// runs too), parse_preprocessor_config and sampler_config_from_json. Oracles: every failure is a
// gemma3::Error; an accepted config survives config_to_json → parse_config unchanged; the KV-cache
// size of an accepted config at its full context is computed without overflow (UBSan).
#include <gemma3/config.hpp>
#include <gemma3/sample/sampler.hpp>
#include <gemma3/text/kv_cache.hpp>
#include <gemma3/vision/preprocess.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  nlohmann::json j;
  try {
    const fuzz::MemFile file(data, size);
    const gemma3::ModelConfig cfg = gemma3::load_config(file.path());
    const gemma3::ModelConfig again = gemma3::parse_config(gemma3::config_to_json(cfg));
    FUZZ_CHECK(again == cfg, gemma3::config_to_json(cfg).dump());
    fuzz::sink(gemma3::KVCache<float>::bytes_needed(cfg.text, cfg.text.max_position_embeddings));
  } catch (const gemma3::Error&) {
  }
  try {
    j = nlohmann::json::parse(data, data + size);
  } catch (const nlohmann::json::exception&) {
    return 0;
  }
  try {
    fuzz::sink(gemma3::parse_preprocessor_config(j).height);
  } catch (const gemma3::Error&) {
  }
  try {
    fuzz::sink(gemma3::sampler_config_from_json(j).top_k);
  } catch (const gemma3::Error&) {
  }
  return 0;
}
