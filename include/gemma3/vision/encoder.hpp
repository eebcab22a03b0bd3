// The image path of Gemma 3 in one object: pixel values → SigLIP → projector → soft tokens.
//
//   Image img = load_image("cat.png");
//   ImageProcessor processor(*ck.config().vision);   // or load_preprocessor_config(dir /
//   "...json") VisionEncoder<float> encoder(ck); Mat<float> soft =
//   encoder.encode(processor.pixel_values(img));   // [mm_tokens_per_image, hidden]
//
// Layouts: pixel values [3, S*S] row-major (channel-major CHW, column y*S + x; S = image_size);
// last_hidden_state [P², vh] (P = S / patch_size, patch n at grid row n / P, column n % P); soft
// tokens [mm_tokens_per_image, hidden] in raster order of the pooled grid. The soft tokens replace,
// in order, the embeddings at the image_token_index positions of the prompt, unscaled
// (transformers 4.51.3 Gemma3ForConditionalGeneration.forward: masked_scatter over the scaled text
// embeddings). Each pan-and-scan crop is an independent image with its own run of soft tokens.
#pragma once

#include "gemma3/build_mode.hpp"

#include <string>

#include "gemma3/checkpoint.hpp"
#include "gemma3/config.hpp"
#include "gemma3/error.hpp"
#include "gemma3/observer.hpp"
#include "gemma3/tensor.hpp"
#include "gemma3/vision/projector.hpp"
#include "gemma3/vision/siglip.hpp"
#include "gemma3/weights.hpp"

namespace gemma3::inline GEMMA3_MODE {

template <typename T = float>
class VisionEncoder {
 public:
  // The weights are views: the Checkpoint they come from must outlive the encoder. The tower runs
  // on `backend` (vision/siglip.hpp: the plain definition or the fast kernels).
  VisionEncoder(const ModelConfig& cfg, const VisionWeights& w, Backend backend = Backend::Fast)
      : cfg_(checked(cfg)), tower_(*cfg.vision, w, backend), projector_(cfg, w) {}
  explicit VisionEncoder(const Checkpoint& ck, Backend backend = Backend::Fast)
      : VisionEncoder(ck.config(), vision_weights(ck), backend) {}

  const ModelConfig& config() const { return cfg_; }
  Backend backend() const { return tower_.backend(); }
  const VisionConfig& vision_config() const { return *cfg_.vision; }
  int64_t image_size() const { return cfg_.vision->image_size; }
  int64_t tokens_per_image() const { return projector_.tokens_per_image(); }
  const SiglipVisionModel<T>& vision_tower() const { return tower_; }
  const MultiModalProjector<T>& projector() const { return projector_; }

  // SigLIP's last_hidden_state [P², vh] (after post_layernorm, before pooling). `obs` (may be
  // null) sees the sites it asked for, as those of image `image`.
  Mat<T> last_hidden_state(const ConstMatRef<T>& pixel_values, Observer<T>* obs = nullptr,
                           int64_t image = 0) const {
    return tower_.forward(pixel_values, obs, image);
  }

  // Soft tokens [mm_tokens_per_image, hidden] from last_hidden_state [P², vh].
  Mat<T> project(const ConstMatRef<T>& last_hidden_state, Observer<T>* obs = nullptr,
                 int64_t image = 0) const {
    return projector_.forward(last_hidden_state, obs, image);
  }

  // Pixel values [3, S*S] → soft tokens [mm_tokens_per_image, hidden].
  Mat<T> encode(const ConstMatRef<T>& pixel_values, Observer<T>* obs = nullptr,
                int64_t image = 0) const {
    const Mat<T> hidden = last_hidden_state(pixel_values, obs, image);
    return project(hidden, obs, image);
  }

 private:
  static const ModelConfig& checked(const ModelConfig& cfg) {
    if (!cfg.vision)
      throw InvalidArgument("config", "model_type '" + cfg.model_type + "' has no vision tower");
    return cfg;
  }
  static const VisionWeights& vision_weights(const Checkpoint& ck) {
    if (!ck.weights().vision)
      throw InvalidArgument(ck.dir().string(), "checkpoint has no vision tower (model_type '" +
                                                   ck.config().model_type + "')");
    return *ck.weights().vision;
  }

  ModelConfig cfg_;
  SiglipVisionModel<T> tower_;
  MultiModalProjector<T> projector_;
};

}  // namespace gemma3::inline GEMMA3_MODE
