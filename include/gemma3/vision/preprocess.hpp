// Image preprocessing exactly as transformers' slow Gemma3ImageProcessor does it (transformers
// 4.51.3 image_processing_gemma3.py):
//
//   RGB uint8 image ─(optional pan & scan: [original, crop_1, …, crop_n])─▶ each image:
//   PIL resize to (height, width) with BILINEAR (no aspect-ratio preservation)
//   ─▶ v = float32(float64(u8) · rescale_factor) ─▶ (v − mean) / std in float32 ─▶ CHW
//
// Pixel values are laid out as a row-major Mat<float> of shape [3, height * width]: row c is
// channel c (R, G, B), column y * width + x. The memory is therefore exactly HF's `pixel_values[i]`
// of shape [3, H, W] (C order).
//
// The resize is Pillow's (src/libImaging/Resample.c, ImagingResampleInner with the BILINEAR filter,
// 8 bits per channel) reproduced step for step so that the result is bit-identical:
//   * separable, horizontal pass first into an 8-bit intermediate holding only the source rows the
//     vertical pass reads ([first row of the first output row, last row of the last)), then
//     vertical; a pass whose size does not change is skipped;
//   * per output coordinate (precompute_coeffs): scale = in/out, filterscale = max(scale, 1),
//     support = filterscale (bilinear support 1: downscaling widens the kernel = antialiasing),
//     center = (xx + 0.5)·scale, xmin = max(0, (int)(center − support + 0.5)),
//     xmax = min(in, (int)(center + support + 0.5)), weights tri((x + xmin − center +
//     0.5)/filterscale) normalised by their sum, all in double;
//   * normalize_coeffs_8bpc: each weight to fixed point with PRECISION_BITS = 32 − 8 − 2 = 22 bits,
//     (int)(w·2²² ± 0.5) (round half away from zero);
//   * accumulate 2²¹ + Σ pixel·weight in int32, then clip8: the value >> 22 clamped to [0, 255]
//     (Pillow's _clip8_lookups table).
// transformers' `resize` hands uint8 arrays to PIL unscaled and calls image.resize((w, h),
// resample, reducing_gap=None), so no reduce() pre-pass happens.
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gemma3/config.hpp"
#include "gemma3/error.hpp"
#include "gemma3/tensor.hpp"
#include "gemma3/vision/image.hpp"

namespace gemma3::inline GEMMA3_MODE {

// ---------------------------------------------------------------------------------------------
// Pillow's bilinear resize.

namespace detail {

// The fixed-point filter of one axis: output coordinate i reads count[i] source samples starting at
// first[i], with weights k[i * ksize + j] (Q22).
struct ResampleAxis {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> k;
};

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bilinear filter and the whole-image
// box.
inline ResampleAxis pillow_bilinear_axis(int in_size, int out_size) {
  constexpr int kPrecisionBits = 32 - 8 - 2;
  auto bilinear = [](double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
  };
  // Pillow computes (double)(in1 - in0) / outSize with a float box; exact for any size we accept.
  const double scale = static_cast<double>(static_cast<float>(in_size) - 0.0f) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;
  ResampleAxis a;
  a.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  a.first.resize(out_size);
  a.count.resize(out_size);
  a.k.assign(static_cast<std::size_t>(out_size) * a.ksize, 0);
  std::vector<double> w(a.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = 0.0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    const int xmin =
        std::max(0, static_cast<int>(center - support + 0.5));  // C truncation, as Pillow
    const int xmax = std::min(in_size, static_cast<int>(center + support + 0.5)) - xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = bilinear((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      a.k[static_cast<std::size_t>(xx) * a.ksize + x] = static_cast<int32_t>(
          v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    a.first[xx] = xmin;
    a.count[xx] = xmax;
  }
  return a;
}

// Pillow's clip8: the accumulator >> PRECISION_BITS, clamped to a byte.
inline uint8_t pillow_clip8(int32_t acc) {
  return static_cast<uint8_t>(std::clamp(acc >> 22, 0, 255));
}

}  // namespace detail

// Resizes to width x height exactly like PIL's Image.resize(size, Image.BILINEAR) on an RGB image.
inline Image resize_bilinear(const Image& in, int64_t width, int64_t height) {
  if (in.empty()) throw InvalidArgument("image", "cannot resize an empty image");
  if (width <= 0 || height <= 0 || width > kMaxImageSide || height > kMaxImageSide)
    throw InvalidArgument("size", "resize target " + std::to_string(width) + " x " +
                                      std::to_string(height) + " is out of range [1, " +
                                      std::to_string(kMaxImageSide) + "]");
  const int in_w = static_cast<int>(in.width), in_h = static_cast<int>(in.height);
  const int out_w = static_cast<int>(width), out_h = static_cast<int>(height);
  if (in_w == out_w && in_h == out_h) return in;  // PIL returns a copy

  const detail::ResampleAxis vert = detail::pillow_bilinear_axis(in_h, out_h);
  // Source rows the vertical pass reads: [row_first, row_last).
  const int row_first = vert.first.front();
  const int row_last = vert.first.back() + vert.count.back();

  // Horizontal pass (skipped when the width does not change) into an 8-bit intermediate of the rows
  // [row_first, row_last).
  Image tmp;
  int tmp_row0 = 0;  // source row held by tmp's row 0
  if (in_w != out_w) {
    const detail::ResampleAxis horiz = detail::pillow_bilinear_axis(in_w, out_w);
    tmp = Image(out_w, row_last - row_first);
    tmp_row0 = row_first;
    for (int yy = 0; yy < tmp.height; ++yy)
      for (int xx = 0; xx < out_w; ++xx) {
        const int32_t* k = &horiz.k[static_cast<std::size_t>(xx) * horiz.ksize];
        for (int c = 0; c < 3; ++c) {
          int32_t acc = 1 << 21;
          for (int x = 0; x < horiz.count[xx]; ++x)
            acc += in.at(yy + row_first, horiz.first[xx] + x, c) * k[x];
          tmp.at(yy, xx, c) = detail::pillow_clip8(acc);
        }
      }
  } else {
    tmp = in;
  }
  if (in_h == out_h) return tmp;  // the horizontal pass kept every row

  // Vertical pass.
  Image out(out_w, out_h);
  for (int yy = 0; yy < out_h; ++yy) {
    const int32_t* k = &vert.k[static_cast<std::size_t>(yy) * vert.ksize];
    const int y0 = vert.first[yy] - tmp_row0;
    for (int xx = 0; xx < out_w; ++xx)
      for (int c = 0; c < 3; ++c) {
        int32_t acc = 1 << 21;
        for (int y = 0; y < vert.count[yy]; ++y) acc += tmp.at(y0 + y, xx, c) * k[y];
        out.at(yy, xx, c) = detail::pillow_clip8(acc);
      }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pan and scan (transformers 4.51.3 Gemma3ImageProcessor.pan_and_scan).

// Defaults are the processor's (Gemma3ProcessorKwargs: min crop 256, at most 4 crops, activation
// ratio 1.2); preprocessor_config.json leaves them null.
struct PanAndScanParams {
  int64_t min_crop_size = 256;
  int64_t max_num_crops = 4;
  double min_ratio_to_activate = 1.2;
  bool operator==(const PanAndScanParams&) const = default;
};

struct CropBox {
  int64_t x = 0, y = 0, width = 0, height = 0;  // already clipped to the image
  bool operator==(const CropBox&) const = default;
};

// The crops pan-and-scan cuts from a width x height image, row-major; empty when it does not apply.
//   landscape/square (w >= h): skip if w/h < ratio; n = floor(w/h + 0.5), n = min(n,
//   floor(w/min_crop)), then n = min(max_num_crops, max(2, n)); one row of n crops. Portrait: the
//   same with h/w, one column. crop = ceil(side / n); skip if min(crop_w, crop_h) < min_crop; the
//   last crop is clipped at the edge.
inline std::vector<CropBox> pan_and_scan_boxes(int64_t width, int64_t height,
                                               const PanAndScanParams& p) {
  if (width <= 0 || height <= 0)
    throw InvalidArgument("image", "pan and scan needs a non-empty image");
  if (p.min_crop_size <= 0) throw InvalidArgument("pan_and_scan_min_crop_size", "must be positive");
  if (p.max_num_crops <= 0) throw InvalidArgument("pan_and_scan_max_num_crops", "must be positive");
  const double w = static_cast<double>(width), h = static_cast<double>(height);
  int64_t crops_w = 1, crops_h = 1;
  if (width >= height) {
    if (w / h < p.min_ratio_to_activate) return {};
    int64_t n = static_cast<int64_t>(std::floor(w / h + 0.5));  // half rounds up
    n = std::min(static_cast<int64_t>(std::floor(w / static_cast<double>(p.min_crop_size))), n);
    n = std::max<int64_t>(2, n);
    crops_w = std::min(p.max_num_crops, n);
  } else {
    if (h / w < p.min_ratio_to_activate) return {};
    int64_t n = static_cast<int64_t>(std::floor(h / w + 0.5));
    n = std::min(static_cast<int64_t>(std::floor(h / static_cast<double>(p.min_crop_size))), n);
    n = std::max<int64_t>(2, n);
    crops_h = std::min(p.max_num_crops, n);
  }
  const int64_t crop_w = (width + crops_w - 1) / crops_w;  // ceil(width / crops_w)
  const int64_t crop_h = (height + crops_h - 1) / crops_h;
  if (std::min(crop_w, crop_h) < p.min_crop_size) return {};
  std::vector<CropBox> boxes;
  for (int64_t i = 0; i < crops_h; ++i)
    for (int64_t j = 0; j < crops_w; ++j) {
      const int64_t x = j * crop_w, y = i * crop_h;
      const CropBox b{x, y, std::min(crop_w, width - x), std::min(crop_h, height - y)};
      // Only reachable with min_crop_size far below the defaults; HF would fail resizing an empty
      // crop.
      if (b.width <= 0 || b.height <= 0)
        throw InvalidArgument("pan_and_scan", "crop " + std::to_string(boxes.size()) + " of a " +
                                                  std::to_string(width) + " x " +
                                                  std::to_string(height) + " image would be empty");
      boxes.push_back(b);
    }
  return boxes;
}

// ---------------------------------------------------------------------------------------------
// The processor.

// The settings of Gemma3ImageProcessor (preprocessor_config.json), with the values that the
// published checkpoints use (CFG-pre): 896 x 896, BILINEAR, 1/255, mean = std = 0.5, no pan & scan.
struct ImageProcessorConfig {
  int64_t height = 896, width = 896;  // size
  bool do_resize = true;
  int resample = 2;  // PIL.Image.BILINEAR: the only filter implemented
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::array<double, 3> image_mean{0.5, 0.5, 0.5};
  std::array<double, 3> image_std{0.5, 0.5, 0.5};
  bool do_pan_and_scan = false;
  PanAndScanParams pan_and_scan;

  // The published settings at the vision tower's input size.
  static ImageProcessorConfig for_vision(const VisionConfig& v) {
    ImageProcessorConfig c;
    c.height = c.width = v.image_size;
    return c;
  }
  bool operator==(const ImageProcessorConfig&) const = default;
};

inline void validate(const ImageProcessorConfig& c) {
  if (c.height <= 0 || c.width <= 0 || c.height > kMaxImageSide || c.width > kMaxImageSide)
    throw ConfigError("size",
                      "height and width must be in [1, " + std::to_string(kMaxImageSide) + "]");
  if (c.resample != 2)
    throw ConfigError("resample", "only 2 (PIL BILINEAR, what Gemma 3 uses) is implemented, got " +
                                      std::to_string(c.resample));
  for (double s : c.image_std)
    if (!(s != 0.0)) throw ConfigError("image_std", "must be non-zero");
  if (c.pan_and_scan.min_crop_size <= 0)
    throw ConfigError("pan_and_scan_min_crop_size", "must be positive");
  if (c.pan_and_scan.max_num_crops <= 0)
    throw ConfigError("pan_and_scan_max_num_crops", "must be positive");
}

namespace detail {
inline void read_channels(const nlohmann::json& j, const char* key, std::array<double, 3>& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  if (it->is_number()) {
    out.fill(it->get<double>());
    return;
  }
  if (!it->is_array() || it->size() != 3)
    throw ConfigError(key, "expected a number or a list of 3 numbers, got " + it->dump());
  for (std::size_t i = 0; i < 3; ++i) {
    if (!(*it)[i].is_number()) throw ConfigError(key, "expected numbers, got " + it->dump());
    out[i] = (*it)[i].get<double>();
  }
}
}  // namespace detail

// Parses a preprocessor_config.json document (Gemma3ImageProcessor.save_pretrained's keys). Null or
// absent keys keep the defaults above (for pan & scan: the processor's 256 / 4 / 1.2). When
// `vision` is given, the size must equal its image_size.
inline ImageProcessorConfig parse_preprocessor_config(const nlohmann::json& j,
                                                      const VisionConfig* vision = nullptr) {
  if (!j.is_object()) throw ConfigError("preprocessor_config", "expected a JSON object");
  ImageProcessorConfig c;
  if (vision) c.height = c.width = vision->image_size;
  if (auto t = j.find("image_processor_type"); t != j.end() && t->is_string() &&
                                               t->get<std::string>() != "Gemma3ImageProcessor" &&
                                               t->get<std::string>() != "Gemma3ImageProcessorFast")
    throw ConfigError("image_processor_type", "expected Gemma3ImageProcessor, got " + t->dump());
  if (auto s = j.find("size"); s != j.end() && !s->is_null()) {
    if (!s->is_object() || !s->contains("height") || !s->contains("width"))
      throw ConfigError("size", "expected {\"height\": H, \"width\": W}, got " + s->dump());
    detail::read_field(*s, "size.", "height", c.height);
    detail::read_field(*s, "size.", "width", c.width);
  }
  detail::read_field(j, "", "do_resize", c.do_resize);
  int64_t resample = c.resample;
  detail::read_field(j, "", "resample", resample);
  c.resample = static_cast<int>(resample);
  detail::read_field(j, "", "do_rescale", c.do_rescale);
  detail::read_field(j, "", "rescale_factor", c.rescale_factor);
  detail::read_field(j, "", "do_normalize", c.do_normalize);
  detail::read_channels(j, "image_mean", c.image_mean);
  detail::read_channels(j, "image_std", c.image_std);
  bool convert_rgb = true;
  detail::read_field(j, "", "do_convert_rgb", convert_rgb);
  if (!convert_rgb)
    throw ConfigError("do_convert_rgb", "false is not supported (images are always RGB here)");
  detail::read_field(j, "", "do_pan_and_scan", c.do_pan_and_scan);
  detail::read_field(j, "", "pan_and_scan_min_crop_size", c.pan_and_scan.min_crop_size);
  detail::read_field(j, "", "pan_and_scan_max_num_crops", c.pan_and_scan.max_num_crops);
  detail::read_field(j, "", "pan_and_scan_min_ratio_to_activate",
                     c.pan_and_scan.min_ratio_to_activate);
  validate(c);
  if (vision && (c.height != vision->image_size || c.width != vision->image_size))
    throw ConfigError("size", std::to_string(c.height) + " x " + std::to_string(c.width) +
                                  " does not match the vision tower's image_size " +
                                  std::to_string(vision->image_size));
  return c;
}

inline ImageProcessorConfig load_preprocessor_config(const std::filesystem::path& path,
                                                     const VisionConfig* vision = nullptr) {
  const std::string text = read_file(path, "preprocessor config", 64 << 20);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path.string(), std::string("invalid JSON: ") + e.what());
  }
  try {
    return parse_preprocessor_config(j, vision);
  } catch (const ConfigError& e) {
    throw ConfigError(path.string() + ": " + e.subject(), e.what() + e.subject().size() + 2);
  }
}

// The output of preprocessing one input image.
struct ProcessedImage {
  std::vector<Mat<float>> pixel_values;  // [1 + num_crops] x [3, height * width]: original first
  int64_t num_crops = 0;                 // 0 unless pan & scan applied
};

class ImageProcessor {
 public:
  explicit ImageProcessor(ImageProcessorConfig cfg = {}) : cfg_(cfg) { validate(cfg_); }
  explicit ImageProcessor(const VisionConfig& v)
      : ImageProcessor(ImageProcessorConfig::for_vision(v)) {}

  const ImageProcessorConfig& config() const { return cfg_; }

  // Gemma3ImageProcessor.preprocess for one image: [original, crops...] (crops only with pan &
  // scan).
  ProcessedImage operator()(const Image& image) const {
    ProcessedImage out;
    out.pixel_values.push_back(pixel_values(image));
    if (cfg_.do_pan_and_scan)
      for (const Image& c : pan_and_scan(image)) {
        out.pixel_values.push_back(pixel_values(c));
        ++out.num_crops;
      }
    return out;
  }

  // The crops pan & scan cuts from `image` (not the original), whatever do_pan_and_scan says.
  std::vector<Image> pan_and_scan(const Image& image) const {
    std::vector<Image> crops;
    for (const CropBox& b : pan_and_scan_boxes(image.width, image.height, cfg_.pan_and_scan))
      crops.push_back(crop(image, b.x, b.y, b.width, b.height));
    return crops;
  }

  // One image, no pan & scan: resize, rescale, normalize → [3, height * width].
  Mat<float> pixel_values(const Image& image) const {
    if (image.empty()) throw InvalidArgument("image", "empty image");
    if (!cfg_.do_resize && (image.width != cfg_.width || image.height != cfg_.height))
      throw InvalidArgument(
          "image", "do_resize is false but the image is " + std::to_string(image.width) + " x " +
                       std::to_string(image.height) + ", not " + std::to_string(cfg_.width) +
                       " x " + std::to_string(cfg_.height));
    const Image resized = cfg_.do_resize ? resize_bilinear(image, cfg_.width, cfg_.height) : image;
    // HF `rescale`: image.astype(float64) * scale, then .astype(float32). Without rescale,
    // `normalize` casts the uint8 values to float32. `normalize` then works in float32: (v - mean)
    // / std with mean and std as float32 arrays.
    std::array<float, 256> value{};
    for (int u = 0; u < 256; ++u)
      value[u] = cfg_.do_rescale ? static_cast<float>(static_cast<double>(u) * cfg_.rescale_factor)
                                 : static_cast<float>(u);
    const int64_t n = cfg_.height * cfg_.width;
    Mat<float> out(3, n);
    for (int c = 0; c < 3; ++c) {
      const float mean = static_cast<float>(cfg_.image_mean[c]),
                  sd = static_cast<float>(cfg_.image_std[c]);
      for (int64_t i = 0; i < n; ++i) {
        const float v = value[resized.pixels[static_cast<std::size_t>(i * 3 + c)]];
        out(c, i) = cfg_.do_normalize ? (v - mean) / sd : v;
      }
    }
    return out;
  }

 private:
  ImageProcessorConfig cfg_;
};

}  // namespace gemma3::inline GEMMA3_MODE
