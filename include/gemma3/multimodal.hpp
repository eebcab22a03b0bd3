// The whole Gemma 3 model: the text decoder and, for the multimodal checkpoints (4B/12B/27B), the
// image path — ImageProcessor → SigLIP → projector → soft tokens merged into the decoder input
// (spec §2.1, §2.7, §3.4):
//   * the k-th image's soft tokens replace the k-th run of <image_soft_token> ids, in order;
//   * they are NOT scaled by sqrt(hidden) (text embeddings are);
//   * each image's tokens attend to each other bidirectionally, in every layer.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gemma3/checkpoint.hpp"
#include "gemma3/error.hpp"
#include "gemma3/kernels/ops.hpp"
#include "gemma3/observer.hpp"
#include "gemma3/text/kv_cache.hpp"
#include "gemma3/text/mask.hpp"
#include "gemma3/text/model.hpp"
#include "gemma3/vision.hpp"

namespace gemma3 {

// Image soft tokens for a prompt: one [mm_tokens_per_image, hidden] matrix per image (pan & scan
// crops count as images), in the order their placeholder runs appear in the ids.
template <typename T>
using ImageEmbeddings = std::vector<Mat<T>>;

// Overwrites the embeddings of the image placeholders in x [n, hidden] with the images' soft
// tokens. The number of placeholders must equal the images' total soft-token count.
template <typename T>
void merge_image_embeddings(MatRef<T> x, std::span<const int32_t> ids, int64_t image_token_id,
                            const ImageEmbeddings<T>& images) {
  int64_t placeholders = 0;
  for (const int32_t id : ids) placeholders += id == image_token_id;
  int64_t soft_tokens = 0;
  for (const auto& img : images) {
    if (img.cols() != x.cols())
      throw InvalidArgument("images", "soft tokens have width " + std::to_string(img.cols()) +
                                          ", the model's hidden size is " +
                                          std::to_string(x.cols()));
    soft_tokens += img.rows();
  }
  if (placeholders != soft_tokens)
    throw InvalidArgument("images", std::to_string(placeholders) +
                                        " image placeholder tokens in the prompt but " +
                                        std::to_string(images.size()) + " image(s) with " +
                                        std::to_string(soft_tokens) + " soft tokens");
  std::size_t image = 0;
  int64_t row = 0;
  for (std::size_t t = 0; t < ids.size(); ++t) {
    if (ids[t] != image_token_id) continue;
    x.row(static_cast<Eigen::Index>(t)) = images[image].row(row);
    if (++row == images[image].rows()) ++image, row = 0;
  }
}

template <typename T = float>
class Gemma3 {
 public:
  // Views into `ck`, which must outlive the model.
  explicit Gemma3(const Checkpoint& ck, Backend backend = Backend::Fast);

  const ModelConfig& config() const { return cfg_; }
  const TextModel<T>& text() const { return text_; }
  // Tokens a long prompt runs through the layers at a time (TextModel::set_prefill_chunk).
  void set_prefill_chunk(int64_t tokens) { text_.set_prefill_chunk(tokens); }
  bool has_vision() const { return vision_.has_value(); }
  const VisionEncoder<T>& vision() const {
    if (!vision_)
      throw InvalidArgument(
          "image", "this is a text-only checkpoint (" + cfg_.model_type + "): no vision tower");
    return *vision_;
  }
  const ImageProcessor& processor() const {
    vision();
    return *processor_;
  }
  // The placeholder id whose runs images fill (-1 for text-only checkpoints).
  int64_t image_token_id() const { return has_vision() ? cfg_.image_token_index : -1; }

  // Processor output for `image`: the image, then its pan & scan crops when enabled.
  std::vector<Mat<float>> pixel_values(const Image& image) const {
    return processor()(image).pixel_values;
  }

  // Soft tokens [mm_tokens_per_image, hidden] of one preprocessed image [3, S*S]; `obs` (may be
  // null) sees the vision sites it asked for, as those of image `image`.
  Mat<T> encode(const Mat<float>& pixel_values, Observer<T>* obs = nullptr,
                int64_t image = 0) const;
  // Soft tokens of every image and crop, in prompt order (image k of SiteInfo is the k-th of them).
  ImageEmbeddings<T> encode(const std::vector<Image>& images, Observer<T>* obs = nullptr) const;

  // The decoder input: scaled text embeddings with the images' soft tokens merged in.
  Mat<T> embed(std::span<const int32_t> ids, const ImageEmbeddings<T>& images = {}) const;

  // Runs ids (and their images) into `cache` after what it holds; logits of the rows asked for.
  Mat<T> forward(std::span<const int32_t> ids, const ImageEmbeddings<T>& images, KVCache<T>& cache,
                 const LogitRows& rows = LogitRows::all()) const {
    return forward_impl(ids, images, cache, nullptr, rows);
  }
  Mat<T> forward(std::span<const int32_t> ids, const ImageEmbeddings<T>& images, KVCache<T>& cache,
                 Observer<T>& obs, const LogitRows& rows = LogitRows::all()) const {
    return forward_impl(ids, images, cache, &obs, rows);
  }
  // The whole sequence from position 0 with a fresh cache.
  Mat<T> forward(std::span<const int32_t> ids, const ImageEmbeddings<T>& images = {},
                 const LogitRows& rows = LogitRows::all()) const {
    KVCache<T> cache = cache_for(ids);
    return forward_impl(ids, images, cache, nullptr, rows);
  }
  Mat<T> forward(std::span<const int32_t> ids, const ImageEmbeddings<T>& images, Observer<T>& obs,
                 const LogitRows& rows = LogitRows::all()) const {
    KVCache<T> cache = cache_for(ids);
    return forward_impl(ids, images, cache, &obs, rows);
  }
  // forward(ids, images) that also captures `sites` (text sites; vision ones are captured by
  // passing the observer to encode).
  RunWithCache<T> run_with_cache(std::span<const int32_t> ids, const ImageEmbeddings<T>& images,
                                 SiteSet sites, const LogitRows& rows = LogitRows::all()) const {
    RunWithCache<T> r{Mat<T>(), Capture<T>(std::move(sites))};
    r.logits = forward(ids, images, r.captured, rows);
    return r;
  }

 private:
  Mat<T> forward_impl(std::span<const int32_t> ids, const ImageEmbeddings<T>& images,
                      KVCache<T>& cache, Observer<T>* obs, const LogitRows& rows) const;
  KVCache<T> cache_for(std::span<const int32_t> ids) const;

  ModelConfig cfg_;
  TextModel<T> text_;
  std::optional<VisionEncoder<T>> vision_;
  std::optional<ImageProcessor> processor_;
};

// The members with real work, out of the class (not inline: see text/model.hpp).

template <typename T>
Gemma3<T>::Gemma3(const Checkpoint& ck, Backend backend) : cfg_(ck.config()), text_(ck, backend) {
  if (cfg_.is_multimodal()) {
    vision_.emplace(ck, backend);
    ImageProcessorConfig pc = ImageProcessorConfig::for_vision(*cfg_.vision);
    const auto pre = ck.dir() / "preprocessor_config.json";
    if (std::filesystem::exists(pre)) pc = load_preprocessor_config(pre, &*cfg_.vision);
    processor_.emplace(pc);
  }
}

template <typename T>
Mat<T> Gemma3<T>::encode(const Mat<float>& pixel_values, Observer<T>* obs, int64_t image) const {
  return vision().encode(pixel_values.template cast<T>(), obs, image);
}

template <typename T>
ImageEmbeddings<T> Gemma3<T>::encode(const std::vector<Image>& images, Observer<T>* obs) const {
  ImageEmbeddings<T> out;
  for (const auto& image : images)
    for (const auto& pv : pixel_values(image)) out.push_back(encode(pv, obs, int64_t(out.size())));
  return out;
}

template <typename T>
Mat<T> Gemma3<T>::embed(std::span<const int32_t> ids, const ImageEmbeddings<T>& images) const {
  Mat<T> x = text_.embed(ids);
  if (!images.empty() || image_token_id() >= 0)
    merge_image_embeddings<T>(x, ids, image_token_id(), images);
  return x;
}

template <typename T>
Mat<T> Gemma3<T>::forward_impl(std::span<const int32_t> ids, const ImageEmbeddings<T>& images,
                               KVCache<T>& cache, Observer<T>* obs, const LogitRows& rows) const {
  Mat<T> x = embed(ids, images);
  return text_.forward_embeddings(x, image_groups(ids, image_token_id()), cache, obs, rows);
}

template <typename T>
KVCache<T> Gemma3<T>::cache_for(std::span<const int32_t> ids) const {
  if (ids.empty()) throw InvalidArgument("ids", "empty sequence");
  text_.check_length(static_cast<int64_t>(ids.size()));
  return KVCache<T>(cfg_.text, static_cast<int64_t>(ids.size()));
}

#if GEMMA3_EXTERN_TEMPLATES
extern template class Gemma3<float>;
extern template class Gemma3<double>;
#endif

}  // namespace gemma3
