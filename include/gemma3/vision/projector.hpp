// The Gemma 3 multimodal projector (transformers 4.51.3 modeling_gemma3.py,
// Gemma3MultiModalProjector):
//
//   y [P², vh] (last_hidden_state, patch n at grid row n / P, column n % P)
//   z = avg_pool(y)   kernel = stride = k = P / sqrt(mm_tokens_per_image), no padding; soft token
//                     j = R * (P/k) + C averages the k x k patches (k*R + a, k*C + b), a, b ∈ [0,
//                     k)
//   z = RMSNorm(z) · (1 + mm_soft_emb_norm)    Gemma flavour, eps = vision layer_norm_eps
//   f = z · M         M = mm_input_projection_weight [vh, hidden] — in x out, NOT nn.Linear's [out,
//   in]
//
// Output [mm_tokens_per_image, hidden]: the rows that replace the <image_soft_token> embeddings, in
// order, without the sqrt(hidden) scale. Observer names: multi_modal_projector.avg_pool [T, vh],
// multi_modal_projector.mm_soft_emb_norm [T, vh], multi_modal_projector [T, hidden].
#pragma once

#include "gemma3/build_mode.hpp"

#include <cmath>
#include <string>

#include "gemma3/config.hpp"
#include "gemma3/error.hpp"
#include "gemma3/kernels/plain.hpp"
#include "gemma3/observer.hpp"
#include "gemma3/tensor.hpp"
#include "gemma3/text/functions.hpp"
#include "gemma3/weights.hpp"

namespace gemma3::inline GEMMA3_MODE {

template <typename T = float>
class MultiModalProjector {
 public:
  // The weights are views: the Checkpoint they come from must outlive the projector.
  MultiModalProjector(const ModelConfig& cfg, const VisionWeights& w)
      : projection_(w.mm_input_projection) {
    validate(cfg);
    if (!cfg.vision)
      throw InvalidArgument("config", "the multimodal projector needs a vision config");
    const VisionConfig& v = *cfg.vision;
    patches_per_side_ = v.patches_per_side();
    tokens_per_side_ =
        static_cast<int64_t>(std::llround(std::sqrt(double(cfg.mm_tokens_per_image))));
    kernel_ = patches_per_side_ / tokens_per_side_;  // validate() checked that this divides exactly
    vision_hidden_ = v.hidden_size;
    hidden_ = cfg.text.hidden_size;
    eps_ = v.layer_norm_eps;
    expect_shape(w.mm_soft_emb_norm, Shape{vision_hidden_}, "multi_modal_projector");
    expect_shape(projection_, Shape{vision_hidden_, hidden_}, "multi_modal_projector");
    norm_ = w.mm_soft_emb_norm.vec<T>();
  }

  int64_t tokens_per_image() const { return tokens_per_side_ * tokens_per_side_; }

  // Soft tokens [mm_tokens_per_image, hidden] from last_hidden_state [P², vh].
  // `obs` (may be null) sees the sites it asked for, as those of image `image`.
  Mat<T> forward(const ConstMatRef<T>& last_hidden_state, Observer<T>* obs = nullptr,
                 int64_t image = 0) const {
    const int64_t P = patches_per_side_, Q = tokens_per_side_, k = kernel_;
    if (last_hidden_state.rows() != P * P || last_hidden_state.cols() != vision_hidden_)
      throw InvalidArgument("last_hidden_state",
                            "expected [" + std::to_string(P * P) + ", " +
                                std::to_string(vision_hidden_) + "], got [" +
                                std::to_string(last_hidden_state.rows()) + ", " +
                                std::to_string(last_hidden_state.cols()) + "]");
    // nn.AvgPool2d: sum of the window in row-major order, then divided by k*k.
    Mat<T> z = Mat<T>::Zero(Q * Q, vision_hidden_);
    for (int64_t R = 0; R < Q; ++R)
      for (int64_t C = 0; C < Q; ++C) {
        auto row = z.row(R * Q + C);
        for (int64_t a = 0; a < k; ++a)
          for (int64_t b = 0; b < k; ++b) row += last_hidden_state.row((k * R + a) * P + k * C + b);
        row /= T(k * k);
      }
    announce(obs, Site{SiteKind::ProjectorAvgPool}, MatRef<T>(z), {.image = image});
    z = plain::rms_norm<T>(z, norm_, eps_);
    announce(obs, Site{SiteKind::ProjectorSoftEmbNorm}, MatRef<T>(z), {.image = image});
    // torch.matmul(normed, mm_input_projection_weight): M is [vh, hidden] and used as is.
    Mat<T> f = z * projection_.as<T>();  // [T, hidden]
    announce(obs, Site{SiteKind::Projector}, MatRef<T>(f), {.image = image});
    return f;
  }

 private:
  TensorView projection_;  // [vh, hidden] mm_input_projection_weight
  int64_t patches_per_side_ = 0, tokens_per_side_ = 0, kernel_ = 0, vision_hidden_ = 0, hidden_ = 0;
  double eps_ = 1e-6;
  Vec<T> norm_;
};

}  // namespace gemma3::inline GEMMA3_MODE
