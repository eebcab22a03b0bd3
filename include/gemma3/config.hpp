// Model configuration: typed TextConfig / VisionConfig / ModelConfig, the published presets, and
// the config.json parser and writer.
//
// The published 4B/12B/27B config.json files are sparse: a key that is absent takes the class
// default of transformers' Gemma3TextConfig / SiglipVisionConfig / Gemma3Config (transformers
// 4.51.3 configuration_gemma3.py, configuration_siglip.py; docs/model.md, Sizes). The parser
// applies exactly those defaults, so the same directory means the same model here and there.
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gemma3/error.hpp"
#include "gemma3/io/files.hpp"

namespace gemma3::inline GEMMA3_MODE {

// Every decoder layer is either a local (sliding-window) or a global (full attention) layer.
enum class LayerKind { Local, Global };

inline const char* to_string(LayerKind k) {
  return k == LayerKind::Local ? "sliding_attention" : "full_attention";
}

// RoPE parameters of one layer kind: inv_freq_i = theta^(-2i/D) / linear_factor (transformers
// 4.51.3 modeling_rope_utils.py, _compute_linear_scaling_rope_parameters; docs/model.md, RoPE).
struct RopeParams {
  double theta = 10000.0;
  double linear_factor = 1.0;  // 1 = no scaling; 8 on the global layers of 4B/12B/27B
  bool operator==(const RopeParams&) const = default;
};

struct TextConfig {
  int64_t vocab_size = 262208;  // embedding rows = logits per position
  int64_t hidden_size = 2304;
  int64_t intermediate_size = 9216;
  int64_t num_hidden_layers = 26;
  int64_t num_attention_heads = 8;
  int64_t num_key_value_heads = 4;
  int64_t head_dim = 256;
  double query_pre_attn_scalar = 256;  // scores are scaled by query_pre_attn_scalar^-1/2
  int64_t sliding_window = 4096;       // a local-layer query sees itself and W-1 earlier keys
  int64_t max_position_embeddings = 131072;
  double rms_norm_eps = 1e-6;
  RopeParams rope_local{.theta = 10000.0};     // sliding_attention layers
  RopeParams rope_global{.theta = 1000000.0};  // full_attention layers
  std::vector<LayerKind> layer_types;          // one per layer
  std::optional<double> final_logit_softcapping;
  std::optional<double> attn_logit_softcapping;
  bool tie_word_embeddings = true;
  int64_t pad_token_id = 0;
  int64_t bos_token_id = 2;
  std::vector<int64_t> eos_token_ids{1};

  bool operator==(const TextConfig&) const = default;
};

struct VisionConfig {
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t num_channels = 3;
  int64_t image_size = 224;
  int64_t patch_size = 16;
  double layer_norm_eps = 1e-6;

  int64_t patches_per_side() const { return image_size / patch_size; }
  int64_t num_patches() const { return patches_per_side() * patches_per_side(); }
  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  bool operator==(const VisionConfig&) const = default;
};

struct ModelConfig {
  std::string model_type = "gemma3_text";  // "gemma3_text" (text only) or "gemma3" (text + vision)
  TextConfig text;
  std::optional<VisionConfig> vision;  // present iff model_type == "gemma3"
  int64_t mm_tokens_per_image = 256;
  int64_t boi_token_index = 255999;
  int64_t eoi_token_index = 256000;
  int64_t image_token_index = 262144;

  bool is_multimodal() const { return vision.has_value(); }
  bool operator==(const ModelConfig&) const = default;
};

// The one place that decides whether layer i is local or global: it drives the mask, the RoPE table
// and the KV-cache size.
inline LayerKind layer_kind(const TextConfig& cfg, int64_t layer) {
  return cfg.layer_types.at(layer);
}

inline const RopeParams& rope_params(const TextConfig& cfg, int64_t layer) {
  return layer_kind(cfg, layer) == LayerKind::Local ? cfg.rope_local : cfg.rope_global;
}

// The published rule: layer i is global iff (i + 1) % pattern == 0 (transformers 4.51.3
// modeling_gemma3.py, Gemma3Attention.is_sliding; docs/model.md, Local and global layers).
inline std::vector<LayerKind> layer_types_from_pattern(int64_t num_layers, int64_t pattern) {
  std::vector<LayerKind> kinds(num_layers);
  for (int64_t i = 0; i < num_layers; ++i)
    kinds[i] = (i + 1) % pattern == 0 ? LayerKind::Global : LayerKind::Local;
  return kinds;
}

// Limits that bound what a config alone makes the loader allocate or compute before any tensor is
// checked (docs/robustness.md): the published models have at most 62 text and 27 vision layers, and
// every tensor a config implies must have fewer than 2^62 elements, so that no size overflows.
inline constexpr int64_t kMaxLayers = 4096;
inline constexpr int64_t kMaxVisionImageSize = 16384;  // the preprocessor's kMaxImageSide

namespace detail {
// True when the product of `dims` (all positive) stays below 2^62.
inline bool product_fits(std::initializer_list<int64_t> dims) {
  int64_t p = 1;
  for (const int64_t d : dims)
    if (d <= 0 || __builtin_mul_overflow(p, d, &p) || p > (int64_t(1) << 62)) return false;
  return true;
}
}  // namespace detail

// Rejects configs the model cannot run, naming the field.
inline void validate(const TextConfig& c) {
  auto require = [](bool ok, const char* field, const std::string& what) {
    if (!ok) throw ConfigError(field, what);
  };
  const auto positive = [](double x) { return std::isfinite(x) && x > 0; };
  require(c.vocab_size > 0, "vocab_size", "must be positive");
  require(c.hidden_size > 0, "hidden_size", "must be positive");
  require(c.intermediate_size > 0, "intermediate_size", "must be positive");
  require(c.num_hidden_layers > 0 && c.num_hidden_layers <= kMaxLayers, "num_hidden_layers",
          "must be in [1, " + std::to_string(kMaxLayers) + "], got " +
              std::to_string(c.num_hidden_layers));
  require(c.num_attention_heads > 0, "num_attention_heads", "must be positive");
  require(c.num_key_value_heads > 0, "num_key_value_heads", "must be positive");
  require(c.num_attention_heads % c.num_key_value_heads == 0, "num_key_value_heads",
          "must divide num_attention_heads (" + std::to_string(c.num_attention_heads) + "), got " +
              std::to_string(c.num_key_value_heads));
  require(c.head_dim > 0 && c.head_dim % 2 == 0, "head_dim",
          "must be positive and even (RoPE rotates halves), got " + std::to_string(c.head_dim));
  const std::string too_big = "makes a tensor of 2^62 or more elements";
  require(detail::product_fits({c.vocab_size, c.hidden_size}), "vocab_size",
          too_big + " (vocab_size x hidden_size)");
  require(detail::product_fits({c.intermediate_size, c.hidden_size}), "intermediate_size",
          too_big + " (intermediate_size x hidden_size)");
  require(detail::product_fits({c.num_attention_heads, c.head_dim, c.hidden_size}), "head_dim",
          too_big + " (num_attention_heads x head_dim x hidden_size)");
  require(positive(c.query_pre_attn_scalar), "query_pre_attn_scalar", "must be positive");
  require(c.sliding_window > 0, "sliding_window", "must be positive");
  require(c.max_position_embeddings > 0, "max_position_embeddings", "must be positive");
  require(positive(c.rms_norm_eps), "rms_norm_eps", "must be positive");
  require(std::isfinite(c.rope_local.theta) && std::isfinite(c.rope_global.theta) &&
              c.rope_local.theta > 1 && c.rope_global.theta > 1,
          "rope_theta", "must be > 1");
  require(positive(c.rope_local.linear_factor) && positive(c.rope_global.linear_factor),
          "rope_scaling.factor", "must be positive");
  require(static_cast<int64_t>(c.layer_types.size()) == c.num_hidden_layers, "layer_types",
          "has " + std::to_string(c.layer_types.size()) +
              " entries, expected num_hidden_layers = " + std::to_string(c.num_hidden_layers));
  require(!c.final_logit_softcapping || positive(*c.final_logit_softcapping),
          "final_logit_softcapping", "must be positive or null");
  require(!c.attn_logit_softcapping || positive(*c.attn_logit_softcapping),
          "attn_logit_softcapping", "must be positive or null");
}

inline void validate(const VisionConfig& v) {
  auto require = [](bool ok, const char* field, const std::string& what) {
    if (!ok) throw ConfigError(std::string("vision_config.") + field, what);
  };
  require(v.hidden_size > 0, "hidden_size", "must be positive");
  require(v.intermediate_size > 0, "intermediate_size", "must be positive");
  require(v.num_hidden_layers > 0 && v.num_hidden_layers <= kMaxLayers, "num_hidden_layers",
          "must be in [1, " + std::to_string(kMaxLayers) + "]");
  require(v.num_attention_heads > 0 && v.hidden_size % v.num_attention_heads == 0,
          "num_attention_heads", "must be positive and divide hidden_size");
  require(v.num_channels == 3, "num_channels", "must be 3 (RGB)");
  require(v.image_size > 0 && v.image_size <= kMaxVisionImageSize, "image_size",
          "must be in [1, " + std::to_string(kMaxVisionImageSize) + "]");
  require(v.patch_size > 0 && v.image_size % v.patch_size == 0, "patch_size",
          "must be positive and divide image_size");
  require(detail::product_fits({v.hidden_size, v.hidden_size}) &&
              detail::product_fits({v.intermediate_size, v.hidden_size}) &&
              detail::product_fits({v.num_patches(), v.hidden_size}) &&
              detail::product_fits({v.hidden_size, v.num_channels, v.patch_size, v.patch_size}),
          "hidden_size", "makes a tensor of 2^62 or more elements");
  require(std::isfinite(v.layer_norm_eps) && v.layer_norm_eps > 0, "layer_norm_eps",
          "must be positive");
}

inline void validate(const ModelConfig& m) {
  validate(m.text);
  if (!m.vision) return;
  validate(*m.vision);
  // (Soft tokens pool patches, so there are at most as many; the bound keeps side * side in range.)
  const int64_t side =
      m.mm_tokens_per_image > 0 && m.mm_tokens_per_image <= m.vision->num_patches()
          ? static_cast<int64_t>(std::llround(std::sqrt(double(m.mm_tokens_per_image))))
          : 0;
  if (m.mm_tokens_per_image <= 0 || side * side != m.mm_tokens_per_image ||
      m.vision->patches_per_side() % side != 0)
    throw ConfigError("mm_tokens_per_image",
                      "must be a square whose side divides the patch grid side (" +
                          std::to_string(m.vision->patches_per_side()) + "), got " +
                          std::to_string(m.mm_tokens_per_image));
  for (auto [field, id] : {std::pair{"boi_token_index", m.boi_token_index},
                           std::pair{"eoi_token_index", m.eoi_token_index},
                           std::pair{"image_token_index", m.image_token_index}})
    if (id < 0 || id >= m.text.vocab_size)
      throw ConfigError(field, std::to_string(id) + " is outside the embedding table [0, " +
                                   std::to_string(m.text.vocab_size) + ")");
}

// ---------------------------------------------------------------------------------------------
// Presets: the published values (docs/model.md, Sizes; docs/model.md, Tower).

namespace detail {
// What differs between the published text configs, by their config.json field names (every field
// given in every preset: a size is read off one block).
struct TextSizes {
  int64_t vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
      num_key_value_heads, head_dim;
  double query_pre_attn_scalar;
  int64_t sliding_window, max_position_embeddings;
  double rope_scaling_factor;  // rope_scaling.factor: linear RoPE scaling of the global layers
};

// A published text config: its sizes and what every Gemma 3 size shares (RoPE bases 10k local /
// 1M global, 5 local layers per global one, <eos> and <end_of_turn> as stop ids).
inline TextConfig text_preset(const TextSizes& s) {
  TextConfig t;
  t.vocab_size = s.vocab_size;
  t.hidden_size = s.hidden_size;
  t.intermediate_size = s.intermediate_size;
  t.num_hidden_layers = s.num_hidden_layers;
  t.num_attention_heads = s.num_attention_heads;
  t.num_key_value_heads = s.num_key_value_heads;
  t.head_dim = s.head_dim;
  t.query_pre_attn_scalar = s.query_pre_attn_scalar;
  t.sliding_window = s.sliding_window;
  t.max_position_embeddings = s.max_position_embeddings;
  t.rope_local = {.theta = 10000.0};
  t.rope_global = {.theta = 1000000.0, .linear_factor = s.rope_scaling_factor};
  t.layer_types = layer_types_from_pattern(s.num_hidden_layers, 6);
  t.eos_token_ids = {1, 106};
  return t;
}

// The SigLIP So400m-style tower shared by 4B, 12B and 27B.
inline VisionConfig siglip_so400m() {
  return {.hidden_size = 1152,
          .intermediate_size = 4304,
          .num_hidden_layers = 27,
          .num_attention_heads = 16,
          .image_size = 896,
          .patch_size = 14};
}
}  // namespace detail

inline const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names{"tiny", "270m", "1b", "4b", "12b", "27b", "tiny-mm"};
  return names;
}

// "tiny" / "tiny-mm" are not published models: small configs with the real 262144-token vocabulary,
// for demos and tests that need a real-shaped but fast checkpoint.
inline ModelConfig preset(const std::string& name) {
  using detail::text_preset;
  ModelConfig m;
  if (name == "270m") {
    m.text = text_preset({.vocab_size = 262144,
                          .hidden_size = 640,
                          .intermediate_size = 2048,
                          .num_hidden_layers = 18,
                          .num_attention_heads = 4,
                          .num_key_value_heads = 1,
                          .head_dim = 256,
                          .query_pre_attn_scalar = 256,
                          .sliding_window = 512,
                          .max_position_embeddings = 32768,
                          .rope_scaling_factor = 1.0});
  } else if (name == "1b") {
    m.text = text_preset({.vocab_size = 262144,
                          .hidden_size = 1152,
                          .intermediate_size = 6912,
                          .num_hidden_layers = 26,
                          .num_attention_heads = 4,
                          .num_key_value_heads = 1,
                          .head_dim = 256,
                          .query_pre_attn_scalar = 256,
                          .sliding_window = 512,
                          .max_position_embeddings = 32768,
                          .rope_scaling_factor = 1.0});
  } else if (name == "tiny") {
    m.text = text_preset({.vocab_size = 262144,
                          .hidden_size = 64,
                          .intermediate_size = 256,
                          .num_hidden_layers = 6,
                          .num_attention_heads = 4,
                          .num_key_value_heads = 1,
                          .head_dim = 32,
                          .query_pre_attn_scalar = 32,
                          .sliding_window = 16,
                          .max_position_embeddings = 32768,
                          .rope_scaling_factor = 1.0});
  } else if (name == "4b" || name == "12b" || name == "27b" || name == "tiny-mm") {
    m.model_type = "gemma3";
    m.vision = detail::siglip_so400m();
    if (name == "4b")
      m.text = text_preset({.vocab_size = 262208,
                            .hidden_size = 2560,
                            .intermediate_size = 10240,
                            .num_hidden_layers = 34,
                            .num_attention_heads = 8,
                            .num_key_value_heads = 4,
                            .head_dim = 256,
                            .query_pre_attn_scalar = 256,
                            .sliding_window = 1024,
                            .max_position_embeddings = 131072,
                            .rope_scaling_factor = 8.0});
    else if (name == "12b")
      m.text = text_preset({.vocab_size = 262208,
                            .hidden_size = 3840,
                            .intermediate_size = 15360,
                            .num_hidden_layers = 48,
                            .num_attention_heads = 16,
                            .num_key_value_heads = 8,
                            .head_dim = 256,
                            .query_pre_attn_scalar = 256,
                            .sliding_window = 1024,
                            .max_position_embeddings = 131072,
                            .rope_scaling_factor = 8.0});
    else if (name == "27b")
      m.text = text_preset({.vocab_size = 262208,
                            .hidden_size = 5376,
                            .intermediate_size = 21504,
                            .num_hidden_layers = 62,
                            .num_attention_heads = 32,
                            .num_key_value_heads = 16,
                            .head_dim = 128,
                            .query_pre_attn_scalar = 168,
                            .sliding_window = 1024,
                            .max_position_embeddings = 131072,
                            .rope_scaling_factor = 8.0});
    else {
      m.text = text_preset({.vocab_size = 262208,
                            .hidden_size = 64,
                            .intermediate_size = 256,
                            .num_hidden_layers = 6,
                            .num_attention_heads = 4,
                            .num_key_value_heads = 2,
                            .head_dim = 32,
                            .query_pre_attn_scalar = 32,
                            .sliding_window = 32,
                            .max_position_embeddings = 131072,
                            .rope_scaling_factor = 8.0});
      m.vision = VisionConfig{.hidden_size = 32,
                              .intermediate_size = 64,
                              .num_hidden_layers = 2,
                              .num_attention_heads = 2,
                              .image_size = 224,
                              .patch_size = 14};
      m.mm_tokens_per_image = 16;
    }
  } else {
    std::string known;
    for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw InvalidArgument("preset", "unknown preset '" + name + "' (known: " + known + ")");
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// config.json parsing.

namespace detail {

// Reads json[key] as T when present and not null, else keeps `value`; type errors name the field.
template <typename T>
void read_field(const nlohmann::json& j, const std::string& prefix, const char* key, T& value) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  try {
    if constexpr (std::is_same_v<T, int64_t>) {
      if (!it->is_number_integer()) throw std::runtime_error("expected an integer");
      value = it->get<int64_t>();
    } else if constexpr (std::is_same_v<T, double>) {
      if (!it->is_number()) throw std::runtime_error("expected a number");
      value = it->get<double>();
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!it->is_boolean()) throw std::runtime_error("expected true or false");
      value = it->get<bool>();
    } else {
      if (!it->is_string()) throw std::runtime_error("expected a string");
      value = it->get<std::string>();
    }
  } catch (const std::exception& e) {
    throw ConfigError(prefix + key, std::string(e.what()) + ", got " + it->dump());
  }
}

// One RoPE entry: old `rope_scaling` ({"rope_type"|"type", "factor"}) or a new `rope_parameters`
// entry ({"rope_type", "factor", "rope_theta"}). Only default and linear are Gemma 3's.
inline void read_rope(const nlohmann::json& r, const std::string& field, RopeParams& p) {
  if (r.is_null()) return;
  if (!r.is_object()) throw ConfigError(field, "expected an object or null, got " + r.dump());
  std::string type = "default";
  read_field(r, field + ".", "type", type);
  read_field(r, field + ".", "rope_type", type);
  read_field(r, field + ".", "rope_theta", p.theta);
  if (type == "linear") {
    if (!r.contains("factor")) throw ConfigError(field + ".factor", "linear RoPE needs a factor");
    read_field(r, field + ".", "factor", p.linear_factor);
  } else if (type == "default") {
    p.linear_factor = 1.0;
  } else {
    throw ConfigError(field + ".rope_type",
                      "unsupported RoPE type '" + type + "' (Gemma 3 uses default or linear)");
  }
}

inline TextConfig parse_text_config(const nlohmann::json& j, const std::string& prefix) {
  if (!j.is_object()) throw ConfigError(prefix.empty() ? "config" : prefix, "expected an object");
  TextConfig c;  // Gemma3TextConfig defaults (transformers v4.51.3)
  read_field(j, prefix, "vocab_size", c.vocab_size);
  read_field(j, prefix, "hidden_size", c.hidden_size);
  read_field(j, prefix, "intermediate_size", c.intermediate_size);
  read_field(j, prefix, "num_hidden_layers", c.num_hidden_layers);
  read_field(j, prefix, "num_attention_heads", c.num_attention_heads);
  read_field(j, prefix, "num_key_value_heads", c.num_key_value_heads);
  read_field(j, prefix, "head_dim", c.head_dim);
  read_field(j, prefix, "query_pre_attn_scalar", c.query_pre_attn_scalar);
  read_field(j, prefix, "sliding_window", c.sliding_window);
  read_field(j, prefix, "max_position_embeddings", c.max_position_embeddings);
  read_field(j, prefix, "rms_norm_eps", c.rms_norm_eps);
  read_field(j, prefix, "rope_theta", c.rope_global.theta);
  read_field(j, prefix, "rope_local_base_freq", c.rope_local.theta);
  read_field(j, prefix, "tie_word_embeddings", c.tie_word_embeddings);
  read_field(j, prefix, "pad_token_id", c.pad_token_id);
  read_field(j, prefix, "bos_token_id", c.bos_token_id);
  double cap = 0;
  if (j.contains("final_logit_softcapping") && !j["final_logit_softcapping"].is_null()) {
    read_field(j, prefix, "final_logit_softcapping", cap);
    c.final_logit_softcapping = cap;
  }
  if (j.contains("attn_logit_softcapping") && !j["attn_logit_softcapping"].is_null()) {
    read_field(j, prefix, "attn_logit_softcapping", cap);
    c.attn_logit_softcapping = cap;
  }
  if (auto it = j.find("eos_token_id"); it != j.end() && !it->is_null()) {
    if (it->is_number_integer())
      c.eos_token_ids = {it->get<int64_t>()};
    else if (it->is_array() && std::all_of(it->begin(), it->end(),
                                           [](const auto& e) { return e.is_number_integer(); }))
      c.eos_token_ids = it->get<std::vector<int64_t>>();
    else
      throw ConfigError(prefix + "eos_token_id", "expected an integer or a list of integers");
  }
  std::string activation = "gelu_pytorch_tanh";
  read_field(j, prefix, "hidden_activation", activation);
  if (activation != "gelu_pytorch_tanh")
    throw ConfigError(prefix + "hidden_activation",
                      "unsupported '" + activation + "' (Gemma 3 uses gelu_pytorch_tanh)");
  bool bidirectional = false;
  read_field(j, prefix, "use_bidirectional_attention", bidirectional);
  if (bidirectional)
    throw ConfigError(prefix + "use_bidirectional_attention",
                      "bidirectional (EmbeddingGemma) attention is not supported");
  bool attention_bias = false;
  read_field(j, prefix, "attention_bias", attention_bias);
  if (attention_bias)
    throw ConfigError(prefix + "attention_bias", "Gemma 3 has no attention biases");

  // RoPE: old names (rope_scaling applies to global layers only), then new rope_parameters.
  if (auto it = j.find("rope_scaling"); it != j.end())
    read_rope(*it, prefix + "rope_scaling", c.rope_global);
  if (auto it = j.find("rope_parameters"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) throw ConfigError(prefix + "rope_parameters", "expected an object");
    if (it->contains("sliding_attention") || it->contains("full_attention")) {
      if (it->contains("sliding_attention"))
        read_rope((*it)["sliding_attention"], prefix + "rope_parameters.sliding_attention",
                  c.rope_local);
      if (it->contains("full_attention"))
        read_rope((*it)["full_attention"], prefix + "rope_parameters.full_attention",
                  c.rope_global);
    } else {
      read_rope(*it, prefix + "rope_parameters", c.rope_global);
    }
  }

  // Layer kinds: an explicit layer_types list (newer transformers) wins over the pattern
  // (docs/model.md, Local and global layers).
  int64_t pattern = 6;
  read_field(j, prefix, "sliding_window_pattern", pattern);
  read_field(j, prefix, "_sliding_window_pattern", pattern);
  if (auto it = j.find("layer_types"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) throw ConfigError(prefix + "layer_types", "expected a list");
    for (const auto& t : *it) {
      if (t == "sliding_attention")
        c.layer_types.push_back(LayerKind::Local);
      else if (t == "full_attention")
        c.layer_types.push_back(LayerKind::Global);
      else
        throw ConfigError(prefix + "layer_types",
                          "unknown layer type " + t.dump() +
                              " (expected \"sliding_attention\" or \"full_attention\")");
    }
  } else {
    if (pattern <= 0) throw ConfigError(prefix + "sliding_window_pattern", "must be positive");
    // (validate() reports a layer count outside [1, kMaxLayers] before allocating anything for it.)
    if (c.num_hidden_layers > 0 && c.num_hidden_layers <= kMaxLayers)
      c.layer_types = layer_types_from_pattern(c.num_hidden_layers, pattern);
  }
  return c;
}

inline VisionConfig parse_vision_config(const nlohmann::json& j) {
  const std::string prefix = "vision_config.";
  if (!j.is_object()) throw ConfigError("vision_config", "expected an object");
  VisionConfig v;  // SiglipVisionConfig defaults
  read_field(j, prefix, "hidden_size", v.hidden_size);
  read_field(j, prefix, "intermediate_size", v.intermediate_size);
  read_field(j, prefix, "num_hidden_layers", v.num_hidden_layers);
  read_field(j, prefix, "num_attention_heads", v.num_attention_heads);
  read_field(j, prefix, "num_channels", v.num_channels);
  read_field(j, prefix, "image_size", v.image_size);
  read_field(j, prefix, "patch_size", v.patch_size);
  read_field(j, prefix, "layer_norm_eps", v.layer_norm_eps);
  std::string act = "gelu_pytorch_tanh";
  read_field(j, prefix, "hidden_act", act);
  if (act != "gelu_pytorch_tanh")
    throw ConfigError(prefix + "hidden_act", "unsupported '" + act + "'");
  bool use_head = false;
  read_field(j, prefix, "vision_use_head", use_head);
  if (use_head) throw ConfigError(prefix + "vision_use_head", "Gemma 3 uses no pooling head");
  return v;
}

}  // namespace detail

// Parses a config.json document (already read) into a validated ModelConfig.
inline ModelConfig parse_config(const nlohmann::json& j) {
  if (!j.is_object()) throw ConfigError("config", "expected a JSON object");
  ModelConfig m;
  if (auto it = j.find("model_type"); it == j.end() || !it->is_string())
    throw ConfigError("model_type", "missing (expected \"gemma3_text\" or \"gemma3\")");
  m.model_type = j["model_type"].get<std::string>();
  if (m.model_type == "gemma3_text") {
    m.text = detail::parse_text_config(j, "");
  } else if (m.model_type == "gemma3") {
    if (!j.contains("text_config")) throw ConfigError("text_config", "missing");
    m.text = detail::parse_text_config(j["text_config"], "text_config.");
    m.vision = detail::parse_vision_config(j.value("vision_config", nlohmann::json::object()));
    detail::read_field(j, "", "mm_tokens_per_image", m.mm_tokens_per_image);
    detail::read_field(j, "", "boi_token_index", m.boi_token_index);
    detail::read_field(j, "", "eoi_token_index", m.eoi_token_index);
    detail::read_field(j, "", "image_token_index", m.image_token_index);
    // The published multimodal configs keep eos_token_id at the top level.
    if (j.contains("eos_token_id") && !j["text_config"].contains("eos_token_id")) {
      nlohmann::json eos{{"eos_token_id", j["eos_token_id"]}};
      m.text.eos_token_ids = detail::parse_text_config(eos, "").eos_token_ids;
    }
  } else {
    throw ConfigError("model_type", "unsupported '" + m.model_type +
                                        "' (expected \"gemma3_text\" or \"gemma3\")");
  }
  validate(m);
  return m;
}

// Reads and parses `path` (a config.json file).
inline ModelConfig load_config(const std::filesystem::path& path) {
  const std::string text = read_file(path, "config file", 64 << 20);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path.string(), std::string("invalid JSON: ") + e.what());
  }
  try {
    return parse_config(j);
  } catch (const ConfigError& e) {
    throw ConfigError(path.string() + ": " + e.subject(), e.what() + e.subject().size() + 2);
  }
}

// ---------------------------------------------------------------------------------------------
// config.json writing, in the published layout: text-only configs carry google/gemma-3-1b-it's full
// key set; multimodal ones google/gemma-3-4b-it's sparse text_config/vision_config, plus any key
// whose value differs from the transformers default (so that parse(write(c)) == c for every c).

namespace detail {
inline nlohmann::json rope_json(const RopeParams& p) {
  if (p.linear_factor == 1.0) return nullptr;
  return {{"factor", p.linear_factor}, {"rope_type", "linear"}};
}

inline nlohmann::json text_config_json(const TextConfig& c, bool sparse) {
  const TextConfig d;
  nlohmann::json j;
  auto put = [&](const char* key, auto value, auto default_value, bool in_sparse_set) {
    if (!sparse || in_sparse_set || value != default_value) j[key] = value;
  };
  put("head_dim", c.head_dim, d.head_dim, true);
  put("hidden_size", c.hidden_size, d.hidden_size, true);
  put("intermediate_size", c.intermediate_size, d.intermediate_size, true);
  j["model_type"] = "gemma3_text";
  put("num_attention_heads", c.num_attention_heads, d.num_attention_heads, true);
  put("num_hidden_layers", c.num_hidden_layers, d.num_hidden_layers, true);
  put("num_key_value_heads", c.num_key_value_heads, d.num_key_value_heads, true);
  put("query_pre_attn_scalar", c.query_pre_attn_scalar, d.query_pre_attn_scalar, true);
  j["rope_scaling"] = rope_json(c.rope_global);
  put("sliding_window", c.sliding_window, d.sliding_window, true);
  put("vocab_size", c.vocab_size, d.vocab_size, false);
  put("max_position_embeddings", c.max_position_embeddings, d.max_position_embeddings, false);
  put("rms_norm_eps", c.rms_norm_eps, d.rms_norm_eps, false);
  put("rope_theta", c.rope_global.theta, d.rope_global.theta, false);
  put("rope_local_base_freq", c.rope_local.theta, d.rope_local.theta, false);
  put("tie_word_embeddings", c.tie_word_embeddings, d.tie_word_embeddings, false);
  if (!sparse) {
    j["architectures"] = {"Gemma3ForCausalLM"};
    j["attention_bias"] = false;
    j["attention_dropout"] = 0.0;
    j["cache_implementation"] = "hybrid";
    j["hidden_activation"] = "gelu_pytorch_tanh";
    j["initializer_range"] = 0.02;
    j["pad_token_id"] = c.pad_token_id;
    j["bos_token_id"] = c.bos_token_id;
    j["eos_token_id"] = c.eos_token_ids;
    j["torch_dtype"] = "bfloat16";
    j["use_cache"] = true;
    j.erase("tie_word_embeddings");
    if (!c.tie_word_embeddings) j["tie_word_embeddings"] = false;
  }
  j["final_logit_softcapping"] =
      c.final_logit_softcapping ? nlohmann::json(*c.final_logit_softcapping) : nullptr;
  j["attn_logit_softcapping"] =
      c.attn_logit_softcapping ? nlohmann::json(*c.attn_logit_softcapping) : nullptr;
  if (sparse) {
    if (!c.final_logit_softcapping) j.erase("final_logit_softcapping");
    if (!c.attn_logit_softcapping) j.erase("attn_logit_softcapping");
  }
  // The layer kinds: the pattern form when it describes them, else the explicit list.
  if (c.layer_types == layer_types_from_pattern(c.num_hidden_layers, 6)) {
    if (!sparse) j["sliding_window_pattern"] = 6;
  } else {
    auto& list = j["layer_types"] = nlohmann::json::array();
    for (auto k : c.layer_types) list.push_back(to_string(k));
  }
  if (c.rope_local.linear_factor != 1.0)
    j["rope_parameters"] = {
        {"sliding_attention",
         {{"rope_type", "linear"},
          {"factor", c.rope_local.linear_factor},
          {"rope_theta", c.rope_local.theta}}},
        {"full_attention",
         {{"rope_type", c.rope_global.linear_factor == 1.0 ? "default" : "linear"},
          {"factor", c.rope_global.linear_factor},
          {"rope_theta", c.rope_global.theta}}}};
  return j;
}
}  // namespace detail

inline nlohmann::json config_to_json(const ModelConfig& m) {
  if (!m.is_multimodal()) {
    auto j = detail::text_config_json(m.text, /*sparse=*/false);
    j["transformers_version"] = "4.51.3";
    return j;
  }
  const VisionConfig dv;
  const VisionConfig& v = *m.vision;
  nlohmann::json vj{{"hidden_size", v.hidden_size},
                    {"image_size", v.image_size},
                    {"intermediate_size", v.intermediate_size},
                    {"model_type", "siglip_vision_model"},
                    {"num_attention_heads", v.num_attention_heads},
                    {"num_hidden_layers", v.num_hidden_layers},
                    {"patch_size", v.patch_size},
                    {"vision_use_head", false}};
  if (v.layer_norm_eps != dv.layer_norm_eps) vj["layer_norm_eps"] = v.layer_norm_eps;
  return {{"architectures", {"Gemma3ForConditionalGeneration"}},
          {"boi_token_index", m.boi_token_index},
          {"eoi_token_index", m.eoi_token_index},
          {"eos_token_id", m.text.eos_token_ids},
          {"image_token_index", m.image_token_index},
          {"initializer_range", 0.02},
          {"mm_tokens_per_image", m.mm_tokens_per_image},
          {"model_type", "gemma3"},
          {"text_config", detail::text_config_json(m.text, /*sparse=*/true)},
          {"torch_dtype", "bfloat16"},
          {"transformers_version", "4.51.3"},
          {"vision_config", vj}};
}

}  // namespace gemma3::inline GEMMA3_MODE
