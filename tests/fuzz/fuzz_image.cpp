// Fuzz target: image decoding from memory (stb_image: PNG, JPEG, BMP, GIF, TGA, PSD, PIC, PNM) and
// the Gemma 3 preprocessing that follows (Pillow bilinear resize, rescale, normalise, pan & scan).
//
// Input: 4 bytes of processor settings, then the encoded image:
//   [0] output width  = 1 + b % 64     [1] output height = 1 + b % 64
//   [2] bit 0 pan & scan, bit 1 no rescale, bit 2 no normalise, bit 3 do_resize = false
//   [3] pan & scan min crop size = 1 + b, max crops = 1 + b % 5
// (small outputs keep each run fast; the resize code is the same at 896 x 896). Oracles: decoding
// gives width x height x 3 bytes or a gemma3::Error; the processor gives 1 + num_crops matrices of
// [3, height * width] finite values or a gemma3::Error.
#include <cmath>

#include <gemma3/vision/image.hpp>
#include <gemma3/vision/preprocess.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  gemma3::ImageProcessorConfig pc;
  pc.width = 1 + data[0] % 64;
  pc.height = 1 + data[1] % 64;
  pc.do_pan_and_scan = data[2] & 1;
  pc.do_rescale = !(data[2] & 2);
  pc.do_normalize = !(data[2] & 4);
  pc.do_resize = !(data[2] & 8);
  pc.pan_and_scan.min_crop_size = 1 + data[3];
  pc.pan_and_scan.max_num_crops = 1 + data[3] % 5;
  try {
    const gemma3::Image image =
        gemma3::decode_image(std::span<const uint8_t>(data + 4, size - 4), "fuzz");
    FUZZ_CHECK(image.width > 0 && image.height > 0, "empty image accepted");
    FUZZ_CHECK(image.pixels.size() == std::size_t(image.width * image.height * 3), "pixel count");
    const gemma3::ImageProcessor processor(pc);
    const gemma3::ProcessedImage out = processor(image);
    FUZZ_CHECK(out.pixel_values.size() == std::size_t(1 + out.num_crops), "crop count");
    for (const auto& pv : out.pixel_values) {
      FUZZ_CHECK(pv.rows() == 3 && pv.cols() == pc.width * pc.height, "pixel_values shape");
      FUZZ_CHECK(std::isfinite(pv.sum()), "pixel_values not finite");
    }
  } catch (const gemma3::Error&) {
  }
  return 0;
}
