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
// RMSNorm adds at run time), so the loader subtracts it again into f32 (a small copy). Matrices
// stay mapped as stored, block-quantized ones included (quant.hpp).
// Not stored in the file and fixed by llama.cpp for this architecture (its src/llama-model.cpp,
// llama_model::load_hparams, LLM_ARCH_GEMMA3): the local RoPE base (10000, unless
// `gemma3.rope.freq_base_swa` says otherwise), the local:global pattern (every 6th layer global,
// unless `gemma3.attention.sliding_window_pattern` says otherwise) and the query scale
// (hidden/heads for the 62-layer 27B, head_dim otherwise).
// Vision towers live in a separate "mmproj" GGUF: io/gguf_mmproj.hpp.
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <omp.h>

#include "gemma3/config.hpp"
#include "gemma3/error.hpp"
#include "gemma3/io/gguf.hpp"
#include "gemma3/io/gguf_tokenizer.hpp"
#include "gemma3/io/safetensors.hpp"
#include "gemma3/quant.hpp"
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
    throw InvalidArgument(
        relative, "is a vision tensor: it goes into the separate mmproj GGUF (mmproj_name)");
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
// matrices point into the mapping, quantized ones too (they stay quantized: quant.hpp, and the
// fused kernels multiply them as they are, or interleaved: below); the shifted norms into f32
// buffers this object owns.
// Each view's name is the GGUF name, so errors name what the file says.
//
// With `interleave` (for Residency::HugePages only: the copy is the model's own memory), the
// matrices of the types the int8 decode kernel reads in panels (quant::interleavable) get their
// rows interleaved in place (quant::interleave_panel), and their views say so.
class Tensors {
 public:
  explicit Tensors(const std::filesystem::path& path, Residency residency = Residency::Mapped,
                   const Progress& progress = {}, bool interleave = false)
      : file_(path, residency, progress) {
    for (const auto& t : file_.tensors()) {
      TensorView v{.name = t.name, .dtype = *dtype_of(t.type), .shape = t.shape, .data = t.data};
      if (is_shifted_norm(t.name)) {  // 1 + w back to w: a small f32 copy
        auto& buffer = owned_.emplace_back(std::size_t(v.numel()));
        for (std::size_t i = 0; i < buffer.size(); ++i) buffer[i] = v.at<float>(int64_t(i)) - 1.0f;
        v.dtype = DType::F32;
        v.data = reinterpret_cast<const std::byte*>(buffer.data());
      }
      views_.emplace(hf_name(t.name), std::move(v));
    }
    if (interleave) interleave_matrices();
  }
  const File& file() const { return file_; }
  const std::map<std::string, TensorView>& views() const { return views_; }

 private:
  void interleave_matrices() {
    std::vector<TensorView*> matrices;
    for (auto& [name, v] : views_)
      if (v.shape.size() == 2 && is_quantized(v.dtype) &&
          quant::interleavable(quant_type(v.dtype)) && v.rows() >= quant::kPanelRows)
        matrices.push_back(&v);
    file_.edit([&](const auto& writable) {
      for (TensorView* v : matrices) {
        const quant::Type type = quant_type(v->dtype);
        const int64_t stride = row_bytes(v->dtype, v->cols());
        const int64_t panels = quant::interleaved_rows(v->rows()) / quant::kPanelRows;
        std::byte* data = writable(v->data);
        // A panel's rows copied out, then written back interleaved: one copy per thread, made
        // here (an allocation failing inside the parallel region could not be reported).
        const int64_t panel_bytes = quant::kPanelRows * stride;
        std::vector<std::byte> scratch(std::size_t(omp_get_max_threads() * panel_bytes));
#pragma omp parallel for
        for (int64_t p = 0; p < panels; ++p) {
          std::byte* rows = scratch.data() + omp_get_thread_num() * panel_bytes;
          std::byte* panel = data + p * panel_bytes;
          std::memcpy(rows, panel, std::size_t(panel_bytes));
          quant::interleave_panel(type, rows, v->cols(), panel);
        }
        v->interleaved = true;
      }
    });
  }

  File file_;
  std::vector<std::vector<float>> owned_;
  std::map<std::string, TensorView> views_;
};

// What a written GGUF's matrices become: llama.cpp's file types (llama_ftype, stored as
// `general.file_type`). The plain ones give every matrix one type; Q4_K_M and Q5_K_M mix types per
// tensor as llama-quantize does (llama_tensor_get_type): the embedding/LM head in Q6_K, and the
// value and down projections of the first and last eighth of the layers and of every third layer
// between in Q6_K (the ones llama.cpp's use_more_bits picks), everything else in Q4_K or Q5_K.
// 1-D tensors (the norms) are always F32, as llama.cpp writes them.
enum class FileType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q8_0 = 7,
  Q5_0 = 8,
  Q5_1 = 9,
  Q4_K_M = 15,
  Q5_K_M = 17,
  Q6_K = 18,
  BF16 = 32,
};

// Each file type's name (as `--type` takes it) and its matrices' type (Q4_K_M and Q5_K_M: the
// type of most of them).
struct FileTypeInfo {
  std::string name;
  FileType type;
  TensorType matrices;
};
inline const std::vector<FileTypeInfo>& file_types() {
  static const std::vector<FileTypeInfo> types{{"f32", FileType::F32, TensorType::F32},
                                               {"f16", FileType::F16, TensorType::F16},
                                               {"bf16", FileType::BF16, TensorType::BF16},
                                               {"q8_0", FileType::Q8_0, TensorType::Q8_0},
                                               {"q4_0", FileType::Q4_0, TensorType::Q4_0},
                                               {"q4_1", FileType::Q4_1, TensorType::Q4_1},
                                               {"q5_0", FileType::Q5_0, TensorType::Q5_0},
                                               {"q5_1", FileType::Q5_1, TensorType::Q5_1},
                                               {"q4_k_m", FileType::Q4_K_M, TensorType::Q4_K},
                                               {"q5_k_m", FileType::Q5_K_M, TensorType::Q5_K},
                                               {"q6_k", FileType::Q6_K, TensorType::Q6_K}};
  return types;
}
inline const FileTypeInfo& file_type_info(FileType ft) {
  for (const auto& info : file_types())
    if (info.type == ft) return info;
  throw InvalidArgument("file type", std::to_string(uint32_t(ft)) + " is not written here");
}
inline std::optional<FileType> parse_file_type(const std::string& s) {
  for (const auto& info : file_types())
    if (s == info.name) return info.type;
  return std::nullopt;
}

// The file type whose every matrix is `t` (the older way to ask for one type).
inline FileType uniform_file_type(TensorType t) {
  for (const auto& info : file_types())
    if (info.matrices == t && info.type != FileType::Q4_K_M && info.type != FileType::Q5_K_M)
      return info.type;
  throw InvalidArgument("tensor type", type_name(uint32_t(t)) +
                                           " is written only within the q4_k_m and q5_k_m "
                                           "file types");
}

// The type tensor `name` (GGUF name, of `shape`, in a model of `layers` layers) gets in a file of
// type `ft`. Rows that are not whole blocks fall back as llama.cpp's do: a K-quant whose rows are
// not multiples of 256 to Q5_0 (Q4_K), Q5_1 (Q5_K) or Q8_0 (Q6_K), and any quantized type whose
// rows are not multiples of 32 to F16.
inline TensorType tensor_type_for(FileType ft, const std::string& name, const Shape& shape,
                                  int64_t layers) {
  if (shape.size() == 1) return TensorType::F32;
  TensorType t = file_type_info(ft).matrices;
  if (ft == FileType::Q4_K_M || ft == FileType::Q5_K_M) {
    std::string n, rest;
    const bool in_layer = detail::split_layer(name, "blk.", n, rest);
    const int64_t layer = in_layer ? std::stoll(n) : 0;
    const bool more_bits =
        layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;
    if (name == "token_embd.weight" || name == "output.weight" ||
        (in_layer && (rest == "attn_v.weight" || rest == "ffn_down.weight") && more_bits))
      t = TensorType::Q6_K;
  }
  const int64_t row = shape.back();
  if (row % 256 != 0) {
    if (t == TensorType::Q4_K) t = TensorType::Q5_0;
    if (t == TensorType::Q5_K) t = TensorType::Q5_1;
    if (t == TensorType::Q6_K) t = TensorType::Q8_0;
  }
  if (row % 32 != 0) t = TensorType::F16;
  return t;
}

// A tensor's values a row at a time, in order: each call writes the next row.
using NextRow = std::function<void(float* row)>;

// The bytes of a [rows, cols] tensor encoded as `type`, its rows taken from `next_row` one at a
// time (one row's f32 copy at a time); with `shift`, 1 is added first (the converter's 1 + w
// norms).
inline std::vector<std::byte> encode_rows(int64_t rows, int64_t cols, TensorType type, bool shift,
                                          const NextRow& next_row) {
  const DType d = *dtype_of(uint32_t(type));
  const int64_t stride = row_bytes(d, cols);
  std::vector<std::byte> bytes(std::size_t(rows * stride));
  std::vector<float> row(static_cast<std::size_t>(cols));
  float* x = row.data();
  for (int64_t r = 0; r < rows; ++r) {
    next_row(x);
    if (shift)
      for (float& v : row) v += 1.0f;
    std::byte* dst = bytes.data() + r * stride;
    if (is_quantized(d)) {
      quant::quantize(quant_type(d), x, cols, dst);
      continue;
    }
    for (int64_t i = 0; i < cols; ++i)
      if (d == DType::F32) {
        std::memcpy(dst + 4 * i, &x[i], 4);
      } else if (d == DType::F16) {
        const Eigen::half h(x[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      } else {
        const uint16_t b = float_to_bf16(x[i]);
        std::memcpy(dst + 2 * i, &b, 2);
      }
  }
  return bytes;
}

// The rows of a checkpoint tensor (any dtype, decoded).
inline NextRow rows_of(const TensorView& view) {
  return [view, r = int64_t(0)](float* out) mutable {
    const Mat<float> row = view.rows_as<float>(r++, 1);
    std::copy(row.data(), row.data() + row.size(), out);
  };
}

// The bytes of `view` (any dtype) encoded as `type`.
inline std::vector<std::byte> encode_tensor(const TensorView& view, TensorType type, bool shift) {
  return encode_rows(view.rows(), view.cols(), type, shift, rows_of(view));
}

// Where write_gguf takes a tensor's values from, when not from the weights' views (synth): given
// the tensor (its module, relative name, shape and initialisation), its rows.
using RowSource = std::function<NextRow(Module, const std::string& relative, const Shape&, Init)>;

// gguf-py's size label (utility.model_weight_count_rounded_notation): the parameter count in K, M,
// B or T with at least two significant digits, "453K", "1.0B", "27B".
inline std::string size_label(int64_t params) {
  const double n = double(params);
  const auto [scale, suffix] = n > 1e12  ? std::pair{1e-12, "T"}
                               : n > 1e9 ? std::pair{1e-9, "B"}
                               : n > 1e6 ? std::pair{1e-6, "M"}
                                         : std::pair{1e-3, "K"};
  const double scaled = n * scale;
  // Python's round() (ties to even, as nearbyint in the default rounding mode), then the digits of
  // the integer part without leading zeros.
  std::string integer = std::to_string(int64_t(std::nearbyint(scaled)));
  integer.erase(0, integer.find_first_not_of('0') == std::string::npos
                       ? integer.size()
                       : integer.find_first_not_of('0'));
  const int decimals = std::max(2 - int(integer.size()), 0);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f%s", decimals, scaled, suffix);
  return buf;
}

// What write_gguf writes besides the weights and the config.
struct WriteOptions {
  // general.name. llama.cpp's converter takes it from the model directory's name.
  std::string name{};
  // The tokenizer.model, written as tokenizer.ggml.* metadata (llama.cpp refuses a gemma3 GGUF
  // without one), and the HF tokenizer_config.json beside it (null if none): the added tokens'
  // types, add_bos_token and the chat template. See io/gguf_tokenizer.hpp.
  std::optional<spm::ModelProto> tokenizer{};
  nlohmann::json tokenizer_config = nullptr;
};

// Writes the text model of `cfg` / `weights` as a llama.cpp-style gemma3 GGUF (names, 1 + w norms,
// and the metadata keys of llama.cpp's convert_hf_to_gguf.py, Gemma3Model, in its order; with
// `options.tokenizer`, the tokenizer too, and then llama.cpp loads the file). Configs that
// llama.cpp cannot express are written with keys it ignores: `attention.scale` when
// query_pre_attn_scalar is off its rule, and a per-layer `attention.sliding_window_pattern` when
// the layer kinds are not every 6th global.
//
// The values come from `weights`, or, with `source`, from it (weights may then be empty).
inline void write_gguf(const ModelConfig& cfg, const ModelWeights& weights,
                       const std::filesystem::path& path, FileType file_type,
                       const Progress& progress = {}, const WriteOptions& options = {},
                       const RowSource& source = {}) {
  const TextConfig& t = cfg.text;
  const std::string p = std::string(kArchitecture) + ".";
  int64_t parameters = 0;  // of the tensors written: the text model
  {
    ModelConfig text_config = cfg;
    text_config.vision.reset();
    ModelWeights slots;
    for_each_tensor(text_config, slots,
                    [&](Module, const std::string&, TensorView&, const Shape& shape, Init) {
                      parameters += num_elements(shape);
                    });
  }
  Writer out;
  out.set("general.architecture", ValueType::String, kArchitecture);
  out.set("general.type", ValueType::String, "model");
  if (!options.name.empty()) out.set("general.name", ValueType::String, options.name);
  out.set("general.size_label", ValueType::String, size_label(parameters));
  out.set(p + "block_count", ValueType::U32, t.num_hidden_layers);
  out.set(p + "context_length", ValueType::U32, t.max_position_embeddings);
  out.set(p + "embedding_length", ValueType::U32, t.hidden_size);
  out.set(p + "feed_forward_length", ValueType::U32, t.intermediate_size);
  out.set(p + "attention.head_count", ValueType::U32, t.num_attention_heads);
  out.set(p + "attention.head_count_kv", ValueType::U32, t.num_key_value_heads);
  if (t.rope_global.linear_factor != 1.0) {
    out.set(p + "rope.scaling.type", ValueType::String, "linear");
    out.set(p + "rope.scaling.factor", ValueType::F32, t.rope_global.linear_factor);
  }
  out.set(p + "rope.freq_base", ValueType::F32, t.rope_global.theta);
  out.set(p + "rope.freq_base_swa", ValueType::F32, t.rope_local.theta);
  out.set(p + "attention.layer_norm_rms_epsilon", ValueType::F32, t.rms_norm_eps);
  out.set(p + "attention.key_length", ValueType::U32, t.head_dim);
  out.set(p + "attention.value_length", ValueType::U32, t.head_dim);
  out.set("general.file_type", ValueType::U32, uint32_t(file_type));
  out.set(p + "attention.sliding_window", ValueType::U32, t.sliding_window);
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
  out.set("general.quantization_version", ValueType::U32, 2);  // ggml's GGML_QNT_VERSION
  write_tokenizer_metadata(out, t, options.tokenizer ? &*options.tokenizer : nullptr,
                           options.tokenizer_config);

  ModelConfig text_only = cfg;
  text_only.vision.reset();
  ModelWeights w =
      weights;  // (for_each_tensor visits mutable slots; these are views, cheap to copy)
  for_each_tensor(
      text_only, w,
      [&](Module m, const std::string& rel, TensorView& view, const Shape& shape, Init init) {
        const std::string name = gguf_name(m, rel);
        const TensorType type =
            tensor_type_for(file_type, name, shape, text_only.text.num_hidden_layers);
        const int64_t rows = shape.size() == 1 ? 1 : shape.front();
        const int64_t cols = num_elements(shape) / rows;
        // Encoded when written: one tensor at a time, never the whole model.
        out.add(name, shape, type, [=, shift = is_shifted_norm(name), view = view] {
          return encode_rows(rows, cols, type, shift,
                             source ? source(m, rel, shape, init) : rows_of(view));
        });
      });
  out.write(path, progress);
}

// The same with every matrix of type `matrix_type` (where its rows allow).
inline void write_gguf(const ModelConfig& cfg, const ModelWeights& weights,
                       const std::filesystem::path& path, TensorType matrix_type,
                       const Progress& progress = {}, const WriteOptions& options = {}) {
  write_gguf(cfg, weights, path, uniform_file_type(matrix_type), progress, options);
}

}  // namespace gemma3::inline GEMMA3_MODE::gguf
