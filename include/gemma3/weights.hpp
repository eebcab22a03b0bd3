// The model's weights as named, typed views into the checkpoint, one struct per published module.
//
// `for_each_tensor` is the single list of every tensor: its published name (relative to the module
// prefix), the expected shape derived from the config, and how the synthesiser initialises it. The
// loader, the synthesiser and `gemma3 inspect` all walk this list, so no name or shape is written
// twice.
#pragma once

#include "gemma3/build_mode.hpp"

#include <optional>
#include <string>
#include <vector>

#include "gemma3/config.hpp"
#include "gemma3/tensor.hpp"

namespace gemma3::inline GEMMA3_MODE {

// One text decoder layer — prefix `model.layers.N.` (or `language_model.model.layers.N.`).
struct LayerWeights {
  TensorView
      input_layernorm;  // [hidden]               input_layernorm.weight (stores w, used as 1+w)
  TensorView q_proj;    // [heads*head_dim, hidden]    self_attn.q_proj.weight
  TensorView k_proj;    // [kv_heads*head_dim, hidden] self_attn.k_proj.weight
  TensorView v_proj;    // [kv_heads*head_dim, hidden] self_attn.v_proj.weight
  TensorView q_norm;    // [head_dim]             self_attn.q_norm.weight
  TensorView k_norm;    // [head_dim]             self_attn.k_norm.weight
  TensorView o_proj;    // [hidden, heads*head_dim]    self_attn.o_proj.weight
  TensorView post_attention_layernorm;    // [hidden]
  TensorView pre_feedforward_layernorm;   // [hidden]
  TensorView gate_proj;                   // [intermediate, hidden] mlp.gate_proj.weight
  TensorView up_proj;                     // [intermediate, hidden] mlp.up_proj.weight
  TensorView down_proj;                   // [hidden, intermediate] mlp.down_proj.weight
  TensorView post_feedforward_layernorm;  // [hidden]
};

struct TextWeights {
  TensorView embed_tokens;  // [vocab, hidden]  embed_tokens.weight
  std::vector<LayerWeights> layers;
  TensorView norm;     // [hidden]  norm.weight (final norm)
  TensorView lm_head;  // [vocab, hidden]  lm_head.weight, or embed_tokens when tied
};

// One SigLIP encoder layer — prefix `vision_tower.vision_model.encoder.layers.N.`.
struct VisionLayerWeights {
  TensorView layer_norm1_weight, layer_norm1_bias;  // [vh]
  TensorView q_proj_weight, q_proj_bias;            // [vh, vh], [vh]
  TensorView k_proj_weight, k_proj_bias;
  TensorView v_proj_weight, v_proj_bias;
  TensorView out_proj_weight, out_proj_bias;
  TensorView layer_norm2_weight, layer_norm2_bias;
  TensorView fc1_weight, fc1_bias;  // [v_intermediate, vh], [v_intermediate]
  TensorView fc2_weight, fc2_bias;  // [vh, v_intermediate], [vh]
};

struct VisionWeights {
  TensorView patch_embedding_weight;  // [vh, 3, patch, patch]  embeddings.patch_embedding.weight
  TensorView patch_embedding_bias;    // [vh]
  TensorView position_embedding;      // [num_patches, vh]  embeddings.position_embedding.weight
  std::vector<VisionLayerWeights> layers;
  TensorView post_layernorm_weight, post_layernorm_bias;  // [vh]
  // The multimodal projector — prefix `multi_modal_projector.`.
  TensorView mm_soft_emb_norm;     // [vh]  mm_soft_emb_norm.weight (Gemma RMSNorm, 1+w)
  TensorView mm_input_projection;  // [vh, hidden]  mm_input_projection_weight (in x out!)
};

struct ModelWeights {
  TextWeights text;
  std::optional<VisionWeights> vision;
};

// How the synthesiser draws a tensor (the fixtures' scheme: tests/data/reference/README.md):
enum class Init {
  Embedding,          // N(0, 0.3^2)
  Linear,             // N(0, 1/fan_in), fan_in = last dimension
  RmsNorm,            // N(0, 0.1^2), used as 1 + w
  LayerNormWeight,    // N(1, 0.1^2)
  Bias,               // N(0, 0.02^2)
  LayerNormBias,      // N(0, 0.05^2)
  PatchEmbedding,     // N(0, 1/(3*patch^2))
  PositionEmbedding,  // N(0, 0.2^2)
  Projection,         // N(0, 1/vh): mm_input_projection_weight, fan_in is its FIRST dimension
};

// Which top-level module a tensor belongs to; the name scheme maps each to its published prefix.
enum class Module { Text, LmHead, Vision, Projector };

// Calls f(module, relative_name, slot, expected_shape, init) for every tensor of the model.
// The lm_head is visited only when the config unties it.
template <typename F>
void for_each_tensor(const ModelConfig& cfg, ModelWeights& w, F&& f) {
  const TextConfig& c = cfg.text;
  const int64_t H = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
  const int64_t q_dim = c.num_attention_heads * D, kv_dim = c.num_key_value_heads * D;
  auto& t = w.text;
  f(Module::Text, "embed_tokens.weight", t.embed_tokens, Shape{c.vocab_size, H}, Init::Embedding);
  t.layers.resize(c.num_hidden_layers);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    auto& l = t.layers[i];
    const std::string p = "layers." + std::to_string(i) + ".";
    f(Module::Text, p + "input_layernorm.weight", l.input_layernorm, Shape{H}, Init::RmsNorm);
    f(Module::Text, p + "self_attn.q_proj.weight", l.q_proj, Shape{q_dim, H}, Init::Linear);
    f(Module::Text, p + "self_attn.k_proj.weight", l.k_proj, Shape{kv_dim, H}, Init::Linear);
    f(Module::Text, p + "self_attn.v_proj.weight", l.v_proj, Shape{kv_dim, H}, Init::Linear);
    f(Module::Text, p + "self_attn.q_norm.weight", l.q_norm, Shape{D}, Init::RmsNorm);
    f(Module::Text, p + "self_attn.k_norm.weight", l.k_norm, Shape{D}, Init::RmsNorm);
    f(Module::Text, p + "self_attn.o_proj.weight", l.o_proj, Shape{H, q_dim}, Init::Linear);
    f(Module::Text, p + "post_attention_layernorm.weight", l.post_attention_layernorm, Shape{H},
      Init::RmsNorm);
    f(Module::Text, p + "pre_feedforward_layernorm.weight", l.pre_feedforward_layernorm, Shape{H},
      Init::RmsNorm);
    f(Module::Text, p + "mlp.gate_proj.weight", l.gate_proj, Shape{I, H}, Init::Linear);
    f(Module::Text, p + "mlp.up_proj.weight", l.up_proj, Shape{I, H}, Init::Linear);
    f(Module::Text, p + "mlp.down_proj.weight", l.down_proj, Shape{H, I}, Init::Linear);
    f(Module::Text, p + "post_feedforward_layernorm.weight", l.post_feedforward_layernorm, Shape{H},
      Init::RmsNorm);
  }
  f(Module::Text, "norm.weight", t.norm, Shape{H}, Init::RmsNorm);
  if (!c.tie_word_embeddings)
    f(Module::LmHead, "lm_head.weight", t.lm_head, Shape{c.vocab_size, H}, Init::Linear);

  if (!cfg.vision) return;
  const VisionConfig& v = *cfg.vision;
  const int64_t vh = v.hidden_size, vi = v.intermediate_size;
  // Filled weights keep their views, as the text layers do (writers walk a model's own weights).
  auto& vw = w.vision ? *w.vision : w.vision.emplace();
  f(Module::Vision, "embeddings.patch_embedding.weight", vw.patch_embedding_weight,
    Shape{vh, v.num_channels, v.patch_size, v.patch_size}, Init::PatchEmbedding);
  f(Module::Vision, "embeddings.patch_embedding.bias", vw.patch_embedding_bias, Shape{vh},
    Init::Bias);
  f(Module::Vision, "embeddings.position_embedding.weight", vw.position_embedding,
    Shape{v.num_patches(), vh}, Init::PositionEmbedding);
  vw.layers.resize(v.num_hidden_layers);
  for (int64_t i = 0; i < v.num_hidden_layers; ++i) {
    auto& l = vw.layers[i];
    const std::string p = "encoder.layers." + std::to_string(i) + ".";
    f(Module::Vision, p + "layer_norm1.weight", l.layer_norm1_weight, Shape{vh},
      Init::LayerNormWeight);
    f(Module::Vision, p + "layer_norm1.bias", l.layer_norm1_bias, Shape{vh}, Init::LayerNormBias);
    f(Module::Vision, p + "self_attn.q_proj.weight", l.q_proj_weight, Shape{vh, vh}, Init::Linear);
    f(Module::Vision, p + "self_attn.q_proj.bias", l.q_proj_bias, Shape{vh}, Init::Bias);
    f(Module::Vision, p + "self_attn.k_proj.weight", l.k_proj_weight, Shape{vh, vh}, Init::Linear);
    f(Module::Vision, p + "self_attn.k_proj.bias", l.k_proj_bias, Shape{vh}, Init::Bias);
    f(Module::Vision, p + "self_attn.v_proj.weight", l.v_proj_weight, Shape{vh, vh}, Init::Linear);
    f(Module::Vision, p + "self_attn.v_proj.bias", l.v_proj_bias, Shape{vh}, Init::Bias);
    f(Module::Vision, p + "self_attn.out_proj.weight", l.out_proj_weight, Shape{vh, vh},
      Init::Linear);
    f(Module::Vision, p + "self_attn.out_proj.bias", l.out_proj_bias, Shape{vh}, Init::Bias);
    f(Module::Vision, p + "layer_norm2.weight", l.layer_norm2_weight, Shape{vh},
      Init::LayerNormWeight);
    f(Module::Vision, p + "layer_norm2.bias", l.layer_norm2_bias, Shape{vh}, Init::LayerNormBias);
    f(Module::Vision, p + "mlp.fc1.weight", l.fc1_weight, Shape{vi, vh}, Init::Linear);
    f(Module::Vision, p + "mlp.fc1.bias", l.fc1_bias, Shape{vi}, Init::Bias);
    f(Module::Vision, p + "mlp.fc2.weight", l.fc2_weight, Shape{vh, vi}, Init::Linear);
    f(Module::Vision, p + "mlp.fc2.bias", l.fc2_bias, Shape{vh}, Init::Bias);
  }
  f(Module::Vision, "post_layernorm.weight", vw.post_layernorm_weight, Shape{vh},
    Init::LayerNormWeight);
  f(Module::Vision, "post_layernorm.bias", vw.post_layernorm_bias, Shape{vh}, Init::LayerNormBias);
  f(Module::Projector, "mm_soft_emb_norm.weight", vw.mm_soft_emb_norm, Shape{vh}, Init::RmsNorm);
  f(Module::Projector, "mm_input_projection_weight", vw.mm_input_projection,
    Shape{vh, c.hidden_size}, Init::Projection);
}

}  // namespace gemma3::inline GEMMA3_MODE
