// The checkpoint synthesiser: config.json + model.safetensors (sharded with an index above 4 GiB)
// in exactly the published layout and names, filled with seeded random weights of realistic scale.
// This is how tests, demos and benchmarks get checkpoints of the real shapes without a download.
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gemma3/config.hpp"
#include "gemma3/io/files.hpp"
#include "gemma3/io/gguf_gemma3.hpp"
#include "gemma3/io/hf_names.hpp"
#include "gemma3/io/safetensors.hpp"
#include "gemma3/tokenizer/spm_model.hpp"
#include "gemma3/weights.hpp"

namespace gemma3::inline GEMMA3_MODE {

// A small, portable, seedable generator: the same (seed, tensor name) gives the same weights on
// every machine and standard library (std::normal_distribution is not specified bit-exactly).
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in (0, 1).
  double uniform() { return (double(next() >> 11) + 0.5) * 0x1.0p-53; }
  // Standard normal by Box-Muller.
  double normal() {
    const double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }

 private:
  uint64_t state_;
};

// FNV-1a of the seed and the tensor name: each tensor has its own stream.
inline uint64_t tensor_seed(uint64_t seed, const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ull ^ seed;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// Mean and standard deviation of each initialisation (the fixtures' scheme; see weights.hpp).
inline std::pair<double, double> init_distribution(Init init, const Shape& shape) {
  switch (init) {
    case Init::Embedding:
      return {0.0, 0.3};
    case Init::Linear:
      return {0.0, 1.0 / std::sqrt(double(shape.back()))};
    case Init::RmsNorm:
      return {0.0, 0.1};
    case Init::LayerNormWeight:
      return {1.0, 0.1};
    case Init::Bias:
      return {0.0, 0.02};
    case Init::LayerNormBias:
      return {0.0, 0.05};
    case Init::PatchEmbedding:
      return {0.0, 1.0 / std::sqrt(double(shape[1] * shape[2] * shape[3]))};
    case Init::PositionEmbedding:
      return {0.0, 0.2};
    case Init::Projection:
      return {0.0, 1.0 / std::sqrt(double(shape.front()))};
  }
  return {0.0, 1.0};
}

// The values of one synthesised tensor, in order: value i is mean + stddev · (normal draw i) of the
// tensor's own stream.
class TensorValues {
 public:
  TensorValues(uint64_t seed, const std::string& name, const Shape& shape, Init init)
      : rng_(tensor_seed(seed, name)), distribution_(init_distribution(init, shape)) {}
  float next() { return float(distribution_.first + distribution_.second * rng_.normal()); }

 private:
  SplitMix64 rng_;
  std::pair<double, double> distribution_;  // mean, standard deviation
};

// The bytes of one synthesised tensor in `dtype` (a float type).
inline std::vector<std::byte> synthesize_tensor(uint64_t seed, const std::string& name,
                                                const Shape& shape, Init init, DType dtype) {
  TensorValues values(seed, name, shape, init);
  const int64_t n = num_elements(shape);
  std::vector<std::byte> bytes(std::size_t(n) * dtype_size(dtype));
  for (int64_t i = 0; i < n; ++i) {
    const float v = values.next();
    if (dtype == DType::BF16) {
      const uint16_t b = float_to_bf16(v);
      std::memcpy(bytes.data() + 2 * i, &b, 2);
    } else if (dtype == DType::F16) {
      const Eigen::half h(v);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    } else {
      std::memcpy(bytes.data() + 4 * i, &v, 4);
    }
  }
  return bytes;
}

struct SynthOptions {
  uint64_t seed = 0;
  DType dtype = DType::BF16;
  // Checkpoints larger than this are split into shards with a model.safetensors.index.json.
  std::size_t max_shard_bytes = std::size_t(4) << 30;
  // A tokenizer.model to copy into the checkpoint, as published (none if empty).
  std::filesystem::path tokenizer{};
  // Bytes of tensors written, of the total.
  Progress progress{};
};

// Writes config.json, the safetensors file(s) for `cfg` and the tokenizer if given as the
// directory `out`, through an OutputDirectory: `out` appears complete, with a completion stamp, or
// is left as it was. Returns the total number of tensor bytes written.
inline std::size_t synthesize_checkpoint(const ModelConfig& cfg, const std::filesystem::path& out,
                                         const SynthOptions& opt = {}) {
  validate(cfg);
  OutputDirectory dir(out);
  const std::filesystem::path& out_dir = dir.path();
  write_file(out_dir / "config.json", config_to_json(cfg).dump(2) + "\n");
  if (!opt.tokenizer.empty())
    write_file(out_dir / "tokenizer.model", read_file(opt.tokenizer, "tokenizer model"));
  const NameScheme& scheme = published_name_scheme(cfg);
  struct Pending {
    Shape shape;
    Init init;
  };
  std::map<std::string, Pending> tensors;  // sorted by name, as save_pretrained lays them out
  ModelWeights unused;
  for_each_tensor(
      cfg, unused,
      [&](Module m, const std::string& rel, TensorView&, const Shape& shape, Init init) {
        tensors.emplace(scheme.full_name(m, rel), Pending{shape, init});
      });

  // Greedy sharding in name order.
  std::vector<SafetensorsWriter> shards(1);
  std::size_t current = 0, total = 0;
  for (const auto& [name, t] : tensors) {
    const std::size_t bytes = std::size_t(num_elements(t.shape)) * dtype_size(opt.dtype);
    if (current > 0 && current + bytes > opt.max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    // Init-captures: clang before 16 cannot capture structured bindings by name.
    shards.back().add(name, opt.dtype, t.shape,
                      [seed = opt.seed, name = name, t = t, dtype = opt.dtype] {
                        return synthesize_tensor(seed, name, t.shape, t.init, dtype);
                      });
    current += bytes;
    total += bytes;
  }
  std::size_t before = 0;  // bytes of the shards already written
  auto write_shard = [&](const SafetensorsWriter& shard, const std::filesystem::path& path) {
    std::size_t shard_tensor_bytes = 0;
    shard.write(path, [&](uint64_t done, uint64_t file_total) {
      shard_tensor_bytes = std::size_t(file_total);
      if (opt.progress) opt.progress(std::min<uint64_t>(before + done, total), total);
    });
    before += shard_tensor_bytes;
  };
  if (shards.size() == 1) {
    write_shard(shards[0], out_dir / TensorStore::kSingleFile);
    dir.commit();
    return total;
  }
  nlohmann::json index{{"metadata", {{"total_size", total}}},
                       {"weight_map", nlohmann::json::object()}};
  for (std::size_t s = 0; s < shards.size(); ++s) {
    char file[64];
    std::snprintf(file, sizeof file, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    write_shard(shards[s], out_dir / file);
    for (const auto& name : shards[s].names()) index["weight_map"][name] = file;
  }
  write_file(out_dir / TensorStore::kIndexFile, index.dump(2) + "\n");
  dir.commit();
  return total;
}

// Writes the text model of `cfg` with the weights synthesize_checkpoint gives it (the same seeded
// values, rounded to bf16 as it stores them: the file equals `convert` of the bf16 checkpoint)
// straight to a GGUF of file type `type`, a row at a time: the model is never in memory as floats,
// so a 27B Q4_0 file can be made on a machine that could not hold its bf16 weights. opt.dtype is
// not used; opt.tokenizer, when given, is embedded as tokenizer.ggml.* metadata.
inline void synthesize_gguf(const ModelConfig& cfg, const std::filesystem::path& out,
                            gguf::FileType type, const SynthOptions& opt = {}) {
  validate(cfg);
  const NameScheme& scheme = published_name_scheme(cfg);
  gguf::WriteOptions options;
  options.name = out.stem().string();
  if (!opt.tokenizer.empty())
    options.tokenizer =
        spm::parse_model_proto(read_file(opt.tokenizer, "tokenizer model"), opt.tokenizer.string());
  const gguf::RowSource source = [&](Module m, const std::string& rel, const Shape& shape,
                                     Init init) -> gguf::NextRow {
    const int64_t cols = shape.size() == 1 ? num_elements(shape) : num_elements(shape) / shape[0];
    return [values = TensorValues(opt.seed, scheme.full_name(m, rel), shape, init),
            cols](float* row) mutable {
      for (int64_t i = 0; i < cols; ++i) row[i] = round_to_bf16(values.next());
    };
  };
  gguf::write_gguf(cfg, ModelWeights{}, out, type, opt.progress, options, source);
}

}  // namespace gemma3::inline GEMMA3_MODE
