// Images: an 8-bit RGB pixel buffer, decoded from a file or from memory (PNG, JPEG, BMP, GIF, TGA,
// PSD, PNM — what stb_image reads, less Softimage PIC, which PIL cannot open either), converted to
// RGB exactly as the reference does it.
//
// The reference's conversion. Gemma3ImageProcessor calls transformers' generic `convert_to_rgb`
// (src/transformers/image_transforms.py), which for any non-RGB PIL image returns
// `image.convert("RGB")`: greyscale is replicated into R = G = B, a palette is looked up, and an
// alpha channel is DROPPED — not composited. (The variant that alpha-composites onto white lives
// only in model-specific processors such as idefics2's and mllama's; Gemma 3 does not use it.)
// stb_image's conversion to 3 channels does the same: grey → (g, g, g), grey+alpha → (g, g, g),
// RGBA → RGB, a palette with tRNS → its RGB entries.
//
// Known differences from PIL that this loader does not paper over (the fixtures use an 8-bit RGB
// PNG):
//   * JPEG: stb's decoder (IDCT, chroma upsampling) is not libjpeg-turbo's; pixels can differ by a
//   few
//     levels from what PIL decodes. PNG, BMP, GIF, TGA and PNM decode to the same bytes.
//   * 16-bit PNG: stb keeps the high byte (v >> 8), which is what PIL does for 16-bit RGB(A), but
//   PIL
//     opens 16-bit greyscale as mode I;16 and convert("RGB") then clips to 255 instead.
//   * EXIF orientation is not applied (neither does PIL.Image.open; transformers' load_image, used
//   for
//     path/URL inputs, calls exif_transpose). Rotate such images yourself.
//   * Animated GIF: the first frame, as PIL.Image.open gives.
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gemma3/error.hpp"
#include "gemma3/io/files.hpp"
#include "gemma3/vision/detail/stb_image.hpp"

namespace gemma3::inline GEMMA3_MODE {

// Images with a side above this are refused before any pixel memory is allocated (a 16384 x 16384
// RGB image is 768 MiB; the model sees 896 x 896).
inline constexpr int64_t kMaxImageSide = 16384;

// No format stb_image reads packs more pixels into a byte of file than this: the densest are a
// 1-bit PNG at deflate's best ratio (1032:1, so 8256 pixels per byte); run-length TGA and PSD,
// GIF's LZW and JPEG stay far below (at most a few thousand), and so would Softimage PIC's 16-bit
// runs (about 9400) if it were enabled. An image whose header claims more pixels than its bytes can
// hold at this rate is a decompression bomb (stb allocates the claimed size before it decodes), and
// is refused from the header.
inline constexpr int64_t kMaxPixelsPerByte = 16384;

// An 8-bit RGB image, row-major HWC: channel c of pixel (x, y) is pixels[(y * width + x) * 3 + c].
struct Image {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> pixels;  // [height, width, 3]

  Image() = default;
  // A black image of the given size.
  Image(int64_t w, int64_t h)
      : width(w), height(h), pixels(static_cast<std::size_t>(w * h * 3), 0) {}

  bool empty() const { return width == 0 || height == 0; }
  uint8_t& at(int64_t y, int64_t x, int c) {
    return pixels[static_cast<std::size_t>((y * width + x) * 3 + c)];
  }
  const uint8_t& at(int64_t y, int64_t x, int c) const {
    return pixels[static_cast<std::size_t>((y * width + x) * 3 + c)];
  }
  bool operator==(const Image&) const = default;
};

// The rectangle [x, x + width) x [y, y + height) of `image`, clipped to its bounds like a NumPy
// slice image[y : y + height, x : x + width]. Throws InvalidArgument when nothing is left.
inline Image crop(const Image& image, int64_t x, int64_t y, int64_t width, int64_t height) {
  const int64_t x0 = std::clamp<int64_t>(x, 0, image.width),
                y0 = std::clamp<int64_t>(y, 0, image.height);
  const int64_t x1 = std::clamp<int64_t>(x + width, x0, image.width);
  const int64_t y1 = std::clamp<int64_t>(y + height, y0, image.height);
  if (x1 <= x0 || y1 <= y0)
    throw InvalidArgument("crop", "rectangle (" + std::to_string(x) + ", " + std::to_string(y) +
                                      ", " + std::to_string(width) + " x " +
                                      std::to_string(height) + ") does not overlap the " +
                                      std::to_string(image.width) + " x " +
                                      std::to_string(image.height) + " image");
  Image out(x1 - x0, y1 - y0);
  for (int64_t r = 0; r < out.height; ++r)
    std::memcpy(&out.at(r, 0, 0), &image.at(y0 + r, x0, 0),
                static_cast<std::size_t>(out.width * 3));
  return out;
}

// Decodes an encoded image held in memory. `name` is what errors call it (a path, a URL, ...).
// Throws FormatError on empty, unrecognised, corrupt or truncated data, on images with a side above
// kMaxImageSide and on headers claiming more than kMaxPixelsPerByte pixels per byte of data (both
// checked from the header, before decoding).
inline Image decode_image(std::span<const std::byte> bytes, const std::string& name = "<memory>") {
  if (bytes.empty()) throw FormatError(name, "empty image data");
  if (bytes.size() > static_cast<std::size_t>(INT_MAX))
    throw FormatError(name,
                      "image data of " + std::to_string(bytes.size()) + " bytes is too large");
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  const int len = static_cast<int>(bytes.size());
  int w = 0, h = 0, channels = 0;
  if (!detail::stb::info_from_memory(data, len, &w, &h, &channels))
    throw FormatError(
        name, std::string("not a readable image (") + detail::stb::failure_reason() +
                  "): corrupt, truncated, too large, or not PNG, JPEG, BMP, GIF, TGA, PSD or "
                  "PNM");
  if (w <= 0 || h <= 0 || w > kMaxImageSide || h > kMaxImageSide)
    throw FormatError(name, "image is " + std::to_string(w) + " x " + std::to_string(h) +
                                " pixels; each side must be between 1 and " +
                                std::to_string(kMaxImageSide));
  if (int64_t(w) * h > kMaxPixelsPerByte * int64_t(bytes.size()))
    throw FormatError(name, "claims " + std::to_string(w) + " x " + std::to_string(h) +
                                " pixels in " + std::to_string(bytes.size()) +
                                " bytes, more than any image format can encode in them (at most " +
                                std::to_string(kMaxPixelsPerByte) + " pixels per byte)");
  // The image's own channels (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA), converted to RGB below as
  // PIL's convert("RGB") does: grey replicated, alpha dropped. (Asking stb for 3 channels gives the
  // same pixels, but stb_image 2.27 then converts 16-bit PNM data with its 8-bit routine and reads
  // past the buffer: found by tests/fuzz/fuzz_image.)
  std::unique_ptr<unsigned char, void (*)(void*)> decoded(
      detail::stb::load_from_memory(data, len, &w, &h, &channels, 0), detail::stb::image_free);
  if (!decoded)
    throw FormatError(name,
                      std::string("cannot decode image (") + detail::stb::failure_reason() + ")");
  if (channels < 1 || channels > 4)
    throw FormatError(name, "image has " + std::to_string(channels) + " channels");
  Image image(w, h);
  const unsigned char* src = decoded.get();
  uint8_t* dst = image.pixels.data();
  for (std::size_t i = 0, n = std::size_t(w) * std::size_t(h); i < n;
       ++i, src += channels, dst += 3) {
    dst[0] = src[0];
    dst[1] = src[channels >= 3 ? 1 : 0];
    dst[2] = src[channels >= 3 ? 2 : 0];
  }
  return image;
}

inline Image decode_image(std::span<const uint8_t> bytes, const std::string& name = "<memory>") {
  return decode_image(std::as_bytes(bytes), name);
}

// Reads and decodes an image file. Throws IoError when the file cannot be read, FormatError (naming
// the file) when its contents are not a decodable image.
inline Image load_image(const std::filesystem::path& path) {
  const std::string where = path.string();
  const std::string bytes = read_file(path, "image file", uint64_t(INT_MAX));
  if (bytes.empty()) throw FormatError(where, "empty file");
  return decode_image(std::as_bytes(std::span(bytes)), where);
}

}  // namespace gemma3::inline GEMMA3_MODE
