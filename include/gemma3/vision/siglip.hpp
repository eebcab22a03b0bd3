// The SigLIP vision tower of Gemma 3 (transformers 4.51.3 modeling_siglip.py,
// SiglipVisionTransformer with vision_use_head = false; the Gemma 3 report, section 2.1):
//
//   x = unfold(pixels) · W_patchᵀ + b_patch + P        patch embedding + position embedding
//   for each layer:
//     x += out_proj( MHA( layer_norm1(x) ) )            pre-LN, biases everywhere, no mask
//     x += fc2( gelu_tanh( fc1( layer_norm2(x) ) ) )
//   last_hidden_state = post_layernorm(x)                [P², vh], P = image_size / patch_size
//
// Input layout: pixel values [3, S*S] row-major (channel c, column y*S + x), as ImageProcessor
// makes them. Sites (site.hpp; HF module paths under `vision_tower.vision_model.`):
//   embeddings                                  [P², vh] patch + position embeddings
//   encoder.layers.N.layer_norm1                [P², vh]
//   encoder.layers.N.self_attn.q_proj / k_proj / v_proj   [P², vh] with bias
//   encoder.layers.N.self_attn.attn_weights     [heads*P², P²] softmax probabilities, head-major
//   encoder.layers.N.self_attn                  [P², vh] out_proj output
//   encoder.layers.N.layer_norm2                [P², vh]
//   encoder.layers.N.mlp.fc1                    [P², v_intermediate] before the activation
//   encoder.layers.N.mlp                        [P², vh] fc2 output
//   encoder.layers.N                            [P², vh] residual stream after the layer
//   post_layernorm                              [P², vh] = last_hidden_state
//
// Two paths compute the same functions. The plain one (Backend::Plain, and always for double)
// is the definition below: Eigen expressions, one softmax over each head's [P², P²] scores. The
// fast one (float) runs every product on the packed GEMM with the biases added as its tiles
// store (fast::linear), the attention as an online softmax over blocks of keys that never forms
// the P² x P² matrix (fast::attend_bidirectional), LayerNorm and GELU on SIMD kernels, and fc1 →
// GELU → fc2 in the GEMM's packed layout (fast::gelu_mlp). Observation does not change it: the
// probabilities, when asked for, are computed beside it by the plain code; only an edited
// attn_weights runs that layer's plain attention (which multiplies V by the edit), and the MLP
// runs unfused where fc1 is asked for.
#pragma once

#include "gemma3/build_mode.hpp"

#include <array>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "gemma3/config.hpp"
#include "gemma3/error.hpp"
#include "gemma3/kernels/ops.hpp"
#include "gemma3/observer.hpp"
#include "gemma3/tensor.hpp"
#include "gemma3/text/functions.hpp"
#include "gemma3/vision/layer_norm.hpp"
#include "gemma3/weights.hpp"

namespace gemma3::inline GEMMA3_MODE {

namespace detail {
// LayerNorm on the backend's path.
template <typename T>
Mat<T> layer_norm(const ConstMatRef<T>& x, const Vec<T>& w, const Vec<T>& b, double eps,
                  Backend backend) {
  if constexpr (std::is_same_v<T, float>)
    if (backend != Backend::Plain) return fast::layer_norm(x, w, b, eps);
  return plain::layer_norm<T>(x, w, b, eps);
}

// One head's softmax(scale · q·kᵀ) [n, n]: the plain attention's probabilities (SiglipAttention's
// eager path).
template <typename T>
Mat<T> head_probabilities(const ConstMatRef<T>& q, const ConstMatRef<T>& k, int64_t head, int64_t D,
                          T scale) {
  Mat<T> scores = q.middleCols(head * D, D) * k.middleCols(head * D, D).transpose() * scale;
  plain::softmax_rows<T>(scores);
  return scores;
}

// Every head's probabilities, stacked head-major [heads*n, n]: the attn_weights site.
template <typename T>
Mat<T> attention_probabilities(const ConstMatRef<T>& q, const ConstMatRef<T>& k, int64_t heads,
                               int64_t D, T scale) {
  const int64_t n = q.rows();
  Mat<T> weights(heads * n, n);
  for (int64_t head = 0; head < heads; ++head)
    weights.middleRows(head * n, n) = head_probabilities<T>(q, k, head, D, scale);
  return weights;
}
}  // namespace detail

// One SigLIP encoder layer (transformers 4.51.3 SiglipEncoderLayer).
template <typename T>
class SiglipEncoderLayer {
 public:
  SiglipEncoderLayer(const VisionConfig& cfg, int64_t index, const VisionLayerWeights& w,
                     Backend backend = Backend::Fast)
      : index_(index),
        heads_(cfg.num_attention_heads),
        head_dim_(cfg.head_dim()),
        eps_(cfg.layer_norm_eps),
        backend_(backend),
        w_(w) {
    // SiglipAttention.scale = head_dim**-0.5, a Python float multiplied into the f32 scores.
    scale_ = T(std::pow(double(head_dim_), -0.5));
    ln1_w_ = w.layer_norm1_weight.vec<T>();
    ln1_b_ = w.layer_norm1_bias.vec<T>();
    ln2_w_ = w.layer_norm2_weight.vec<T>();
    ln2_b_ = w.layer_norm2_bias.vec<T>();
    q_b_ = w.q_proj_bias.vec<T>();
    k_b_ = w.k_proj_bias.vec<T>();
    v_b_ = w.v_proj_bias.vec<T>();
    out_b_ = w.out_proj_bias.vec<T>();
    fc1_b_ = w.fc1_bias.vec<T>();
    fc2_b_ = w.fc2_bias.vec<T>();
  }

  int64_t index() const { return index_; }
  const VisionLayerWeights& weights() const { return w_; }

  // Runs the layer on the residual stream x [n, vh] of image `image` in place; `obs` may be null.
  void forward(MatRef<T> x, Observer<T>* obs = nullptr, int64_t image = 0) const {
    const detail::LayerTap<T> tap{obs, int32_t(index_), 0, image};
    Mat<T> h = detail::layer_norm<T>(x, ln1_w_, ln1_b_, eps_, backend_);
    tap(SiteKind::VisionLayerNorm1, MatRef<T>(h));
    x += self_attention(h, tap);
    h = detail::layer_norm<T>(x, ln2_w_, ln2_b_, eps_, backend_);
    tap(SiteKind::VisionLayerNorm2, MatRef<T>(h));
    x += mlp(h, tap);
    tap(SiteKind::VisionResidual, x);
  }

 private:
  bool fast() const { return std::is_same_v<T, float> && backend_ != Backend::Plain; }

  // Full bidirectional multi-head attention with biases (SiglipAttention).
  Mat<T> self_attention(const ConstMatRef<T>& h, const detail::LayerTap<T>& tap) const {
    const int64_t n = h.rows(), D = head_dim_;
    // q, k and v read the same h: one GEMM over the three matrices on the fast path.
    auto qkv = linear<T>(h, std::array{&w_.q_proj_weight, &w_.k_proj_weight, &w_.v_proj_weight},
                         std::array{&q_b_, &k_b_, &v_b_}, backend_);
    const Mat<T>& q = qkv[0];  // [n, heads*D]
    const Mat<T>& k = qkv[1];
    const Mat<T>& v = qkv[2];
    tap(SiteKind::VisionQProj, MatRef<T>(qkv[0]));
    tap(SiteKind::VisionKProj, MatRef<T>(qkv[1]));
    tap(SiteKind::VisionVProj, MatRef<T>(qkv[2]));
    Mat<T> out;  // [n, heads*D] heads concatenated, before out_proj
    const bool edited = tap.edits(SiteKind::VisionAttnWeights);
    if constexpr (std::is_same_v<T, float>)
      if (fast() && !edited) {
        out = fast::attend_bidirectional(q, k, v, heads_, D, scale_);
        if (tap.wants(SiteKind::VisionAttnWeights)) {  // beside it, by the plain code
          Mat<T> weights = detail::attention_probabilities<T>(q, k, heads_, D, scale_);
          tap(SiteKind::VisionAttnWeights, MatRef<T>(weights), {.heads = heads_});
        }
      }
    if (out.size() == 0) {
      out.resize(n, heads_ * D);
      if (!tap.wants(SiteKind::VisionAttnWeights)) {  // one head's [n, n] at a time
        for (int64_t head = 0; head < heads_; ++head)
          out.middleCols(head * D, D).noalias() =
              detail::head_probabilities<T>(q, k, head, D, scale_) * v.middleCols(head * D, D);
      } else {  // kept for every head [heads*n, n], announced, then multiplied by V
        Mat<T> weights = detail::attention_probabilities<T>(q, k, heads_, D, scale_);
        tap(SiteKind::VisionAttnWeights, MatRef<T>(weights), {.heads = heads_});
        for (int64_t head = 0; head < heads_; ++head)
          out.middleCols(head * D, D).noalias() =
              weights.middleRows(head * n, n) * v.middleCols(head * D, D);
      }
    }
    Mat<T> o = linear<T>(out, w_.out_proj_weight, out_b_, backend_);
    tap(SiteKind::VisionSelfAttn, MatRef<T>(o));
    return o;
  }

  // fc2(gelu_tanh(fc1(h))) (SiglipMLP): fused on the fast path unless fc1 is asked for.
  Mat<T> mlp(const ConstMatRef<T>& h, const detail::LayerTap<T>& tap) const {
    Mat<T> m;
    if constexpr (std::is_same_v<T, float>)
      if (fast() && !tap.wants(SiteKind::VisionFc1))
        m = fast::gelu_mlp(h, w_.fc1_weight, fc1_b_.data(), w_.fc2_weight, fc2_b_.data(),
                           matmul_inputs(backend_));
    if (m.size() == 0) {
      m = linear<T>(h, w_.fc1_weight, fc1_b_, backend_);  // [n, v_intermediate]
      tap(SiteKind::VisionFc1, MatRef<T>(m));
      if constexpr (std::is_same_v<T, float>)
        m = fast() ? fast::gelu_tanh(m) : plain::gelu_tanh<T>(m);
      else
        m = plain::gelu_tanh<T>(m);
      m = linear<T>(m, w_.fc2_weight, fc2_b_, backend_);  // [n, vh]
    }
    tap(SiteKind::VisionMlp, MatRef<T>(m));
    return m;
  }

  int64_t index_, heads_, head_dim_;
  double eps_;
  Backend backend_;
  T scale_;
  VisionLayerWeights w_;
  Vec<T> ln1_w_, ln1_b_, ln2_w_, ln2_b_, q_b_, k_b_, v_b_, out_b_, fc1_b_, fc2_b_;
};

// The vision tower: pixels [3, S*S] → last_hidden_state [P², vh].
template <typename T = float>
class SiglipVisionModel {
 public:
  // The weights are views: the Checkpoint they come from must outlive the model.
  SiglipVisionModel(const VisionConfig& cfg, const VisionWeights& w,
                    Backend backend = Backend::Fast)
      : cfg_(cfg),
        backend_(backend),
        patch_embedding_(w.patch_embedding_weight),
        position_embedding_(w.position_embedding) {
    validate(cfg);
    const int64_t vh = cfg.hidden_size;
    expect_shape(patch_embedding_, Shape{vh, cfg.num_channels, cfg.patch_size, cfg.patch_size},
                 "vision tower");
    expect_shape(position_embedding_, Shape{cfg.num_patches(), vh}, "vision tower");
    if (static_cast<int64_t>(w.layers.size()) != cfg.num_hidden_layers)
      throw InvalidArgument("vision weights", "have " + std::to_string(w.layers.size()) +
                                                  " layers, the config says " +
                                                  std::to_string(cfg.num_hidden_layers));
    for (int64_t i = 0; i < cfg.num_hidden_layers; ++i)
      layers_.emplace_back(cfg, i, w.layers[i], backend);
    patch_bias_ = w.patch_embedding_bias.vec<T>();
    post_w_ = w.post_layernorm_weight.vec<T>();
    post_b_ = w.post_layernorm_bias.vec<T>();
  }

  const VisionConfig& config() const { return cfg_; }
  Backend backend() const { return backend_; }
  const std::vector<SiglipEncoderLayer<T>>& layers() const { return layers_; }

  // Patch embedding as a matmul over unfolded patches (SiglipVisionEmbeddings' Conv2d with
  // kernel = stride = patch_size): patch n = py * P + px (row-major
  // over the conv output grid) is the vector u[c*p*p + ky*p + kx] = pixel[c][(py*p + ky)*S + px*p +
  // kx], matching the [vh, 3, p, p] Conv2d weight seen as [vh, 3*p*p]. Then +
  // position_embedding[n].
  Mat<T> embeddings(const ConstMatRef<T>& pixel_values) const {
    check_input(pixel_values);
    const int64_t S = cfg_.image_size, p = cfg_.patch_size, P = cfg_.patches_per_side(),
                  C = cfg_.num_channels;
    Mat<T> patches(P * P, C * p * p);  // [P², 3*p*p]
    for (int64_t py = 0; py < P; ++py)
      for (int64_t px = 0; px < P; ++px)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t ky = 0; ky < p; ++ky)
            patches.row(py * P + px).segment(c * p * p + ky * p, p) =
                pixel_values.row(c).segment((py * p + ky) * S + px * p, p);
    Mat<T> x = linear<T>(patches, patch_embedding_, patch_bias_, backend_);  // [P², vh]
    x += position_embedding_.as<T>();
    return x;
  }

  // last_hidden_state [P², vh] of one image.
  // `obs` (may be null) sees the sites it asked for, as those of image `image`.
  Mat<T> forward(const ConstMatRef<T>& pixel_values, Observer<T>* obs = nullptr,
                 int64_t image = 0) const {
    Mat<T> x = embeddings(pixel_values);
    announce(obs, Site{SiteKind::VisionEmbeddings}, MatRef<T>(x), {.image = image});
    for (const auto& layer : layers_) layer.forward(x, obs, image);
    Mat<T> y = detail::layer_norm<T>(x, post_w_, post_b_, cfg_.layer_norm_eps, backend_);
    announce(obs, Site{SiteKind::VisionPostLayernorm}, MatRef<T>(y), {.image = image});
    return y;
  }

 private:
  void check_input(const ConstMatRef<T>& px) const {
    const int64_t S = cfg_.image_size;
    if (px.rows() != cfg_.num_channels || px.cols() != S * S)
      throw InvalidArgument("pixel_values", "expected [" + std::to_string(cfg_.num_channels) +
                                                ", " + std::to_string(S * S) + "] (channels x " +
                                                std::to_string(S) + "*" + std::to_string(S) +
                                                " pixels), got [" + std::to_string(px.rows()) +
                                                ", " + std::to_string(px.cols()) + "]");
  }

  VisionConfig cfg_;
  Backend backend_;
  TensorView patch_embedding_;     // [vh, 3, p, p]  embeddings.patch_embedding.weight
  TensorView position_embedding_;  // [P², vh]       embeddings.position_embedding.weight
  std::vector<SiglipEncoderLayer<T>> layers_;
  Vec<T> patch_bias_, post_w_, post_b_;
};

}  // namespace gemma3::inline GEMMA3_MODE
