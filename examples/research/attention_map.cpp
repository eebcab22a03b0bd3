// attention_map — pictures of the attention probabilities, written as PNG files.
//
//   attention_map MODEL_DIR OUT_DIR [IMAGE]
//
// 1. Text, any model: for the first local and the first global layer, one heatmap per head.
//    Row = query token, column = key token, colour = attention probability on a square-root
//    scale (so that small weights still show); black = exactly 0, i.e. masked. A local layer
//    shows a diagonal band `sliding_window` keys wide (the window includes the token itself), a
//    global layer the whole lower triangle. The prompt is longer than the tiny presets' windows,
//    so the band shows.
//      layer{L}_{local|global}_head{H}.png   one square cell per (query, key)
//      local_vs_global.png                    a row per head: local layer left, global right
// 2. Image, multimodal model and IMAGE given: the image in a chat prompt, and how strongly the
//    text after it attends (first global layer, averaged over those text queries) to each of the
//    image's mm_tokens_per_image soft tokens, drawn on their sqrt(mm) x sqrt(mm) grid over the
//    image as the model sees it (resized to image_size; soft token k covers grid row k / side,
//    column k % side):
//      image_attention.png   image | mean over heads | head 0 | head 1 | ...
//                            (each heat panel scaled to its own maximum)
//
// Attention probabilities exist only on the plain attention path, which an enabled observer
// selects; the fast path never materialises the [T, S] matrix.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <gemma3/gemma3.hpp>

// stb_image_write, compiled in this translation unit only. gemma3's own stb_image (the decoder
// behind load_image) lives in a private namespace under renamed symbols
// (gemma3/vision/detail/stb_image.hpp), so the two never clash; STB_IMAGE_WRITE_STATIC keeps this
// copy's symbols internal as well.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace {

using gemma3::Image;
using gemma3::Mat;
using RGB = std::array<float, 3>;

// A perceptually ordered ramp, black → purple → orange → pale yellow (like matplotlib's inferno).
RGB heat(float t) {
  static constexpr RGB stops[] = {
      {0, 0, 4}, {87, 16, 110}, {188, 55, 84}, {249, 142, 9}, {252, 255, 164}};
  t = std::clamp(t, 0.0f, 1.0f) * 4.0f;
  const int i = std::min(int(t), 3);
  const float f = t - float(i);
  return {stops[i][0] + f * (stops[i + 1][0] - stops[i][0]),
          stops[i][1] + f * (stops[i + 1][1] - stops[i][1]),
          stops[i][2] + f * (stops[i + 1][2] - stops[i][2])};
}

void set(Image& img, int64_t y, int64_t x, const RGB& c) {
  for (int k = 0; k < 3; ++k)
    img.at(y, x, k) = static_cast<uint8_t>(std::lround(std::clamp(c[k], 0.0f, 255.0f)));
}

// Draws probabilities p [rows, cols] at (x0, y0), `cell` pixels per entry.
void paint(Image& canvas, int64_t x0, int64_t y0, const Mat<float>& p, int64_t cell) {
  for (int64_t r = 0; r < p.rows() * cell; ++r)
    for (int64_t c = 0; c < p.cols() * cell; ++c)
      set(canvas, y0 + r, x0 + c, heat(std::sqrt(p(r / cell, c / cell))));
}

// Writes a PNG, then reads it back with gemma3::load_image (stb_image): PNG is lossless, so the
// image read must equal the image written.
int written = 0;
void save(const Image& img, const std::filesystem::path& path) {
  if (!stbi_write_png(path.c_str(), int(img.width), int(img.height), 3, img.pixels.data(),
                      int(img.width * 3)))
    throw gemma3::IoError(path.string(), "cannot write PNG");
  if (!(gemma3::load_image(path) == img))
    throw gemma3::FormatError(path.string(), "reads back differently");
  ++written;
}

constexpr const char* kText =
    "Attention maps show which earlier tokens each token reads from. In a local layer every "
    "token sees only a short window of recent tokens, while a global layer can look back to the "
    "very first token of the text.";

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 3) {
    std::fprintf(stderr, "usage: attention_map MODEL_DIR OUT_DIR [IMAGE]\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1], out = argv[2];
  std::filesystem::create_directories(out);
  const auto checkpoint = gemma3::Checkpoint::open(dir);
  const gemma3::Gemma3<float> model(checkpoint);
  const gemma3::TextConfig& cfg = model.config().text;
  const gemma3::Tokenizer tokenizer(dir / "tokenizer.model");
  const int64_t heads = cfg.num_attention_heads;

  // The first layer of each kind (layer_kind is the one place that decides).
  int64_t local = -1, global = -1;
  for (int64_t i = cfg.num_hidden_layers - 1; i >= 0; --i)
    (gemma3::layer_kind(cfg, i) == gemma3::LayerKind::Local ? local : global) = i;

  // 1. Text.
  const std::vector<int32_t> ids = tokenizer.encode(kText, {.add_bos = true});
  const auto T = static_cast<int64_t>(ids.size());
  // The probabilities [heads*T, S] of the two layers, head-major; nothing else is kept, and the
  // fast attention still computes the logits (the probabilities are computed beside it).
  gemma3::SiteSet sites;
  for (int64_t layer : {local, global})
    if (layer >= 0) sites.insert(gemma3::Site::attn_weights(int32_t(layer)));
  const auto rec = model.text().run_with_cache(ids, sites, gemma3::LogitRows::none()).captured;
  std::printf("text: %ld tokens, sliding window %ld\n", long(T), long(cfg.sliding_window));
  const int64_t cell = std::max<int64_t>(1, 192 / T), side = T * cell, gap = 8;
  Image both(2 * side + gap, heads * (side + gap) - gap);
  std::fill(both.pixels.begin(), both.pixels.end(), uint8_t(255));  // white between the maps
  int64_t column = 0;
  for (int64_t layer : {local, global}) {
    if (layer < 0) continue;  // a model without local (or global) layers
    const char* kind = layer == local ? "local" : "global";
    const auto& w =
        rec.at(gemma3::Site::attn_weights(int32_t(layer)));  // keys from w.info.key0 = 0
    for (int64_t h = 0; h < heads; ++h) {
      const Mat<float> p = w.head(h);  // [T queries, T keys] of head h
      Image one(side, side);
      paint(one, 0, 0, p, cell);
      save(one, out / ("layer" + std::to_string(layer) + "_" + kind + "_head" + std::to_string(h) +
                       ".png"));
      paint(both, column * (side + gap), h * (side + gap), p, cell);
      // How far back this head can see: the widest span between a query and a key it reads.
      int64_t reach = 0;
      for (int64_t q = 0; q < T; ++q)
        for (int64_t k = 0; k <= q; ++k)
          if (p(q, k) > 0) reach = std::max(reach, q - k + 1);
      std::printf("  layer %ld (%s) head %ld: keys visible per query at most %ld\n", long(layer),
                  kind, long(h), long(reach));
    }
    ++column;
  }
  save(both, out / "local_vs_global.png");

  // 2. Image.
  if (argc > 3 && model.has_vision() && global >= 0) {
    const int64_t mm = model.config().mm_tokens_per_image,
                  grid = std::llround(std::sqrt(double(mm)));
    gemma3::Conversation chat;
    chat.user({gemma3::ContentPart::Image(), gemma3::ContentPart::Text("Describe this image.")});
    const std::vector<int32_t> mm_ids = chat.render_ids(tokenizer, mm);
    const Image image = gemma3::load_image(argv[3]);
    const gemma3::ImageEmbeddings<float> soft{
        model.encode(model.pixel_values(image).front())};  // no crops
    const auto image_rec =
        model
            .run_with_cache(mm_ids, soft, {gemma3::Site::attn_weights(int32_t(global))},
                            gemma3::LogitRows::none())
            .captured;
    const Mat<float>& w = image_rec[gemma3::Site::attn_weights(int32_t(global))];
    const auto n = static_cast<int64_t>(mm_ids.size());
    const auto first =
        std::find(mm_ids.begin(), mm_ids.end(), int32_t(model.image_token_id())) - mm_ids.begin();
    const int64_t q0 = first + mm + 1;  // the text queries: after <end_of_image>

    // a [heads + 1, mm]: each head's attention to each soft token, averaged over the text
    // queries; the last row averages the heads.
    Mat<float> a = Mat<float>::Zero(heads + 1, mm);
    for (int64_t h = 0; h < heads; ++h)
      a.row(h) = w.block(h * n + q0, first, n - q0, mm).colwise().mean();
    a.row(heads) = a.topRows(heads).colwise().mean();
    std::printf("image: %ld x %ld grid of soft tokens at [%ld, %ld), %ld text queries, layer %ld\n",
                long(grid), long(grid), long(first), long(first + mm), long(n - q0), long(global));
    for (int64_t h = 0; h <= heads; ++h)
      std::printf("  %s: %.1f%% of the text's attention on the image\n",
                  h < heads ? ("head " + std::to_string(h)).c_str() : "mean  ",
                  100.0 * a.row(h).sum());

    // Panels at the model's input resolution (at most 448 px): the picture the soft tokens see.
    const int64_t P = std::min<int64_t>(model.vision().image_size(), 448), px = P / grid;
    const Image background = gemma3::resize_bilinear(image, P, P);
    Image panels((heads + 2) * (P + gap) - gap, P);
    std::fill(panels.pixels.begin(), panels.pixels.end(), uint8_t(255));
    for (int64_t panel = 0; panel < heads + 2; ++panel) {
      const float peak = panel == 0 ? 1.0f : std::max(a.row(panel - 1).maxCoeff(), 1e-12f);
      for (int64_t y = 0; y < P; ++y)
        for (int64_t x = 0; x < P; ++x) {
          RGB c{float(background.at(y, x, 0)), float(background.at(y, x, 1)),
                float(background.at(y, x, 2))};
          const int64_t token = std::min(y / px, grid - 1) * grid + std::min(x / px, grid - 1);
          if (panel > 0) {  // 45% image (grey), 55% heat; a dark line at every cell border
            const float grey = 0.3f * c[0] + 0.59f * c[1] + 0.11f * c[2];
            const RGB hot = heat(a(panel - 1, token) / peak);
            for (int k = 0; k < 3; ++k) c[k] = 0.45f * grey + 0.55f * hot[k];
            if (y % px == 0 || x % px == 0) c = {20, 20, 20};
          }
          set(panels, y, panel * (P + gap) + x, c);
        }
    }
    save(panels, out / "image_attention.png");
  }
  std::printf("wrote %d PNG files to %s (each read back with stb_image: identical)\n", written,
              out.c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "attention_map: %s\n", e.what());
  return 1;
}
