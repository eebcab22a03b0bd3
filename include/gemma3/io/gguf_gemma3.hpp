// Gemma 3 text models in GGUF, as llama.cpp's convert_hf_to_gguf.py (class Gemma3Model) writes
// them: the config from `gemma3.*` metadata, the tensor names, and the two value changes the
// converter makes.
//
//   HF (model.*)                              GGUF
//   embed_tokens.weight                       token_embd.weight
//   layers.N.input_layernorm.weight           blk.N.attn_norm.weight
//   layers.N.self_attn.{q,k,v}_proj.weight    blk.N.attn_{q,k,v}.weight
//   layers.N.self_attn.{q,k}_norm.weight      blk.N.attn_{q,k}_norm.weight
//   layers.N.self_attn.o_proj.weight          blk.N.attn_output.weight
//   layers.N.post_attention_layernorm.weight  blk.N.post_attention_norm.weight
//   layers.N.pre_feedforward_layernorm.weight blk.N.ffn_norm.weight
//   layers.N.mlp.{gate,up,down}_proj.weight   blk.N.ffn_{gate,up,down}.weight
//   layers.N.post_feedforward_layernorm.weight blk.N.post_ffw_norm.weight
//   norm.weight                               output_norm.weight
//   lm_head.weight (untied only)              output.weight
//
// Value changes: every RMSNorm weight is stored as 1 + w (the converter adds the 1 that Gemma's
// RMSNorm adds at run time), so the loader subtracts it again into f32; quantized matrices (Q8_0,
// Q4_0) are dequantized to f32 at load. Both are copies; F32, F16 and BF16 matrices stay mapped.
// Not stored in the file and fixed by llama.cpp for this architecture (its src/llama-model.cpp,
// llama_model::load_hparams, LLM_ARCH_GEMMA3): the local RoPE base (10000, unless
// `gemma3.rope.freq_base_swa` says otherwise), the local:global pattern (every 6th layer global,
// unless `gemma3.attention.sliding_window_pattern` says otherwise) and the query scale
// (hidden/heads for the 62-layer 27B, head_dim otherwise).
// Vision towers live in a separate "mmproj" GGUF, which this loader does not read.
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gemma3/config.hpp"
#include "gemma3/error.hpp"
#include "gemma3/io/gguf.hpp"
#include "gemma3/io/safetensors.hpp"
#include "gemma3/memory.hpp"
#include "gemma3/weights.hpp"

namespace gemma3::inline GEMMA3_MODE::gguf {

inline constexpr const char* kArchitecture = "gemma3";
// llama.cpp's fixed values for what gemma3 files do not store (unless the optional keys say
// otherwise).
inline constexpr double kLocalRopeBase = 10000.0;
inline constexpr int64_t kPatternPeriod = 6;  // every 6th layer global

// Per-layer names: HF suffix after `layers.N.` and GGUF suffix after `blk.N.`.
inline const std::vector<std::pair<std::string, std::string>>& layer_names() {
  static const std::vector<std::pair<std::string, std::string>> names{
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"},
      {"self_attn.k_norm.weight", "attn_k_norm.weight"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"post_attention_layernorm.weight", "post_attention_norm.weight"},
      {"pre_feedforward_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
      {"post_feedforward_layernorm.weight", "post_ffw_norm.weight"},
  };
  return names;
}

namespace detail {
// Splits "<prefix>N.<rest>" (N decimal) into N and rest; false when `name` is not of that form.
inline bool split_layer(const std::string& name, const std::string& prefix, std::string& n,
                        std::string& rest) {
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  const std::size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size()) return false;
  n = name.substr(prefix.size(), dot - prefix.size());
  rest = name.substr(dot + 1);
  return std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; });
}
}  // namespace detail

// The GGUF name of a text tensor given by its HF module and relative name (weights.hpp's list).
inline std::string gguf_name(Module m, const std::string& relative) {
  if (m == Module::LmHead) return "output.weight";
  if (m != Module::Text)
    throw InvalidArgument(relative,
                          "vision tensors go into a separate mmproj GGUF, which is not supported");
  if (relative == "embed_tokens.weight") return "token_embd.weight";
  if (relative == "norm.weight") return "output_norm.weight";
  std::string n, rest;
  if (detail::split_layer(relative, "layers.", n, rest))
    for (const auto& [hf, gg] : layer_names())
      if (rest == hf) return "blk." + n + "." + gg;
  throw InvalidArgument(relative, "has no GGUF name");
}

// The HF name (text-only scheme, `model.*`) of a GGUF tensor name; names the mapping does not know
// are returned unchanged (and then reported as unexpected by the checkpoint binder).
inline std::string hf_name(const std::string& name) {
  if (name == "token_embd.weight") return "model.embed_tokens.weight";
  if (name == "output_norm.weight") return "model.norm.weight";
  if (name == "output.weight") return "lm_head.weight";
  std::string n, rest;
  if (detail::split_layer(name, "blk.", n, rest))
    for (const auto& [hf, gg] : layer_names())
      if (rest == gg) return "model.layers." + n + "." + hf;
  return name;
}

// Converter-shifted norms: every text `*norm.weight` holds 1 + w.
inline bool is_shifted_norm(const std::string& gguf_tensor_name) {
  const std::string suffix = "norm.weight";
  return gguf_tensor_name.size() >= suffix.size() &&
         gguf_tensor_name.compare(gguf_tensor_name.size() - suffix.size(), suffix.size(), suffix) ==
             0;
}

namespace detail {
// Typed access to `gemma3.*` metadata; a wrong type or a missing required key names the key.
class Metadata {
 public:
  Metadata(const File& f) : f_(f), where_(f.path().string()) {}

  const nlohmann::json* find(const std::string& key) const {
    auto it = f_.metadata().find(key);
    return it == f_.metadata().end() || it->is_null() ? nullptr : &*it;
  }
  int64_t integer(const std::string& key, std::optional<int64_t> fallback = std::nullopt) const {
    const auto* v = find(key);
    if (!v) return required(key, fallback);
    if (!v->is_number_integer() ||
        (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX)))
      throw ConfigError(key, "expected an integer, got " + v->dump() + " (in " + where_ + ")");
    return v->get<int64_t>();
  }
  double number(const std::string& key, std::optional<double> fallback = std::nullopt) const {
    const auto* v = find(key);
    if (!v) return required(key, fallback);
    if (!v->is_number())
      throw ConfigError(key, "expected a number, got " + v->dump() + " (in " + where_ + ")");
    return v->get<double>();
  }
  std::string string(const std::string& key,
                     std::optional<std::string> fallback = std::nullopt) const {
    const auto* v = find(key);
    if (!v) return required(key, fallback);
    if (!v->is_string())
      throw ConfigError(key, "expected a string, got " + v->dump() + " (in " + where_ + ")");
    return v->get<std::string>();
  }

 private:
  template <typename T>
  T required(const std::string& key, const std::optional<T>& fallback) const {
    if (!fallback) throw ConfigError(key, "missing from the GGUF metadata of " + where_);
    return *fallback;
  }
  const File& f_;
  std::string where_;
};
}  // namespace detail

// llama.cpp's query scale for gemma3 (not stored in the file): the 27B, recognised by its 62
// layers, scales scores by (hidden / heads)^-1/2, every other size by head_dim^-1/2.
inline double llama_cpp_query_pre_attn_scalar(const TextConfig& t) {
  return t.num_hidden_layers == 62 && t.num_attention_heads > 0
             ? double(t.hidden_size / t.num_attention_heads)
             : double(t.head_dim);
}

// The ModelConfig a gemma3 GGUF describes. The vocabulary size is the embedding's row count.
inline ModelConfig config_from_gguf(const File& f) {
  const detail::Metadata md(f);
  const std::string arch = md.string("general.architecture");
  if (arch != kArchitecture)
    throw ConfigError(
        "general.architecture",
        "is '" + arch + "', expected '" + kArchitecture + "'" +
            (arch == "clip"
                 ? " (this is a vision projector, mmproj, file; open the text model's GGUF)"
                 : "") +
            " (in " + f.path().string() + ")");
  const std::string p = std::string(kArchitecture) + ".";
  ModelConfig cfg;
  cfg.model_type = "gemma3_text";
  TextConfig& t = cfg.text;
  const TensorInfo* embd = f.find("token_embd.weight");
  if (!embd || embd->shape.size() != 2)
    throw TensorError("token_embd.weight", "missing or not 2-D in " + f.path().string() +
                                               " (it gives the vocabulary size)");
  t.vocab_size = embd->shape[0];
  t.hidden_size = md.integer(p + "embedding_length");
  t.intermediate_size = md.integer(p + "feed_forward_length");
  t.num_hidden_layers = md.integer(p + "block_count");
  t.num_attention_heads = md.integer(p + "attention.head_count");
  t.num_key_value_heads = md.integer(p + "attention.head_count_kv", t.num_attention_heads);
  const int64_t default_head_dim =
      t.num_attention_heads > 0 ? t.hidden_size / t.num_attention_heads : 0;
  t.head_dim = md.integer(p + "attention.key_length", default_head_dim);
  if (md.integer(p + "attention.value_length", t.head_dim) != t.head_dim)
    throw ConfigError(
        p + "attention.value_length",
        "must equal attention.key_length (" + std::to_string(t.head_dim) + ") in Gemma 3");
  t.rms_norm_eps = md.number(p + "attention.layer_norm_rms_epsilon", 1e-6);
  t.max_position_embeddings = md.integer(p + "context_length", 131072);
  t.sliding_window = md.integer(p + "attention.sliding_window");
  t.rope_global.theta = md.number(p + "rope.freq_base", 1000000.0);
  t.rope_local.theta = md.number(p + "rope.freq_base_swa", kLocalRopeBase);
  const std::string scaling = md.string(p + "rope.scaling.type", "none");
  if (scaling == "linear")
    t.rope_global.linear_factor = md.number(p + "rope.scaling.factor");
  else if (scaling != "none")
    throw ConfigError(p + "rope.scaling.type",
                      "'" + scaling + "' is not Gemma 3's (expected linear or none)");
  if (md.find(p + "final_logit_softcapping"))
    t.final_logit_softcapping = md.number(p + "final_logit_softcapping");
  if (md.find(p + "attn_logit_softcapping"))
    t.attn_logit_softcapping = md.number(p + "attn_logit_softcapping");
  t.query_pre_attn_scalar = llama_cpp_query_pre_attn_scalar(t);
  // A config off llama.cpp's rule (a research config, say) is written with an explicit scale, which
  // llama.cpp itself ignores for gemma3 (write_gguf warns about that).
  if (md.find(p + "attention.scale")) {
    const double scale = md.number(p + "attention.scale");
    if (!(scale > 0) || !std::isfinite(scale))
      throw ConfigError(p + "attention.scale", "must be positive");
    t.query_pre_attn_scalar = 1.0 / (scale * scale);
  }
  if (t.num_hidden_layers <= 0 || t.num_hidden_layers > kMaxLayers)
    throw ConfigError(p + "block_count", "must be in [1, " + std::to_string(kMaxLayers) +
                                             "], got " + std::to_string(t.num_hidden_layers));
  const std::string pattern_key = p + "attention.sliding_window_pattern";
  if (const auto* pattern = md.find(pattern_key); pattern && pattern->is_array()) {
    // Newer files: one bool per layer, true where the layer attends within the window.
    if (int64_t(pattern->size()) != t.num_hidden_layers)
      throw ConfigError(pattern_key, "has " + std::to_string(pattern->size()) +
                                         " entries, expected block_count = " +
                                         std::to_string(t.num_hidden_layers));
    for (const auto& local : *pattern) {
      if (!local.is_boolean())
        throw ConfigError(pattern_key, "expected booleans, got " + local.dump());
      t.layer_types.push_back(local.get<bool>() ? LayerKind::Local : LayerKind::Global);
    }
  } else {
    const int64_t period = md.integer(pattern_key, kPatternPeriod);
    if (period <= 0)
      throw ConfigError(pattern_key, "must be positive, got " + std::to_string(period));
    t.layer_types = layer_types_from_pattern(t.num_hidden_layers, period);
  }
  t.tie_word_embeddings = f.find("output.weight") == nullptr;
  t.bos_token_id = md.integer("tokenizer.ggml.bos_token_id", 2);
  t.pad_token_id = md.integer("tokenizer.ggml.padding_token_id", 0);
  t.eos_token_ids = {md.integer("tokenizer.ggml.eos_token_id", 1)};
  if (md.find("tokenizer.ggml.eot_token_id"))
    t.eos_token_ids.push_back(md.integer("tokenizer.ggml.eot_token_id"));
  validate(cfg);
  return cfg;
}

// A gemma3 GGUF's tensors under their HF names (`model.*`), ready for Checkpoint's binder. Views of
// F32/F16/BF16 matrices point into the mapping; shifted norms and dequantized matrices into f32
// buffers this object owns. Each view's name is the GGUF name, so errors name what the file says.
class Tensors {
 public:
  explicit Tensors(const std::filesystem::path& path, Residency residency = Residency::Mapped,
                   const Progress& progress = {})
      : file_(path, residency, progress) {
    // Dequantized matrices are f32 copies: their size is checked before any is made.
    int64_t copies = 0;
    for (const auto& t : file_.tensors()) {
      const auto type = static_cast<TensorType>(t.type);
      if (type == TensorType::Q8_0 || type == TensorType::Q4_0 || is_shifted_norm(t.name))
        copies += num_elements(t.shape) * int64_t(sizeof(float));
    }
    if (const int64_t available = gemma3::detail::available_memory_bytes();
        available >= 0 && copies > available)
      throw IoError(path.string(),
                    "its Q8_0/Q4_0 matrices are dequantized to f32 here, which needs " +
                        gemma3::detail::gib(copies) + "; only " + gemma3::detail::gib(available) +
                        " of memory is available");
    for (const auto& t : file_.tensors()) {
      TensorView v{.name = t.name, .dtype = DType::F32, .shape = t.shape, .data = t.data};
      const auto type = static_cast<TensorType>(t.type);
      const bool quantized = type == TensorType::Q8_0 || type == TensorType::Q4_0;
      if (!quantized)
        v.dtype = type == TensorType::F32   ? DType::F32
                  : type == TensorType::F16 ? DType::F16
                                            : DType::BF16;
      const bool shift = is_shifted_norm(t.name);
      if (quantized || shift) {
        std::vector<float>* allocated = nullptr;
        try {
          allocated = &owned_.emplace_back(std::size_t(v.numel()));
        } catch (const std::bad_alloc&) {
          throw IoError(path.string(), "out of memory dequantizing tensor '" + t.name + "' (" +
                                           gemma3::detail::gib(v.numel() * int64_t(sizeof(float))) +
                                           ")");
        }
        auto& buffer = *allocated;
        if (quantized) {
          const uint64_t blocks = buffer.size() / 32, block_bytes = block_layout(t.type)->bytes;
          for (uint64_t b = 0; b < blocks; ++b)
            dequantize_block(type, t.data + b * block_bytes, buffer.data() + 32 * b);
        } else {
          for (std::size_t i = 0; i < buffer.size(); ++i) buffer[i] = v.at<float>(int64_t(i));
        }
        if (shift)
          for (float& x : buffer) x -= 1.0f;
        v.dtype = DType::F32;
        v.data = reinterpret_cast<const std::byte*>(buffer.data());
      }
      views_.emplace(hf_name(t.name), std::move(v));
    }
  }
  const File& file() const { return file_; }
  const std::map<std::string, TensorView>& views() const { return views_; }

 private:
  File file_;
  std::vector<std::vector<float>> owned_;
  std::map<std::string, TensorView> views_;
};

// Which type the matrices of a written GGUF get; 1-D tensors (the norms) are always F32, as
// llama.cpp writes them.
inline std::optional<TensorType> parse_tensor_type(const std::string& s) {
  if (s == "f32") return TensorType::F32;
  if (s == "f16") return TensorType::F16;
  if (s == "bf16") return TensorType::BF16;
  if (s == "q8_0") return TensorType::Q8_0;
  if (s == "q4_0") return TensorType::Q4_0;
  return std::nullopt;
}

// Writes the text model of `cfg` / `weights` as a llama.cpp-style gemma3 GGUF (names, 1 + w norms,
// the metadata keys of llama.cpp's convert_hf_to_gguf.py, Gemma3Model). The result loads here;
// llama.cpp also needs tokenizer.ggml.* metadata, which this writer does not add. Configs that
// llama.cpp cannot express are written with keys it ignores: `attention.scale` when
// query_pre_attn_scalar is off its rule, and a per-layer `attention.sliding_window_pattern` when
// the layer kinds are not every 6th global.
inline void write_gguf(const ModelConfig& cfg, const ModelWeights& weights,
                       const std::filesystem::path& path, TensorType matrix_type,
                       const Progress& progress = {}) {
  const TextConfig& t = cfg.text;
  const std::string p = std::string(kArchitecture) + ".";
  Writer out;
  out.set("general.architecture", ValueType::String, kArchitecture);
  out.set(p + "context_length", ValueType::U32, t.max_position_embeddings);
  out.set(p + "embedding_length", ValueType::U32, t.hidden_size);
  out.set(p + "block_count", ValueType::U32, t.num_hidden_layers);
  out.set(p + "feed_forward_length", ValueType::U32, t.intermediate_size);
  out.set(p + "attention.head_count", ValueType::U32, t.num_attention_heads);
  out.set(p + "attention.head_count_kv", ValueType::U32, t.num_key_value_heads);
  out.set(p + "attention.key_length", ValueType::U32, t.head_dim);
  out.set(p + "attention.value_length", ValueType::U32, t.head_dim);
  out.set(p + "attention.layer_norm_rms_epsilon", ValueType::F32, t.rms_norm_eps);
  out.set(p + "attention.sliding_window", ValueType::U32, t.sliding_window);
  out.set(p + "rope.freq_base", ValueType::F32, t.rope_global.theta);
  if (t.rope_local.theta != kLocalRopeBase)
    out.set(p + "rope.freq_base_swa", ValueType::F32, t.rope_local.theta);
  if (t.rope_global.linear_factor != 1.0) {
    out.set(p + "rope.scaling.type", ValueType::String, "linear");
    out.set(p + "rope.scaling.factor", ValueType::F32, t.rope_global.linear_factor);
  }
  if (t.query_pre_attn_scalar != llama_cpp_query_pre_attn_scalar(t))
    out.set(p + "attention.scale", ValueType::F32, 1.0 / std::sqrt(t.query_pre_attn_scalar));
  if (t.final_logit_softcapping)
    out.set(p + "final_logit_softcapping", ValueType::F32, *t.final_logit_softcapping);
  if (t.attn_logit_softcapping)
    out.set(p + "attn_logit_softcapping", ValueType::F32, *t.attn_logit_softcapping);
  if (t.layer_types != layer_types_from_pattern(t.num_hidden_layers, kPatternPeriod)) {
    nlohmann::json local = nlohmann::json::array();
    for (const auto k : t.layer_types) local.push_back(k == LayerKind::Local);
    out.set_array(p + "attention.sliding_window_pattern", ValueType::Bool, local);
  }
  out.set("tokenizer.ggml.bos_token_id", ValueType::U32, t.bos_token_id);
  out.set("tokenizer.ggml.padding_token_id", ValueType::U32, t.pad_token_id);
  out.set("tokenizer.ggml.eos_token_id", ValueType::U32, t.eos_token_ids.at(0));
  if (t.eos_token_ids.size() > 1)
    out.set("tokenizer.ggml.eot_token_id", ValueType::U32, t.eos_token_ids[1]);

  ModelConfig text_only = cfg;
  text_only.vision.reset();
  ModelWeights w =
      weights;  // (for_each_tensor visits mutable slots; these are views, cheap to copy)
  for_each_tensor(
      text_only, w,
      [&](Module m, const std::string& rel, TensorView& view, const Shape& shape, Init) {
        const std::string name = gguf_name(m, rel);
        TensorType type = shape.size() == 1 ? TensorType::F32 : matrix_type;
        if ((type == TensorType::Q8_0 || type == TensorType::Q4_0) && shape.back() % 32 != 0)
          type = TensorType::F16;
        // Converted when written: one tensor's f32 copy at a time, never the whole model's.
        out.add(name, shape, type, [name, view, n = num_elements(shape), type] {
          std::vector<float> x(static_cast<std::size_t>(n));
          for (int64_t i = 0; i < n; ++i) x[std::size_t(i)] = view.at<float>(i);
          if (is_shifted_norm(name))
            for (float& v : x) v += 1.0f;
          const auto layout = *block_layout(uint32_t(type));
          std::vector<std::byte> bytes(std::size_t(n) / layout.elements * layout.bytes);
          for (int64_t i = 0; i < n; i += int64_t(layout.elements)) {
            std::byte* dst = bytes.data() + std::size_t(i) / layout.elements * layout.bytes;
            switch (type) {
              case TensorType::F32:
                std::memcpy(dst, &x[std::size_t(i)], 4);
                break;
              case TensorType::F16: {
                const Eigen::half h(x[std::size_t(i)]);
                std::memcpy(dst, &h, 2);
                break;
              }
              case TensorType::BF16: {
                const uint16_t b = float_to_bf16(x[std::size_t(i)]);
                std::memcpy(dst, &b, 2);
                break;
              }
              case TensorType::Q8_0:
              case TensorType::Q4_0:
                quantize_block(type, &x[std::size_t(i)], dst);
                break;
            }
          }
          return bytes;
        });
      });
  out.write(path, progress);
}

}  // namespace gemma3::inline GEMMA3_MODE::gguf
