// A checkpoint directory as published on Hugging Face: config.json + safetensors (single or sharded),
// opened, validated against the config and bound to typed weight structs.
#pragma once

#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "gemma3/config.hpp"
#include "gemma3/error.hpp"
#include "gemma3/io/hf_names.hpp"
#include "gemma3/io/safetensors.hpp"
#include "gemma3/weights.hpp"

namespace gemma3 {

class Checkpoint {
 public:
  // Opens `dir`: parses config.json, maps the safetensors file(s), and binds every tensor the config
  // calls for, checking names and shapes. Throws on a missing, unexpected or mis-shaped tensor.
  static Checkpoint open(const std::filesystem::path& dir) {
    if (!std::filesystem::is_directory(dir))
      throw IoError(dir.string(), "not a directory (expected a checkpoint directory with config.json)");
    Checkpoint ck;
    ck.dir_ = dir;
    ck.config_ = load_config(dir / "config.json");
    ck.store_ = TensorStore::open(dir);
    ck.bind();
    return ck;
  }

  const std::filesystem::path& dir() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  const TensorStore& store() const { return store_; }
  const ModelWeights& weights() const { return weights_; }
  const NameScheme& name_scheme() const { return *scheme_; }

 private:
  void bind() {
    const std::string where = dir_.string();
    scheme_ = &detect_name_scheme([&](const std::string& n) { return store_.contains(n); }, where);
    std::set<std::string> used;
    auto bind_one = [&](const std::string& full, TensorView& slot, const Shape& expected) {
      if (!store_.contains(full))
        throw TensorError(full, "missing from " + where + " (expected shape " + shape_string(expected) + ")");
      slot = store_.at(full);
      expect_shape(slot, expected, where);
      used.insert(full);
    };
    for_each_tensor(config_, weights_, [&](Module m, const std::string& rel, TensorView& slot,
                                           const Shape& expected, Init) {
      bind_one(scheme_->full_name(m, rel), slot, expected);
    });
    // An lm_head.weight present in a tied checkpoint is used as published (transformers loads it too).
    const std::string lm_head = scheme_->full_name(Module::LmHead, "lm_head.weight");
    if (config_.text.tie_word_embeddings) {
      if (store_.contains(lm_head))
        bind_one(lm_head, weights_.text.lm_head, Shape{config_.text.vocab_size, config_.text.hidden_size});
      else
        weights_.text.lm_head = weights_.text.embed_tokens;
    }
    for (const auto& [name, view] : store_.tensors())
      if (!used.count(name))
        throw TensorError(name, "unexpected tensor in " + where + " for a " + config_.model_type +
                                    " config (name scheme: " + scheme_->label + ")");
  }

  std::filesystem::path dir_;
  ModelConfig config_;
  TensorStore store_;
  ModelWeights weights_;
  const NameScheme* scheme_ = nullptr;
};

}  // namespace gemma3
