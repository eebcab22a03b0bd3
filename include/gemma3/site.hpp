// Sites: the named intermediates of a forward pass, typed. A Site is a kind (what: the residual
// stream after a layer, the attention probabilities, the MLP activation, ...) and, for the kinds
// that exist once per layer, the layer. Each site maps one-to-one to the module path transformers
// uses for it (modeling_gemma3.py / modeling_siglip.py, transformers 4.51.3), the names `gemma3
// dump` writes and the reference fixtures use:
//
//   model.inputs_embeds                               [T, hidden]  decoder input
//   model.layers.{i}.input_layernorm                  [T, hidden]
//   model.layers.{i}.self_attn.q_proj / k_proj / v_proj
//   model.layers.{i}.self_attn.q_norm / k_norm        [T, heads*head_dim] after the per-head
//   RMSNorm model.layers.{i}.self_attn.q_rope / k_rope        after RoPE (what the cache stores for
//   k) model.layers.{i}.self_attn.attn_weights           [heads*T, S] softmax probabilities,
//   head-major model.layers.{i}.self_attn.attn_output            [T, heads*head_dim] before o_proj
//   model.layers.{i}.self_attn                        [T, hidden] o_proj output
//   model.layers.{i}.post_attention_layernorm, .attn_residual, .pre_feedforward_layernorm
//   model.layers.{i}.mlp.gate_proj / up_proj          [T, intermediate]
//   model.layers.{i}.mlp.act_fn                       [T, intermediate] gelu_tanh(gate)
//   model.layers.{i}.mlp                              [T, hidden] down_proj output
//   model.layers.{i}.post_feedforward_layernorm
//   model.layers.{i}                                  [T, hidden] residual stream after the layer
//   model.norm                                        [T, hidden] after the final norm
//   lm_head                                           [T', vocab] logits (of the rows asked for)
// and the image path under vision_tower.vision_model. (embeddings, encoder.layers.{i}.layer_norm1,
// .self_attn.q_proj/k_proj/v_proj/attn_weights, .self_attn, .layer_norm2, .mlp.fc1, .mlp, the
// layer itself, post_layernorm) and multi_modal_projector (.avg_pool, .mm_soft_emb_norm, itself).
//
// Names are built and parsed here and nowhere else.
#pragma once

#include "gemma3/build_mode.hpp"

#include <array>
#include <bitset>
#include <charconv>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gemma3/error.hpp"

namespace gemma3::inline GEMMA3_MODE {

enum class SiteKind : uint8_t {
  // The text decoder, once per call.
  InputsEmbeds,
  FinalNorm,
  Logits,
  // The text decoder, once per layer.
  InputLayernorm,
  QProj,
  KProj,
  VProj,
  QNorm,
  KNorm,
  QRope,
  KRope,
  AttnWeights,
  AttnOutput,
  SelfAttn,
  PostAttentionLayernorm,
  AttnResidual,
  PreFeedforwardLayernorm,
  MlpGate,
  MlpUp,
  MlpAct,
  Mlp,
  PostFeedforwardLayernorm,
  Residual,
  // The vision tower and projector, once per image.
  VisionEmbeddings,
  VisionPostLayernorm,
  ProjectorAvgPool,
  ProjectorSoftEmbNorm,
  Projector,
  // The vision tower, once per encoder layer.
  VisionLayerNorm1,
  VisionQProj,
  VisionKProj,
  VisionVProj,
  VisionAttnWeights,
  VisionSelfAttn,
  VisionLayerNorm2,
  VisionFc1,
  VisionMlp,
  VisionResidual,
};
inline constexpr std::size_t kSiteKinds = std::size_t(SiteKind::VisionResidual) + 1;

namespace detail {
struct SiteName {
  SiteKind kind;
  const char* prefix;  // the module path before the layer index, or the whole path
  const char* suffix;  // after "{prefix}{layer}": "" for the layer itself, else ".what"
  bool per_layer;
};
inline constexpr const char* kTextLayer = "model.layers.";
inline constexpr const char* kVisionLayer = "vision_tower.vision_model.encoder.layers.";
inline constexpr std::array<SiteName, kSiteKinds> kSiteNames{{
    {SiteKind::InputsEmbeds, "model.inputs_embeds", "", false},
    {SiteKind::FinalNorm, "model.norm", "", false},
    {SiteKind::Logits, "lm_head", "", false},
    {SiteKind::InputLayernorm, kTextLayer, ".input_layernorm", true},
    {SiteKind::QProj, kTextLayer, ".self_attn.q_proj", true},
    {SiteKind::KProj, kTextLayer, ".self_attn.k_proj", true},
    {SiteKind::VProj, kTextLayer, ".self_attn.v_proj", true},
    {SiteKind::QNorm, kTextLayer, ".self_attn.q_norm", true},
    {SiteKind::KNorm, kTextLayer, ".self_attn.k_norm", true},
    {SiteKind::QRope, kTextLayer, ".self_attn.q_rope", true},
    {SiteKind::KRope, kTextLayer, ".self_attn.k_rope", true},
    {SiteKind::AttnWeights, kTextLayer, ".self_attn.attn_weights", true},
    {SiteKind::AttnOutput, kTextLayer, ".self_attn.attn_output", true},
    {SiteKind::SelfAttn, kTextLayer, ".self_attn", true},
    {SiteKind::PostAttentionLayernorm, kTextLayer, ".post_attention_layernorm", true},
    {SiteKind::AttnResidual, kTextLayer, ".attn_residual", true},
    {SiteKind::PreFeedforwardLayernorm, kTextLayer, ".pre_feedforward_layernorm", true},
    {SiteKind::MlpGate, kTextLayer, ".mlp.gate_proj", true},
    {SiteKind::MlpUp, kTextLayer, ".mlp.up_proj", true},
    {SiteKind::MlpAct, kTextLayer, ".mlp.act_fn", true},
    {SiteKind::Mlp, kTextLayer, ".mlp", true},
    {SiteKind::PostFeedforwardLayernorm, kTextLayer, ".post_feedforward_layernorm", true},
    {SiteKind::Residual, kTextLayer, "", true},
    {SiteKind::VisionEmbeddings, "vision_tower.vision_model.embeddings", "", false},
    {SiteKind::VisionPostLayernorm, "vision_tower.vision_model.post_layernorm", "", false},
    {SiteKind::ProjectorAvgPool, "multi_modal_projector.avg_pool", "", false},
    {SiteKind::ProjectorSoftEmbNorm, "multi_modal_projector.mm_soft_emb_norm", "", false},
    {SiteKind::Projector, "multi_modal_projector", "", false},
    {SiteKind::VisionLayerNorm1, kVisionLayer, ".layer_norm1", true},
    {SiteKind::VisionQProj, kVisionLayer, ".self_attn.q_proj", true},
    {SiteKind::VisionKProj, kVisionLayer, ".self_attn.k_proj", true},
    {SiteKind::VisionVProj, kVisionLayer, ".self_attn.v_proj", true},
    {SiteKind::VisionAttnWeights, kVisionLayer, ".self_attn.attn_weights", true},
    {SiteKind::VisionSelfAttn, kVisionLayer, ".self_attn", true},
    {SiteKind::VisionLayerNorm2, kVisionLayer, ".layer_norm2", true},
    {SiteKind::VisionFc1, kVisionLayer, ".mlp.fc1", true},
    {SiteKind::VisionMlp, kVisionLayer, ".mlp", true},
    {SiteKind::VisionResidual, kVisionLayer, "", true},
}};
constexpr bool site_names_in_order() {
  for (std::size_t k = 0; k < kSiteKinds; ++k)
    if (std::size_t(kSiteNames[k].kind) != k) return false;
  return true;
}
static_assert(site_names_in_order(), "kSiteNames lists the kinds in the enum's order");
}  // namespace detail

// Whether a kind exists once per layer (and a Site of it names the layer).
constexpr bool per_layer(SiteKind kind) {
  return detail::kSiteNames[std::size_t(kind)].per_layer;
}

struct Site {
  SiteKind kind = SiteKind::Residual;
  int32_t layer = -1;  // the layer of a per-layer kind, -1 otherwise

  constexpr Site(SiteKind k, int32_t l = -1) : kind(k), layer(l) {}

  // The sites researchers ask for most, by name.
  static constexpr Site inputs_embeds() { return {SiteKind::InputsEmbeds}; }
  static constexpr Site residual(int32_t layer) { return {SiteKind::Residual, layer}; }
  static constexpr Site attn_residual(int32_t layer) { return {SiteKind::AttnResidual, layer}; }
  static constexpr Site attn_weights(int32_t layer) { return {SiteKind::AttnWeights, layer}; }
  static constexpr Site attn_output(int32_t layer) { return {SiteKind::AttnOutput, layer}; }
  static constexpr Site mlp_act(int32_t layer) { return {SiteKind::MlpAct, layer}; }
  static constexpr Site mlp(int32_t layer) { return {SiteKind::Mlp, layer}; }
  static constexpr Site final_norm() { return {SiteKind::FinalNorm}; }
  static constexpr Site logits() { return {SiteKind::Logits}; }

  // The module path, e.g. "model.layers.5" or "model.layers.3.self_attn.attn_weights".
  std::string name() const {
    const auto& n = detail::kSiteNames[std::size_t(kind)];
    if (!n.per_layer) return n.prefix;
    return n.prefix + std::to_string(layer) + n.suffix;
  }

  // The site a module path names, or nothing when it names none.
  static std::optional<Site> parse(std::string_view path) {
    for (const auto& n : detail::kSiteNames) {
      const std::string_view prefix = n.prefix;
      if (!n.per_layer) {
        if (path == prefix) return Site{n.kind};
        continue;
      }
      if (!path.starts_with(prefix)) continue;
      const std::string_view rest = path.substr(prefix.size());
      int32_t layer = -1;
      const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), layer);
      if (ec != std::errc() || end == rest.data() || layer < 0 ||
          (rest[0] == '0' && end - rest.data() > 1))
        continue;
      if (std::string_view(end, std::size_t(rest.data() + rest.size() - end)) == n.suffix)
        return Site{n.kind, layer};
    }
    return std::nullopt;
  }
  // parse(), or an InvalidArgument naming `what` and the path.
  static Site parse_or_throw(std::string_view path, const std::string& what = "site") {
    if (auto s = parse(path)) return *s;
    throw InvalidArgument(what,
                          "'" + std::string(path) +
                              "' names no site (expected a module path such as model.layers.3 or "
                              "model.layers.3.self_attn.attn_weights)");
  }

  friend constexpr auto operator<=>(const Site&, const Site&) = default;
};

// A set of sites: single sites, and kinds taken in every layer. Asking whether it holds a site is
// a few bit tests (the forward pass asks for each of ~20 sites per layer).
class SiteSet {
 public:
  SiteSet() = default;
  SiteSet(std::initializer_list<Site> sites) {
    for (const Site& s : sites) insert(s);
  }
  // Every site of every kind in every layer.
  static SiteSet all() {
    SiteSet s;
    s.every_layer_.set();
    return s;
  }

  SiteSet& insert(const Site& s) {
    if (s.layer < -1 || (per_layer(s.kind) != (s.layer >= 0)))
      throw InvalidArgument("site", s.layer < 0 ? "kind of " + s.name() + " needs a layer"
                                                : "kind of " + s.name() + " takes no layer");
    const std::size_t slot = std::size_t(s.layer + 1);
    if (slot >= layers_.size()) layers_.resize(slot + 1);
    layers_[slot].set(std::size_t(s.kind));
    return *this;
  }
  // `kind` in every layer (or the one site of a kind that is not per layer).
  SiteSet& insert_every_layer(SiteKind kind) {
    every_layer_.set(std::size_t(kind));
    return *this;
  }
  SiteSet& insert(const SiteSet& other) {
    every_layer_ |= other.every_layer_;
    if (other.layers_.size() > layers_.size()) layers_.resize(other.layers_.size());
    for (std::size_t i = 0; i < other.layers_.size(); ++i) layers_[i] |= other.layers_[i];
    return *this;
  }

  bool contains(const Site& s) const {
    if (every_layer_.test(std::size_t(s.kind))) return true;
    const std::size_t slot = std::size_t(s.layer + 1);
    return slot < layers_.size() && layers_[slot].test(std::size_t(s.kind));
  }
  bool empty() const {
    if (every_layer_.any()) return false;
    for (const auto& l : layers_)
      if (l.any()) return false;
    return true;
  }

 private:
  std::bitset<kSiteKinds> every_layer_;
  std::vector<std::bitset<kSiteKinds>>
      layers_;  // slot layer + 1: slot 0 holds the once-per-call kinds
};

}  // namespace gemma3::inline GEMMA3_MODE
