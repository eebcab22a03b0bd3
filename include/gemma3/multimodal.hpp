// The whole Gemma 3 model: the text decoder and, for the multimodal checkpoints (4B/12B/27B), the
// image path — ImageProcessor → SigLIP → projector → soft tokens merged into the decoder input
// (transformers 4.51.3 modeling_gemma3.py: Gemma3ForConditionalGeneration.forward, and its
// _update_causal_mask, which unmasks each image's block of the mask by token_type_ids; the Gemma 3
// report, section 2.1):
//   * the k-th image's soft tokens replace the k-th run of <image_soft_token> ids, in order;
//   * they are NOT scaled by sqrt(hidden) (text embeddings are);
//   * each image's tokens attend to each other bidirectionally, in every layer.
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
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

namespace gemma3::inline GEMMA3_MODE {

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
    if (const auto* mmproj = ck.mmproj()) {  // a GGUF model: the mmproj file says
      pc.image_mean = mmproj->config().image_mean;
      pc.image_std = mmproj->config().image_std;
    } else if (std::filesystem::exists(pre)) {
      pc = load_preprocessor_config(pre, &*cfg_.vision);
    }
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

// Soft tokens of the images a conversation has already shown, so that an image shown again (a chat
// that refers back to it, the same file given twice, pan & scan crops repeated) is encoded once:
// a 4B image costs seconds of SigLIP, a lookup microseconds. Entries are keyed by a 64-bit hash
// of the preprocessed pixel values (the image as the model sees it: size, crops and processor
// settings included) and confirmed by comparing the pixels, so a collision can only cost an
// encode, never give another image's tokens. At most `capacity` entries, the least recently used
// evicted (each holds its pixels, 9.6 MB at 896², and its soft tokens).
template <typename T = float>
class ImageCache {
 public:
  explicit ImageCache(std::size_t capacity = 16) : capacity_(capacity) {
    if (capacity == 0) throw InvalidArgument("image cache capacity", "must be at least 1");
  }

  // The soft tokens of `pixel_values` [3, S*S] under `model`: from the cache, or encoded and kept.
  Mat<T> encode(const Gemma3<T>& model, const Mat<float>& pixel_values) {
    const uint64_t key = content_hash(pixel_values);
    ++clock_;
    for (Entry& e : entries_)
      if (e.key == key && e.model == &model && e.pixels == pixel_values) {
        e.last_use = clock_;
        ++hits_;
        return e.soft_tokens;
      }
    ++misses_;
    Mat<T> soft = model.encode(pixel_values);
    if (entries_.size() == capacity_)
      entries_.erase(
          std::min_element(entries_.begin(), entries_.end(),
                           [](const Entry& a, const Entry& b) { return a.last_use < b.last_use; }));
    entries_.push_back({key, &model, pixel_values, soft, clock_});
    return soft;
  }

  std::size_t size() const { return entries_.size(); }
  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }
  void clear() { entries_.clear(); }

  // FNV-1a over the values' bytes, 8 at a time (a few ms for an 896² image).
  static uint64_t content_hash(const Mat<float>& m) {
    uint64_t h = 0xcbf29ce484222325ull ^ uint64_t(m.rows()) ^ (uint64_t(m.cols()) << 32);
    const auto* bytes = reinterpret_cast<const unsigned char*>(m.data());
    const std::size_t n = std::size_t(m.size()) * sizeof(float);
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t word;
      std::memcpy(&word, bytes + i, 8);
      h = (h ^ word) * 0x100000001b3ull;
    }
    for (; i < n; ++i) h = (h ^ bytes[i]) * 0x100000001b3ull;
    return h;
  }

 private:
  struct Entry {
    uint64_t key;
    const Gemma3<T>* model;
    Mat<float> pixels;
    Mat<T> soft_tokens;
    uint64_t last_use;
  };
  std::size_t capacity_;
  std::vector<Entry> entries_;
  uint64_t clock_ = 0;
  int64_t hits_ = 0, misses_ = 0;
};

#if GEMMA3_EXTERN_TEMPLATES
extern template class Gemma3<float>;
extern template class Gemma3<double>;
#endif

}  // namespace gemma3::inline GEMMA3_MODE
