// Gemma 3 vision towers in llama.cpp "mmproj" GGUF files: the SigLIP tower and the multimodal
// projector, which llama.cpp keeps in a file of their own beside the text model's GGUF, as its
// convert_hf_to_gguf.py (`--mmproj`, classes MmprojModel and Gemma3VisionModel) writes them and its
// tools/mtmd/clip.cpp reads them (projector type "gemma3", graph in tools/mtmd/models/siglip.cpp).
//
//   HF (vision_tower.vision_model.* / multi_modal_projector.*)   GGUF
//   embeddings.patch_embedding.{weight,bias}                    v.patch_embd.{weight,bias}
//   embeddings.position_embedding.weight                        v.position_embd.weight
//   encoder.layers.N.layer_norm1.{weight,bias}                  v.blk.N.ln1.{weight,bias}
//   encoder.layers.N.self_attn.{q,k,v}_proj.{weight,bias}       v.blk.N.attn_{q,k,v}.{weight,bias}
//   encoder.layers.N.self_attn.out_proj.{weight,bias}           v.blk.N.attn_out.{weight,bias}
//   encoder.layers.N.layer_norm2.{weight,bias}                  v.blk.N.ln2.{weight,bias}
//   encoder.layers.N.mlp.fc1.{weight,bias}                      v.blk.N.ffn_up.{weight,bias}
//   encoder.layers.N.mlp.fc2.{weight,bias}                      v.blk.N.ffn_down.{weight,bias}
//   post_layernorm.{weight,bias}                                v.post_ln.{weight,bias}
//   mm_soft_emb_norm.weight (projector)                         mm.soft_emb_norm.weight
//   mm_input_projection_weight (projector)                      mm.input_projection.weight
//
// Value changes (measured on tests/data/gguf/mm-tiny-a.mmproj.llamacpp-f32.gguf against the
// safetensors it came from): only mm.soft_emb_norm.weight, the projector's Gemma RMSNorm, is stored
// as 1 + w (the converter adds the 1; the SigLIP LayerNorms are stored as they are), so the loader
// subtracts it again into a small f32 copy. Every other tensor holds the HF values in the HF
// layout: the patch embedding stays the Conv2d's [vh, 3, p, p] (ggml ne = [p, p, 3, vh]), the
// position embedding [P², vh], and the projection [vh, hidden] in x out, not transposed (clip.cpp
// transposes it when it multiplies). Types: `.embeddings.` tensors (patch and position embedding)
// are always F32 and the projection always F16, whatever the output type; 1-D tensors are F32; the
// other matrices take the output type (F32, F16, BF16 or Q8_0, with F16 for rows that are not whole
// Q8_0 blocks, as the converter falls back).
//
// Config: the clip.vision.* keys give the tower's sizes, clip.vision.projection_dim the text
// model's hidden size, clip.vision.image_mean / image_std the preprocessor's normalisation. The
// number of soft tokens per image is not stored: clip.cpp pools the P x P patch grid with a fixed
// kernel of 4 (its n_merge for PROJECTOR_TYPE_GEMMA3), unless clip.vision.projector.scale_factor
// says otherwise (written only for test models whose grid is not 4 x 16), so it is (P / 4)².
// Neither file stores the ids of <start_of_image>, <end_of_image> and <image_soft_token> (llama.cpp
// finds the markers by their text and inserts the image embeddings directly): they are looked up
// in the text GGUF's vocabulary, else taken from the published config.
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "gemma3/config.hpp"
#include "gemma3/error.hpp"
#include "gemma3/io/gguf.hpp"
#include "gemma3/io/gguf_gemma3.hpp"
#include "gemma3/weights.hpp"

namespace gemma3::inline GEMMA3_MODE::gguf {

inline constexpr const char* kMmprojArchitecture = "clip";
inline constexpr const char* kGemma3ProjectorType = "gemma3";
// clip.cpp's n_merge for gemma3: the side of the average-pooling window (64 x 64 patches -> 16 x 16
// soft tokens for the published models).
inline constexpr int64_t kDefaultMergeFactor = 4;
// The HF prefixes the Checkpoint binder looks the vision tensors up under (hf_names.hpp).
inline constexpr const char* kVisionPrefix = "vision_tower.vision_model.";
inline constexpr const char* kProjectorPrefix = "multi_modal_projector.";

// Per-layer names: HF suffix after `encoder.layers.N.` and GGUF suffix after `v.blk.N.`.
inline const std::vector<std::pair<std::string, std::string>>& vision_layer_names() {
  static const std::vector<std::pair<std::string, std::string>> names{
      {"layer_norm1.weight", "ln1.weight"},
      {"layer_norm1.bias", "ln1.bias"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.out_proj.weight", "attn_out.weight"},
      {"self_attn.out_proj.bias", "attn_out.bias"},
      {"layer_norm2.weight", "ln2.weight"},
      {"layer_norm2.bias", "ln2.bias"},
      {"mlp.fc1.weight", "ffn_up.weight"},
      {"mlp.fc1.bias", "ffn_up.bias"},
      {"mlp.fc2.weight", "ffn_down.weight"},
      {"mlp.fc2.bias", "ffn_down.bias"},
  };
  return names;
}

// The tensors outside the layers: module, HF name relative to its prefix, GGUF name.
struct MmprojName {
  Module module;
  std::string hf, gguf;
};
inline const std::vector<MmprojName>& mmproj_names() {
  static const std::vector<MmprojName> names{
      {Module::Vision, "embeddings.patch_embedding.weight", "v.patch_embd.weight"},
      {Module::Vision, "embeddings.patch_embedding.bias", "v.patch_embd.bias"},
      {Module::Vision, "embeddings.position_embedding.weight", "v.position_embd.weight"},
      {Module::Vision, "post_layernorm.weight", "v.post_ln.weight"},
      {Module::Vision, "post_layernorm.bias", "v.post_ln.bias"},
      {Module::Projector, "mm_soft_emb_norm.weight", "mm.soft_emb_norm.weight"},
      {Module::Projector, "mm_input_projection_weight", "mm.input_projection.weight"},
  };
  return names;
}

// The GGUF name of a vision or projector tensor given by its module and relative name (the list of
// weights.hpp).
inline std::string mmproj_name(Module m, const std::string& relative) {
  if (m != Module::Vision && m != Module::Projector)
    throw InvalidArgument(relative, "is a text tensor: it goes into the text model's GGUF");
  for (const auto& n : mmproj_names())
    if (n.module == m && n.hf == relative) return n.gguf;
  std::string layer, rest;
  if (m == Module::Vision && detail::split_layer(relative, "encoder.layers.", layer, rest))
    for (const auto& [hf, gg] : vision_layer_names())
      if (rest == hf) return "v.blk." + layer + "." + gg;
  throw InvalidArgument(relative, "has no mmproj GGUF name");
}

// The full HF name (`vision_tower.vision_model.*`, `multi_modal_projector.*`) of an mmproj tensor
// name; names the mapping does not know are returned unchanged (and then reported as unexpected by
// the checkpoint binder).
inline std::string mmproj_hf_name(const std::string& name) {
  for (const auto& n : mmproj_names())
    if (n.gguf == name)
      return (n.module == Module::Vision ? kVisionPrefix : kProjectorPrefix) + n.hf;
  std::string layer, rest;
  if (detail::split_layer(name, "v.blk.", layer, rest))
    for (const auto& [hf, gg] : vision_layer_names())
      if (rest == gg) return kVisionPrefix + ("encoder.layers." + layer + ".") + hf;
  return name;
}

// The one converter-shifted norm of an mmproj file: the projector's Gemma RMSNorm holds 1 + w.
inline bool is_shifted_mmproj_norm(const std::string& gguf_tensor_name) {
  return gguf_tensor_name == "mm.soft_emb_norm.weight";
}

// A float32 metadata value as the decimal it was written from: the shortest decimal that rounds to
// the same float (as Python prints a numpy float32), so that a layer_norm_eps of 1e-6, stored as
// the float 9.99999997e-07, reads as the config's 1e-6 again.
inline double f32_decimal(double stored) {
  const float f = float(stored);
  char buf[32];
  for (int digits = 1; digits <= 9; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, double(f));
    if (std::strtof(buf, nullptr) == f) return std::strtod(buf, nullptr);
  }
  return stored;
}

// What an mmproj file says about the tower and the projector.
struct MmprojConfig {
  VisionConfig vision;
  int64_t projection_dim = 0;                       // the text model's hidden size
  int64_t merge_factor = kDefaultMergeFactor;       // side of the average-pooling window
  std::array<double, 3> image_mean{0.5, 0.5, 0.5};  // the preprocessor's normalisation
  std::array<double, 3> image_std{0.5, 0.5, 0.5};

  // Soft tokens per image: the pooled grid, (P / merge_factor)².
  int64_t mm_tokens_per_image() const {
    const int64_t side = vision.patches_per_side() / merge_factor;
    return side * side;
  }
};

// The MmprojConfig of a Gemma 3 mmproj file. Errors name the key and the file.
inline MmprojConfig mmproj_config(const File& f) {
  const detail::Metadata md(f);
  const std::string where = f.path().string();
  const std::string arch = md.string("general.architecture");
  if (arch != kMmprojArchitecture)
    throw ConfigError(
        "general.architecture",
        "is '" + arch + "', expected '" + kMmprojArchitecture + "' in a vision " +
            "projector (mmproj) file" +
            (arch == kArchitecture ? " (this is a text model: give it as the model, and the mmproj "
                                     "file beside it)"
                                   : "") +
            " (in " + where + ")");
  auto require_true = [&](const std::string& key, const std::string& why) {
    const auto* v = md.find(key);
    if (v && (!v->is_boolean() || !v->get<bool>()))
      throw ConfigError(key, "is " + v->dump() + ", expected true: " + why + " (in " + where + ")");
  };
  require_true("clip.has_vision_encoder", "the file must hold a vision tower");
  const std::string projector = md.string("clip.projector_type");
  if (projector != kGemma3ProjectorType)
    throw ConfigError("clip.projector_type",
                      "is '" + projector + "', expected '" + kGemma3ProjectorType +
                          "' (only Gemma 3's vision projector is read) (in " + where + ")");
  // clip.cpp runs the MLP with GELU (tanh approximation) only when this is true: SigLIP's
  // gelu_pytorch_tanh.
  require_true("clip.use_gelu", "Gemma 3's SigLIP uses gelu_pytorch_tanh");

  MmprojConfig c;
  VisionConfig& v = c.vision;
  const std::string p = "clip.vision.";
  v.image_size = md.integer(p + "image_size");
  v.patch_size = md.integer(p + "patch_size");
  v.hidden_size = md.integer(p + "embedding_length");
  v.intermediate_size = md.integer(p + "feed_forward_length");
  v.num_hidden_layers = md.integer(p + "block_count");
  v.num_attention_heads = md.integer(p + "attention.head_count");
  v.layer_norm_eps = md.number(p + "attention.layer_norm_epsilon", 1e-6);
  if (f.type_of(p + "attention.layer_norm_epsilon") == ValueType::F32)
    v.layer_norm_eps = f32_decimal(v.layer_norm_eps);
  c.projection_dim = md.integer(p + "projection_dim");
  c.merge_factor = md.integer(p + "projector.scale_factor", kDefaultMergeFactor);
  for (auto [key, values] :
       {std::pair{p + "image_mean", &c.image_mean}, std::pair{p + "image_std", &c.image_std}}) {
    const auto* a = md.find(key);
    if (!a) continue;  // (the converter always writes them; HF's defaults otherwise)
    if (!a->is_array() || a->size() != 3 ||
        !std::all_of(a->begin(), a->end(), [](const auto& x) { return x.is_number(); }))
      throw ConfigError(key,
                        "expected 3 numbers (R, G, B), got " + a->dump() + " (in " + where + ")");
    const bool f32 = f.array_info(key)->first == ValueType::F32;
    for (int i = 0; i < 3; ++i) {
      const double x = (*a)[i].template get<double>();
      (*values)[i] = f32 ? f32_decimal(x) : x;
    }
  }
  try {
    validate(v);
  } catch (const ConfigError& e) {
    throw ConfigError(e.subject(), std::string(e.what() + e.subject().size() + 2) +
                                       " (from the clip.vision.* keys of " + where + ")");
  }
  if (c.projection_dim <= 0)
    throw ConfigError(p + "projection_dim", "must be positive (in " + where + ")");
  if (c.merge_factor <= 0 || v.patches_per_side() % c.merge_factor != 0)
    throw ConfigError(p + "projector.scale_factor", "is " + std::to_string(c.merge_factor) +
                                                        ", which must divide the " +
                                                        std::to_string(v.patches_per_side()) +
                                                        " patches per side (in " + where + ")");
  return c;
}

// The token ids that mark and hold an image in the text (ModelConfig's boi_token_index,
// eoi_token_index and image_token_index).
struct ImageTokenIds {
  int64_t boi = 0, eoi = 0, image = 0;
};

// The image token ids of a gemma3 text GGUF: looked up by piece in its tokenizer.ggml.tokens, each
// one missing taken from the published config (255999, 256000, 262144). llama.cpp's converter pads
// the vocabulary of the 4B/12B/27B models to the embedding's 262208 rows, so <image_soft_token>
// may be stored under a padding name; its published id holds either way.
inline ImageTokenIds image_token_ids(const File& text) {
  const ModelConfig published;
  ImageTokenIds ids{published.boi_token_index, published.eoi_token_index,
                    published.image_token_index};
  if (!text.array_info("tokenizer.ggml.tokens")) return ids;
  const std::vector<std::string> tokens = text.string_array("tokenizer.ggml.tokens");
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] == "<start_of_image>") ids.boi = int64_t(i);
    if (tokens[i] == "<end_of_image>") ids.eoi = int64_t(i);
    if (tokens[i] == "<image_soft_token>") ids.image = int64_t(i);
  }
  return ids;
}

// The multimodal ModelConfig of a gemma3 text GGUF, whose own config (config_from_gguf) is
// `text_config`, and of its mmproj file. `ids` replaces the image token ids found by
// image_token_ids (for models whose vocabulary does not hold them, such as test-sized ones).
inline ModelConfig multimodal_config(const ModelConfig& text_config, const File& text,
                                     const MmprojConfig& mm, const File& mmproj,
                                     const std::optional<ImageTokenIds>& ids = std::nullopt) {
  ModelConfig cfg = text_config;
  if (mm.projection_dim != cfg.text.hidden_size)
    throw ConfigError("clip.vision.projection_dim",
                      "is " + std::to_string(mm.projection_dim) + " in " + mmproj.path().string() +
                          ", but the text model's hidden size (gemma3.embedding_length) is " +
                          std::to_string(cfg.text.hidden_size) + " in " + text.path().string() +
                          ": the projector belongs to another model");
  cfg.model_type = "gemma3";
  cfg.vision = mm.vision;
  cfg.mm_tokens_per_image = mm.mm_tokens_per_image();
  const ImageTokenIds t = ids ? *ids : image_token_ids(text);
  cfg.boi_token_index = t.boi;
  cfg.eoi_token_index = t.eoi;
  cfg.image_token_index = t.image;
  if (!ids)
    for (auto [field, piece, id] : {std::tuple{"boi_token_index", "<start_of_image>", t.boi},
                                    std::tuple{"eoi_token_index", "<end_of_image>", t.eoi},
                                    std::tuple{"image_token_index", "<image_soft_token>", t.image}})
      if (id >= cfg.text.vocab_size)
        throw ConfigError(field, "the vocabulary of " + text.path().string() + " has no " + piece +
                                     " and the published id " + std::to_string(id) +
                                     " is outside its " + std::to_string(cfg.text.vocab_size) +
                                     "-row embedding; give the image token ids "
                                     "(gguf::ImageTokenIds) when opening it");
  validate(cfg);
  return cfg;
}

// An mmproj file's tensors under their HF names (kVisionPrefix / kProjectorPrefix), ready for
// Checkpoint's binder, and its config. Views point into the mapping, whatever their type; the one
// shifted norm into an f32 buffer this object owns. Each view's name is the GGUF name, so errors
// name what the file says.
class MmprojTensors {
 public:
  explicit MmprojTensors(const std::filesystem::path& path, Residency residency = Residency::Mapped,
                         const Progress& progress = {})
      : file_(path, residency, progress), config_(mmproj_config(file_)) {
    for (const auto& t : file_.tensors()) {
      TensorView v{.name = t.name, .dtype = *dtype_of(t.type), .shape = t.shape, .data = t.data};
      if (is_shifted_mmproj_norm(t.name)) {  // 1 + w back to w
        auto& buffer = owned_.emplace_back(std::size_t(v.numel()));
        for (std::size_t i = 0; i < buffer.size(); ++i) buffer[i] = v.at<float>(int64_t(i)) - 1.0f;
        v.dtype = DType::F32;
        v.data = reinterpret_cast<const std::byte*>(buffer.data());
      }
      views_.emplace(mmproj_hf_name(t.name), std::move(v));
    }
  }
  const File& file() const { return file_; }
  const MmprojConfig& config() const { return config_; }
  const std::map<std::string, TensorView>& views() const { return views_; }

 private:
  File file_;
  MmprojConfig config_;
  std::vector<std::vector<float>> owned_;
  std::map<std::string, TensorView> views_;
};

// The type tensor `name` (GGUF name, of `shape`) gets in an mmproj file of type `ft`, as the
// converter chooses it (Gemma3VisionModel.tensor_force_quant, then ModelBase.prepare_tensors).
inline TensorType mmproj_tensor_type(FileType ft, const std::string& name, const Shape& shape) {
  if (name == "mm.input_projection.weight") return TensorType::F16;
  if (shape.size() == 1 || name == "v.patch_embd.weight" || name == "v.position_embd.weight")
    return TensorType::F32;
  if (ft != FileType::F32 && ft != FileType::F16 && ft != FileType::BF16 && ft != FileType::Q8_0)
    throw InvalidArgument("file type",
                          "an mmproj file is written as f32, f16, bf16 or q8_0 (the types "
                          "llama.cpp's converter writes one in)");
  const TensorType matrices = file_type_info(ft).matrices;
  // Q8_0's blocks of 32 do not divide every row (the SigLIP MLP's 4304): those stay f16.
  return matrices == TensorType::Q8_0 && shape.back() % 32 != 0 ? TensorType::F16 : matrices;
}

// What write_mmproj writes besides the weights and the config.
struct MmprojWriteOptions {
  // general.name. llama.cpp's converter takes it from the model directory's name, as for the text
  // model's file.
  std::string name;
  // The preprocessor's normalisation (preprocessor_config.json's image_mean and image_std).
  std::array<double, 3> image_mean{0.5, 0.5, 0.5};
  std::array<double, 3> image_std{0.5, 0.5, 0.5};
};

// Writes the vision tower and projector of the multimodal `cfg` / `weights` as a llama.cpp mmproj
// GGUF: names, the 1 + w projector norm, tensor types and the metadata keys of llama.cpp's
// convert_hf_to_gguf.py --mmproj (MmprojModel, Gemma3VisionModel), in its order. Tensors are
// written in the order of their HF names, as the converter meets them in a safetensors file.
// `file_type`: F32, F16, BF16 or Q8_0.
inline void write_mmproj(const ModelConfig& cfg, const ModelWeights& weights,
                         const std::filesystem::path& path, FileType file_type,
                         const Progress& progress = {}, const MmprojWriteOptions& options = {}) {
  if (!cfg.vision || !weights.vision)
    throw InvalidArgument("checkpoint",
                          "has no vision tower to write (model_type '" + cfg.model_type + "')");
  if (file_type != FileType::F32 && file_type != FileType::F16 && file_type != FileType::BF16 &&
      file_type != FileType::Q8_0)
    throw InvalidArgument("file type",
                          "an mmproj file is written as f32, f16, bf16 or q8_0 (the "
                          "types llama.cpp's converter writes one in)");
  const VisionConfig& v = *cfg.vision;
  const int64_t tokens_per_side = std::llround(std::sqrt(double(cfg.mm_tokens_per_image)));
  const int64_t merge_factor = v.patches_per_side() / std::max<int64_t>(tokens_per_side, 1);

  struct Entry {
    std::string hf, gguf;
    TensorView view;
    Shape shape;
  };
  std::vector<Entry> entries;
  int64_t parameters = 0;
  ModelWeights w = weights;  // (for_each_tensor visits mutable slots; views are cheap to copy)
  for_each_tensor(
      cfg, w, [&](Module m, const std::string& rel, TensorView& view, const Shape& shape, Init) {
        if (m != Module::Vision && m != Module::Projector) return;
        entries.push_back({(m == Module::Vision ? kVisionPrefix : kProjectorPrefix) + rel,
                           mmproj_name(m, rel), view, shape});
        parameters += num_elements(shape);
      });
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.hf < b.hf; });

  Writer out;
  const std::string p = "clip.vision.";
  auto f32_array = [](const std::array<double, 3>& a) { return nlohmann::json{a[0], a[1], a[2]}; };
  out.set("general.architecture", ValueType::String, kMmprojArchitecture);
  out.set("general.type", ValueType::String, "mmproj");
  if (!options.name.empty()) out.set("general.name", ValueType::String, options.name);
  out.set("general.size_label", ValueType::String, size_label(parameters));
  out.set("general.file_type", ValueType::U32, uint32_t(file_type));
  out.set("clip.has_vision_encoder", ValueType::Bool, true);
  out.set(p + "projection_dim", ValueType::U32, cfg.text.hidden_size);
  out.set(p + "image_size", ValueType::U32, v.image_size);
  out.set(p + "patch_size", ValueType::U32, v.patch_size);
  out.set(p + "embedding_length", ValueType::U32, v.hidden_size);
  out.set(p + "feed_forward_length", ValueType::U32, v.intermediate_size);
  out.set(p + "block_count", ValueType::U32, v.num_hidden_layers);
  out.set(p + "attention.head_count", ValueType::U32, v.num_attention_heads);
  out.set_array(p + "image_mean", ValueType::F32, f32_array(options.image_mean));
  out.set_array(p + "image_std", ValueType::F32, f32_array(options.image_std));
  out.set("clip.projector_type", ValueType::String, kGemma3ProjectorType);
  out.set(p + "attention.layer_norm_epsilon", ValueType::F32, v.layer_norm_eps);
  out.set("clip.use_gelu", ValueType::Bool, true);
  if (merge_factor != kDefaultMergeFactor)
    out.set(p + "projector.scale_factor", ValueType::U32, merge_factor);
  out.set("general.quantization_version", ValueType::U32, 2);  // ggml's GGML_QNT_VERSION

  for (const Entry& e : entries) {
    const TensorType type = mmproj_tensor_type(file_type, e.gguf, e.shape);
    // Encoded when written: one tensor at a time.
    out.add(e.gguf, e.shape, type, [view = e.view, type, shift = is_shifted_mmproj_norm(e.gguf)] {
      return encode_tensor(view, type, shift);
    });
  }
  out.write(path, progress);
}

}  // namespace gemma3::inline GEMMA3_MODE::gguf
