// The whole image + text model against the multimodal fixture (HF transformers 4.51.3, f32), from
// the PNG file to the logits; several images in one prompt; the per-image bidirectional mask.
#include <catch2/catch.hpp>

#include <gemma3/checkpoint.hpp>
#include <gemma3/multimodal.hpp>
#include <gemma3/session.hpp>

#include "test_helpers.hpp"

using namespace gemma3;

namespace {
template <typename T>
void check_mm_fixture(Backend backend) {
  const auto dir = test::fixture("mm-tiny-a");
  const auto ck = Checkpoint::open(dir);
  const Gemma3<T> model(ck, backend);
  const auto images = model.encode(std::vector<Image>{load_image(dir / "image0.png")});
  REQUIRE(images.size() == 1);
  const int64_t L = ck.config().text.num_hidden_layers;
  for (int k = 0; k < test::prompt_count(dir); ++k) {
    const std::string p = test::prompt_prefix(k);
    INFO("prompt " << k << " backend " << to_string(backend));
    const auto ids = test::read_ids(dir / (p + "input_ids.npy"));
    const auto n = static_cast<int64_t>(ids.size());
    const auto [logits, rec] = model.run_with_cache(
        ids, images,
        SiteSet{Site::inputs_embeds(), Site::final_norm()}.insert_every_layer(SiteKind::Residual));
    CHECK(test::max_abs_diff(
              images[0], read_npy(dir / (p + "image_soft_tokens.npy")).matrix<double>()) <= 1e-4);
    CHECK(test::max_abs_diff(rec[Site::inputs_embeds()],
                             read_npy(dir / (p + "embed.npy")).matrix<double>()) <= 1e-4);
    const Mat<double> layers = read_npy(dir / (p + "layers.npy")).matrix<double>();
    for (int64_t l = 0; l < L; ++l)
      CHECK(test::max_abs_diff(rec[Site::residual(int32_t(l))], layers.middleRows(l * n, n)) <=
            1e-4);
    CHECK(test::max_abs_diff(rec[Site::final_norm()],
                             read_npy(dir / (p + "final_norm.npy")).matrix<double>()) <= 1e-4);
    CHECK(test::max_abs_diff(logits, read_npy(dir / (p + "logits.npy")).matrix<double>()) <= 1e-4);
  }
}
}  // namespace

TEST_CASE("multimodal fixture: PNG to logits within 1e-4 (float fast, float plain, double)",
          "[multimodal][fixtures]") {
  check_mm_fixture<float>(Backend::Fast);
  check_mm_fixture<float>(Backend::Plain);
  check_mm_fixture<double>(Backend::Plain);
}

TEST_CASE("multimodal fixture: decode after a prefill holding the image equals decode_logits",
          "[multimodal][decode]") {
  const auto dir = test::fixture("mm-tiny-a");
  const auto ck = Checkpoint::open(dir);
  const Gemma3<float> model(ck);
  const auto images = model.encode(std::vector<Image>{load_image(dir / "image0.png")});
  const auto manifest =
      test::manifest("mm-tiny-a");  // (a range-for over a temporary's element dangles)
  for (const auto& prompt : manifest["prompts"]) {
    if (!prompt.contains("decode")) continue;
    const int64_t P = prompt["decode"]["prefill_len"];
    const auto ids = test::read_ids(dir / (test::prompt_prefix(prompt["index"]) + "input_ids.npy"));
    const auto n = static_cast<int64_t>(ids.size());
    KVCache<float> cache(ck.config().text, n);
    Mat<float> decode(n - P + 1, ck.config().text.vocab_size);
    decode.row(0) = model.forward(std::span(ids).first(P), images, cache, LogitRows::last());
    for (int64_t t = P; t < n; ++t)
      decode.row(t - P + 1) = model.forward(std::span(ids).subspan(t, 1), {}, cache);
    CHECK(
        test::max_abs_diff(
            decode, read_npy(dir / prompt["decode"]["file"].get<std::string>()).matrix<double>()) <=
        1e-4);
  }
}

TEST_CASE("the image matters: a flipped image changes the logits", "[multimodal]") {
  const auto dir = test::fixture("mm-tiny-a");
  const auto ck = Checkpoint::open(dir);
  const Gemma3<float> model(ck);
  Image image = load_image(dir / "image0.png"), flipped = image;
  for (int64_t y = 0; y < image.height; ++y)
    for (int64_t x = 0; x < image.width; ++x)
      for (int c = 0; c < 3; ++c) flipped.at(y, x, c) = image.at(y, image.width - 1 - x, c);
  const auto ids = test::read_ids(dir / "p0_input_ids.npy");
  const Mat<float> a = model.forward(ids, model.encode(std::vector<Image>{image}));
  const Mat<float> b = model.forward(ids, model.encode(std::vector<Image>{flipped}));
  CHECK(test::max_abs_diff(a, b) > 0.1);
}

TEST_CASE("image masks: bidirectional within each image only, wherever the text sits",
          "[multimodal][mask]") {
  // ids: text, image A (3 tokens), text, text, image B (2 tokens), text. Placeholder id 9.
  const std::vector<int32_t> ids{5, 9, 9, 9, 6, 7, 9, 9, 8};
  const auto groups = image_groups(ids, 9);
  CHECK(groups == std::vector<int32_t>{-1, 0, 0, 0, -1, -1, 1, 1, -1});
  for (const LayerKind kind : {LayerKind::Global, LayerKind::Local}) {
    const Mat<uint8_t> m = attention_mask(kind, 4, groups);
    INFO((kind == LayerKind::Global ? "global" : "local"));
    CHECK(m(1, 3) == 1);  // image A's first token sees its last
    CHECK(m(3, 1) == 1);
    CHECK(m(1, 4) == 0);  // ... but not the text after it
    CHECK(m(6, 7) == 1);  // image B bidirectional
    CHECK(
        m(6, 1) ==
        (kind == LayerKind::Global ? 1 : 0));  // B sees A only causally (and not beyond the window)
    CHECK(m(1, 6) == 0);                       // A never sees B
    CHECK(m(8, 7) == 1);                       // text after B sees B causally
    CHECK(m(4, 5) == 0);                       // text stays causal
  }
  // Moving a text token between the images keeps each image's block intact.
  const std::vector<int32_t> moved{9, 9, 9, 5, 6, 9, 9, 7, 8};
  const auto g2 = image_groups(moved, 9);
  const Mat<uint8_t> m2 = attention_mask(LayerKind::Global, 4, g2);
  CHECK(m2(0, 2) == 1);
  CHECK(m2(5, 6) == 1);
  CHECK(m2(0, 5) == 0);
  CHECK(m2(3, 4) == 0);
}

TEST_CASE("several images in one prompt: fast equals plain, the prefill/decode split holds",
          "[multimodal]") {
  const auto dir = test::fixture("mm-tiny-a");
  const auto ck = Checkpoint::open(dir);
  const Gemma3<float> fast(ck, Backend::Fast), plain(ck, Backend::Plain);
  const auto& cfg = ck.config();
  Image image = load_image(dir / "image0.png"), dark = image;
  for (auto& v : dark.pixels) v = uint8_t(v / 3);
  const auto images = fast.encode(std::vector<Image>{image, dark});
  // <bos> text \n\n <boi> 16 x <img> <eoi> \n\n text \n\n <boi> 16 x <img> <eoi> \n\n text
  std::vector<int32_t> ids{2, 105, 40, 108};
  auto add_image = [&] {
    ids.push_back(int32_t(cfg.boi_token_index));
    ids.insert(ids.end(), std::size_t(cfg.mm_tokens_per_image), int32_t(cfg.image_token_index));
    ids.push_back(int32_t(cfg.eoi_token_index));
    ids.push_back(108);
  };
  add_image();
  ids.insert(ids.end(), {41, 42, 108});
  add_image();
  ids.insert(ids.end(), {43, 106, 107, 105, 44, 107});
  const Mat<float> full = fast.forward(ids, images);
  CHECK(test::max_abs_diff(full, plain.forward(ids, images)) <= 2e-5);
  // Swapping the images changes the answer: each image lands in its own run.
  CHECK(test::max_abs_diff(full, fast.forward(ids, ImageEmbeddings<float>{images[1], images[0]})) >
        1e-3);
  // Prefill through both images, then decode the rest one token at a time.
  const int64_t P = int64_t(ids.size()) - 4;
  KVCache<float> cache(cfg.text, int64_t(ids.size()));
  fast.forward(std::span(ids).first(P), images, cache, LogitRows::last());
  for (int64_t t = P; t < int64_t(ids.size()); ++t)
    CHECK(test::max_abs_diff(fast.forward(std::span(ids).subspan(t, 1), {}, cache), full.row(t)) <=
          1e-5);
}

TEST_CASE("an image shown again is looked up, not encoded: ImageCache and Session::encode",
          "[multimodal][image_cache]") {
  const auto dir = test::fixture("mm-tiny-a");
  const auto ck = Checkpoint::open(dir);
  const Gemma3<float> model(ck), other(ck, Backend::Plain);
  const Image image = load_image(dir / "image0.png");
  Image dark = image;
  for (auto& v : dark.pixels) v = uint8_t(v / 3);
  const Mat<float> a = model.pixel_values(image)[0], b = model.pixel_values(dark)[0];

  ImageCache<float> cache(2);
  const Mat<float> first = cache.encode(model, a);
  CHECK(first == model.encode(a));
  CHECK(cache.encode(model, a) == first);  // the same pixels: a hit, the same tokens
  CHECK(cache.hits() == 1);
  CHECK(cache.misses() == 1);
  CHECK(cache.encode(model, b) == model.encode(b));  // other pixels: encoded
  CHECK(cache.misses() == 2);
  // Keyed by the model too: another model's tokens are its own.
  CHECK(cache.encode(other, a) == other.encode(a));
  CHECK(cache.misses() == 3);
  CHECK(cache.size() == 2);  // capacity 2: the least recently used entry (a under `model`) went
  cache.encode(model, b);
  CHECK(cache.hits() == 2);
  cache.encode(model, a);
  CHECK(cache.misses() == 4);
  // One changed pixel value is another image, whatever the hash says.
  Mat<float> a2 = a;
  a2(1, 7) += 1e-3f;
  CHECK(ImageCache<float>::content_hash(a2) != ImageCache<float>::content_hash(a));
  CHECK(cache.encode(model, a2) == model.encode(a2));
  CHECK_THROWS_WITH(ImageCache<float>(0), Catch::Contains("at least 1"));

  // A session encodes each image (and pan & scan crop) once, across turns.
  static const Tokenizer tok(GEMMA3_TOKENIZER_MODEL);  // built by scripts/get_tokenizer.sh
  Session<float> session(model, tok, 64);
  ProcessedImage processed{{a, b}, 1};  // an image and a crop of it
  const ImageEmbeddings<float> tokens = session.encode(processed);
  REQUIRE(tokens.size() == 2);
  CHECK(tokens[0] == first);
  CHECK(session.encode(processed)[1] == tokens[1]);
  CHECK(session.image_cache().misses() == 2);
  CHECK(session.image_cache().hits() == 2);
}

TEST_CASE("multimodal bad input: wrong image count, images on a text-only model",
          "[multimodal][errors]") {
  const auto ck = Checkpoint::open(test::fixture("mm-tiny-a"));
  const Gemma3<float> model(ck);
  const auto ids = test::read_ids(test::fixture("mm-tiny-a") / "p0_input_ids.npy");
  CHECK_THROWS_WITH(model.forward(ids),
                    Catch::Contains("16 image placeholder tokens in the prompt but 0 image(s)"));
  const auto images =
      model.encode(std::vector<Image>{load_image(test::fixture("mm-tiny-a") / "image0.png")});
  CHECK_THROWS_WITH(model.forward(ids, ImageEmbeddings<float>{images[0], images[0]}),
                    Catch::Contains("2 image(s)"));
  const auto text = Checkpoint::open(test::fixture("text-tiny-a"));
  const Gemma3<float> text_model(text);
  CHECK_THROWS_WITH(
      text_model.encode(std::vector<Image>{load_image(test::fixture("mm-tiny-a") / "image0.png")}),
      Catch::Contains("no vision tower"));
}
