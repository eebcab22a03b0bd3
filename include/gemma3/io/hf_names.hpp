// The published tensor-name schemes and how a checkpoint's scheme is recognised.
//
//   text-only (gemma-3-270m/1b):   model.embed_tokens.weight, model.layers.N..., model.norm.weight
//   multimodal (gemma-3-4b/12b/27b, as published by the Orbax converter and transformers <= 4.51):
//       language_model.model.*, vision_tower.vision_model.*, multi_modal_projector.*
//   multimodal, newer transformers module paths (save_pretrained of >= 4.52):
//       model.language_model.*, model.vision_tower.vision_model.*, model.multi_modal_projector.*
// An untied output matrix is `lm_head.weight` (or `language_model.lm_head.weight`).
#pragma once

#include "gemma3/build_mode.hpp"

#include <string>
#include <vector>

#include "gemma3/config.hpp"
#include "gemma3/error.hpp"
#include "gemma3/weights.hpp"

namespace gemma3::inline GEMMA3_MODE {

struct NameScheme {
  const char* label;
  std::string text;       // prefix of the decoder's tensors
  std::string lm_head;    // prefix of lm_head.weight
  std::string vision;     // prefix of the SigLIP tower's tensors
  std::string projector;  // prefix of the projector's tensors

  std::string full_name(Module m, const std::string& relative) const {
    switch (m) {
      case Module::Text:
        return text + relative;
      case Module::LmHead:
        return lm_head + relative;
      case Module::Vision:
        return vision + relative;
      case Module::Projector:
        return projector + relative;
    }
    return relative;
  }
};

inline const std::vector<NameScheme>& name_schemes() {
  static const std::vector<NameScheme> schemes{
      {"text-only (model.*)", "model.", "", "vision_tower.vision_model.", "multi_modal_projector."},
      {"multimodal (language_model.model.*)", "language_model.model.", "language_model.",
       "vision_tower.vision_model.", "multi_modal_projector."},
      {"multimodal (model.language_model.*)", "model.language_model.", "",
       "model.vision_tower.vision_model.", "model.multi_modal_projector."},
  };
  return schemes;
}

// The scheme whose embedding name a checkpoint holds; `has(name)` answers whether it does.
template <typename Has>
const NameScheme& detect_name_scheme(Has&& has, const std::string& where) {
  for (const auto& s : name_schemes())
    if (has(s.text + "embed_tokens.weight")) return s;
  std::string tried;
  for (const auto& s : name_schemes())
    tried += (tried.empty() ? "" : ", ") + s.text + "embed_tokens.weight";
  throw TensorError(where, "no embedding tensor found (looked for " + tried + ")");
}

// The scheme the synthesiser writes for a config: what the published checkpoints use.
inline const NameScheme& published_name_scheme(const ModelConfig& cfg) {
  return name_schemes()[cfg.is_multimodal() ? 1 : 0];
}

}  // namespace gemma3::inline GEMMA3_MODE
