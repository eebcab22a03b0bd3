// llama.cpp vision projector (mmproj) GGUF files: the pair llama.cpp's converter wrote for the
// mm-tiny-a fixture (tests/data/gguf/README.md) read as a multimodal checkpoint, against the
// safetensors path on the same weights and against the reference outputs; `write_mmproj` against
// llama.cpp's file, key by key and byte by byte; the errors of mismatched or damaged pairs.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include <gemma3/checkpoint.hpp>
#include <gemma3/io/gguf_mmproj.hpp>
#include <gemma3/multimodal.hpp>

#include "check_error.hpp"
#include "test_helpers.hpp"

using namespace gemma3;
namespace fs = std::filesystem;

namespace {

fs::path gguf_data(const std::string& name) {
  return test::data_dir() / "gguf" / name;
}
const fs::path& text_gguf() {
  static const fs::path p = gguf_data("mm-tiny-a.llamacpp-f32.gguf");
  return p;
}
const fs::path& mmproj_gguf() {
  static const fs::path p = gguf_data("mm-tiny-a.mmproj.llamacpp-f32.gguf");
  return p;
}

// The fixture's image token ids (config.json: 510, 511, 512). Its 576-piece vocabulary is the
// start of the real one, which holds none of the three markers, so they must be given.
gguf::ImageTokenIds fixture_ids() {
  const ModelConfig cfg = load_config(test::fixture("mm-tiny-a") / "config.json");
  return {cfg.boi_token_index, cfg.eoi_token_index, cfg.image_token_index};
}

Checkpoint open_pair(const fs::path& mmproj = mmproj_gguf()) {
  return Checkpoint::open(text_gguf(), mmproj, Residency::Mapped, {}, fixture_ids());
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Rewrites a GGUF file (llama.cpp's mmproj by default) through gguf::Writer: every metadata key
// `edit_key` keeps (it may change the value), every tensor `keep` accepts, bytes unchanged, then
// what `add` adds.
using EditKey = std::function<bool(const std::string& key, nlohmann::json& value)>;
void rewrite_gguf(
    const fs::path& dst, const EditKey& edit_key,
    const std::function<bool(const std::string&)>& keep = [](const std::string&) { return true; },
    const std::function<void(gguf::Writer&)>& add = [](gguf::Writer&) {},
    const fs::path& source = mmproj_gguf()) {
  const gguf::File src(source);
  gguf::Writer w;
  for (const auto& key : src.keys()) {
    nlohmann::json value = src.metadata().at(key);
    if (!edit_key(key, value)) continue;
    if (const auto array = src.array_info(key))
      w.set_array(key, array->first, value);
    else
      w.set(key, *src.type_of(key), value);
  }
  for (const auto& t : src.tensors())
    if (keep(t.name))
      w.add(t.name, t.shape, gguf::TensorType(t.type),
            std::vector<std::byte>(t.data, t.data + t.nbytes));
  add(w);
  w.write(dst);
}

}  // namespace

TEST_CASE("mmproj: llama.cpp's tensor names, both ways", "[io][gguf][mmproj]") {
  const ModelConfig cfg = load_config(test::fixture("mm-tiny-a") / "config.json");
  std::set<std::string> ours;
  ModelWeights w;
  for_each_tensor(cfg, w, [&](Module m, const std::string& rel, TensorView&, const Shape&, Init) {
    if (m != Module::Vision && m != Module::Projector) return;
    const std::string name = gguf::mmproj_name(m, rel);
    const std::string hf =
        (m == Module::Vision ? "vision_tower.vision_model." : "multi_modal_projector.") + rel;
    CHECK(gguf::mmproj_hf_name(name) == hf);
    ours.insert(name);
  });
  // Exactly the names llama.cpp's converter wrote.
  const gguf::File file(mmproj_gguf());
  std::set<std::string> theirs;
  for (const auto& t : file.tensors()) theirs.insert(t.name);
  CHECK(ours == theirs);
  CHECK(gguf::mmproj_hf_name("v.blk.0.unknown.weight") == "v.blk.0.unknown.weight");
  // The published tower's fc2 rows (4304) are not whole Q8_0 blocks: F16, as the converter falls
  // back.
  CHECK(gguf::mmproj_tensor_type(gguf::FileType::Q8_0, "v.blk.0.ffn_down.weight", {1152, 4304}) ==
        gguf::TensorType::F16);
  CHECK(gguf::mmproj_tensor_type(gguf::FileType::Q8_0, "v.blk.0.ffn_up.weight", {4304, 1152}) ==
        gguf::TensorType::Q8_0);
  CHECK_ERROR(InvalidArgument, gguf::mmproj_name(Module::Text, "norm.weight"), "norm.weight",
              "is a text tensor: it goes into the text model's GGUF");
}

TEST_CASE(
    "mmproj: llama.cpp's mm-tiny-a pair is the safetensors model (weights, soft tokens, "
    "logits)",
    "[io][gguf][mmproj][multimodal]") {
  const auto dir = test::fixture("mm-tiny-a");
  const auto st = Checkpoint::open(dir);
  const auto gg = open_pair();

  // The config: the text GGUF's with the tower of the clip.* keys; nothing else differs.
  CHECK(gg.config().model_type == "gemma3");
  CHECK(gg.config().vision == st.config().vision);
  CHECK(gg.config().mm_tokens_per_image == st.config().mm_tokens_per_image);
  CHECK(gg.config().boi_token_index == st.config().boi_token_index);
  CHECK(gg.config().image_token_index == st.config().image_token_index);
  CHECK(gg.config().text.hidden_size == st.config().text.hidden_size);
  REQUIRE(gg.mmproj() != nullptr);
  CHECK(gg.mmproj()->config().image_mean == std::array<double, 3>{0.5, 0.5, 0.5});
  CHECK(gg.store().tensor_file("vision_tower.vision_model.post_layernorm.weight") ==
        mmproj_gguf().string());

  // Every vision and projector weight holds the safetensors values exactly (f32 and f16 hold
  // these bf16 values; the projector norm's 1 + w loses no bit of them).
  ModelWeights slots;
  int64_t compared = 0;
  for_each_tensor(gg.config(), slots,
                  [&](Module m, const std::string& rel, TensorView&, const Shape&, Init) {
                    if (m != Module::Vision && m != Module::Projector) return;
                    const TensorView& a = gg.store().at(gg.name_scheme().full_name(m, rel));
                    const TensorView& b = st.store().at(st.name_scheme().full_name(m, rel));
                    INFO(rel);
                    REQUIRE(a.shape == b.shape);
                    CHECK((a.as<float>() - b.as<float>()).cwiseAbs().maxCoeff() == 0.0f);
                    ++compared;
                  });
  CHECK(compared == int64_t(gguf::File(mmproj_gguf()).tensors().size()));
  // The projection stays F16, as llama.cpp writes it; the rest as stored (F32).
  CHECK(gg.weights().vision->mm_input_projection.dtype == DType::F16);

  // Soft tokens and logits of the reference prompts, on both backends.
  const Image image = load_image(dir / "image0.png");
  for (const Backend backend : {Backend::Fast, Backend::Plain}) {
    INFO("backend " << to_string(backend));
    const Gemma3<float> ours(gg, backend), theirs(st, backend);
    const auto images = ours.encode(std::vector<Image>{image});
    const auto expected = theirs.encode(std::vector<Image>{image});
    REQUIRE(images.size() == 1);
    CHECK(test::max_abs_diff(images[0], expected[0]) <= 1e-5);
    for (int k = 0; k < test::prompt_count(dir); ++k) {
      const std::string p = test::prompt_prefix(k);
      INFO("prompt " << k);
      CHECK(test::max_abs_diff(
                images[0], read_npy(dir / (p + "image_soft_tokens.npy")).matrix<double>()) <= 1e-4);
      const auto ids = test::read_ids(dir / (p + "input_ids.npy"));
      const Mat<float> logits = ours.forward(ids, images);
      CHECK(test::max_abs_diff(logits, theirs.forward(ids, expected)) <= 1e-4);
      CHECK(test::max_abs_diff(logits, read_npy(dir / (p + "logits.npy")).matrix<double>()) <=
            1e-4);
    }
  }
}

TEST_CASE("mmproj: the image token ids are looked up in the text GGUF's vocabulary",
          "[io][gguf][mmproj]") {
  // The fixture's vocabulary with its three image ids renamed as the real vocabulary names them.
  const auto dir = test::scratch_dir("mmproj_vocab");
  const auto text = dir / "text.gguf";
  const gguf::ImageTokenIds ids = fixture_ids();
  rewrite_gguf(
      text,
      [&](const std::string& key, nlohmann::json& v) {
        if (key == "tokenizer.ggml.tokens") {
          v[ids.boi] = "<start_of_image>";
          v[ids.eoi] = "<end_of_image>";
          v[ids.image] = "<image_soft_token>";
        }
        return true;
      },
      [](const std::string&) { return true; }, [](gguf::Writer&) {}, text_gguf());
  const auto ck = Checkpoint::open(text, mmproj_gguf());
  CHECK(ck.config().boi_token_index == ids.boi);
  CHECK(ck.config().eoi_token_index == ids.eoi);
  CHECK(ck.config().image_token_index == ids.image);
  // Without them, the published ids (what a real vocabulary has).
  const gguf::ImageTokenIds published = gguf::image_token_ids(gguf::File(text_gguf()));
  CHECK(published.boi == 255999);
  CHECK(published.eoi == 256000);
  CHECK(published.image == 262144);
}

TEST_CASE("mmproj: the text GGUF alone is a text model", "[io][gguf][mmproj]") {
  const auto ck = Checkpoint::open(text_gguf());
  CHECK_FALSE(ck.config().is_multimodal());
  CHECK(ck.mmproj() == nullptr);
  const Gemma3<float> model(ck);
  CHECK_FALSE(model.has_vision());
}

TEST_CASE("mmproj: write_mmproj writes llama.cpp's file (metadata, names, types, bytes)",
          "[io][gguf][mmproj]") {
  const auto st = Checkpoint::open(test::fixture("mm-tiny-a"));
  const auto dir = test::scratch_dir("mmproj_write");
  const auto path = dir / "mmproj.gguf";
  // llama.cpp derives general.name from the directory's name, which was mm-tiny-a.hfdir.
  gguf::write_mmproj(st.config(), st.weights(), path, gguf::FileType::F32, {},
                     {.name = "Mm Tiny A Hfdir"});
  const gguf::File reference(mmproj_gguf()), ours(path);

  CHECK(ours.keys() == reference.keys());
  for (const auto& key : reference.keys()) {
    INFO(key);
    CHECK(ours.type_of(key) == reference.type_of(key));
    CHECK(ours.array_info(key) == reference.array_info(key));
    if (ours.metadata().contains(key))
      CHECK(ours.metadata().at(key) == reference.metadata().at(key));
  }
  REQUIRE(ours.tensors().size() == reference.tensors().size());
  for (std::size_t i = 0; i < ours.tensors().size(); ++i) {
    const auto &a = ours.tensors()[i], &b = reference.tensors()[i];
    INFO(b.name);
    CHECK(a.name == b.name);
    CHECK(a.shape == b.shape);
    CHECK(gguf::type_name(a.type) == gguf::type_name(b.type));
    CHECK(a.offset == b.offset);
  }
  // Same keys, values, tensors and layout: the same bytes.
  CHECK(read_bytes(path) == read_bytes(mmproj_gguf()));

  // Read back beside llama.cpp's text file: the soft tokens of llama.cpp's own pair.
  const Image image = load_image(test::fixture("mm-tiny-a") / "image0.png");
  const auto back = open_pair(path);
  const auto reference_pair = open_pair();
  CHECK(test::max_abs_diff(Gemma3<float>(back).encode(std::vector<Image>{image})[0],
                           Gemma3<float>(reference_pair).encode(std::vector<Image>{image})[0]) ==
        0.0);
}

TEST_CASE("mmproj: f16, bf16 and q8_0 files get the converter's types and load",
          "[io][gguf][mmproj]") {
  const auto st = Checkpoint::open(test::fixture("mm-tiny-a"));
  const auto dir = test::scratch_dir("mmproj_types");
  const Image image = load_image(test::fixture("mm-tiny-a") / "image0.png");
  const Mat<float> expected = Gemma3<float>(st).encode(std::vector<Image>{image})[0];
  for (const auto& [ft, matrix] :
       {std::pair{gguf::FileType::F16, "F16"}, std::pair{gguf::FileType::BF16, "BF16"},
        std::pair{gguf::FileType::Q8_0, "Q8_0"}}) {
    INFO(matrix);
    const auto path = dir / (std::string(matrix) + ".gguf");
    gguf::write_mmproj(st.config(), st.weights(), path, ft);
    const gguf::File f(path);
    CHECK(f.metadata().at("general.file_type") == uint32_t(ft));
    for (const auto& t : f.tensors()) {
      INFO(t.name);
      const std::string type = gguf::type_name(t.type);
      if (t.name == "mm.input_projection.weight")
        CHECK(type == "F16");  // always, as the converter forces it
      else if (t.shape.size() == 1 || t.name == "v.patch_embd.weight" ||
               t.name == "v.position_embd.weight")
        CHECK(type == "F32");
      else
        CHECK(type == matrix);
    }
    const auto back = open_pair(path);
    const Mat<float> soft = Gemma3<float>(back).encode(std::vector<Image>{image})[0];
    // bf16 weights are exact in f16 and bf16; q8_0 rounds the layer matrices (measured: 1.4% of
    // the largest soft-token value).
    const double tolerance =
        ft == gguf::FileType::Q8_0 ? 0.02 * expected.cwiseAbs().maxCoeff() : 1e-5;
    CHECK(test::max_abs_diff(soft, expected) <= tolerance);
  }
  CHECK_ERROR(InvalidArgument,
              gguf::write_mmproj(st.config(), st.weights(), dir / "q4.gguf", gguf::FileType::Q4_0),
              "file type",
              "an mmproj file is written as f32, f16, bf16 or q8_0 (the types llama.cpp's "
              "converter writes one in)");
  CHECK_FALSE(fs::exists(dir / "q4.gguf"));
  const auto text_only = Checkpoint::open(test::fixture("text-tiny-a"));
  CHECK_ERROR(InvalidArgument,
              gguf::write_mmproj(text_only.config(), text_only.weights(), dir / "none.gguf",
                                 gguf::FileType::F32),
              "checkpoint", "has no vision tower to write (model_type 'gemma3_text')");
}

TEST_CASE("robustness: mismatched or damaged mmproj pairs give clear errors",
          "[robustness][gguf][mmproj]") {
  const auto dir = test::scratch_dir("mmproj_errors");
  const std::string mmproj = mmproj_gguf().string(), text = text_gguf().string();
  const EditKey keep_all = [](const std::string&, nlohmann::json&) { return true; };

  // The files swapped.
  CHECK_ERROR(ConfigError, Checkpoint::open(mmproj_gguf(), text_gguf()), "general.architecture",
              "is 'clip', expected 'gemma3' (this is a vision projector, mmproj, file; open the "
              "text model's GGUF) (in " +
                  mmproj + ")");
  CHECK_ERROR(ConfigError, Checkpoint::open(text_gguf(), text_gguf()), "general.architecture",
              "is 'gemma3', expected 'clip' in a vision projector (mmproj) file (this is a text "
              "model: give it as the model, and the mmproj file beside it) (in " +
                  text + ")");
  CHECK_ERROR(InvalidArgument, Checkpoint::open(test::fixture("mm-tiny-a"), mmproj_gguf()),
              test::fixture("mm-tiny-a").string(),
              "an mmproj file goes with a .gguf text model (a checkpoint directory holds its own "
              "vision tower)");
  // The vocabulary holds no image markers and the published ids do not fit it.
  CHECK_ERROR(ConfigError, Checkpoint::open(text_gguf(), mmproj_gguf()), "boi_token_index",
              "the vocabulary of " + text +
                  " has no <start_of_image> and the published id 255999 is outside its 576-row "
                  "embedding; give the image token ids (gguf::ImageTokenIds) when opening it");

  // A projector made for another text model.
  const auto other = dir / "other.gguf";
  rewrite_gguf(other, [](const std::string& key, nlohmann::json& v) {
    if (key == "clip.vision.projection_dim") v = 48;
    return true;
  });
  CHECK_ERROR(ConfigError, open_pair(other), "clip.vision.projection_dim",
              "is 48 in " + other.string() +
                  ", but the text model's hidden size (gemma3.embedding_length) is 64 in " + text +
                  ": the projector belongs to another model");
  // Another projector type; a required key missing; a pooling that does not divide the grid.
  const auto llava = dir / "llava.gguf";
  rewrite_gguf(llava, [](const std::string& key, nlohmann::json& v) {
    if (key == "clip.projector_type") v = "mlp";
    return true;
  });
  CHECK_ERROR(ConfigError, open_pair(llava), "clip.projector_type",
              "is 'mlp', expected 'gemma3' (only Gemma 3's vision projector is read) (in " +
                  llava.string() + ")");
  const auto no_heads = dir / "no_heads.gguf";
  rewrite_gguf(no_heads, [](const std::string& key, nlohmann::json&) {
    return key != "clip.vision.attention.head_count";
  });
  CHECK_ERROR(ConfigError, open_pair(no_heads), "clip.vision.attention.head_count",
              "missing from the GGUF metadata of " + no_heads.string());
  const auto merge = dir / "merge.gguf";
  rewrite_gguf(
      merge, keep_all, [](const std::string&) { return true; },
      [](gguf::Writer& w) {
        w.set("clip.vision.projector.scale_factor", gguf::ValueType::U32, 3);
      });
  CHECK_ERROR(ConfigError, open_pair(merge), "clip.vision.projector.scale_factor",
              "is 3, which must divide the 16 patches per side (in " + merge.string() + ")");

  // A tensor missing, named as the mmproj file names it; one the config does not call for.
  const auto missing = dir / "missing.gguf";
  rewrite_gguf(missing, keep_all,
               [](const std::string& name) { return name != "v.blk.1.ln1.weight"; });
  CHECK_ERROR(TensorError, open_pair(missing), "v.blk.1.ln1.weight",
              "missing from " + missing.string() + " (expected shape [32])");
  const auto extra = dir / "extra.gguf";
  rewrite_gguf(
      extra, keep_all, [](const std::string&) { return true; },
      [](gguf::Writer& w) {
        w.add("v.blk.0.extra.weight", {4}, gguf::TensorType::F32, std::vector<std::byte>(16));
      });
  CHECK_ERROR(TensorError, open_pair(extra), "v.blk.0.extra.weight",
              "unexpected tensor in " + extra.string() +
                  " for a gemma3 config (name scheme: text-only (model.*))");
}
