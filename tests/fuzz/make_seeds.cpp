// Writes the generated seeds of the fuzz corpora: valid files made by the library itself (the
// safetensors writer, the checkpoint synthesiser, write_npy, config_to_json, stb_image_write) and
// the malformed cases of the loaders' tests. Deterministic; run by hand when a format changes:
//   build-fuzz/tests/fuzz/fuzz_make_seeds tests/fuzz/corpus
// Text seeds (tokenizer strings, chat conversations, tool calls, command lines) come from the test
// data and the unit tests. It overwrites only the files it names.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include <gemma3/checkpoint.hpp>
#include <gemma3/io/gguf_gemma3.hpp>
#include <gemma3/io/npy.hpp>
#include <gemma3/io/safetensors.hpp>
#include <gemma3/synth.hpp>
#include <gemma3/tokenizer/spm_model.hpp>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#if defined(__clang__)
#pragma clang diagnostic ignored "-Weverything"
#elif defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include <stb/stb_image_write.h>

namespace fs = std::filesystem;
using namespace gemma3;

namespace {

fs::path root;

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw IoError(p.string(), "cannot open");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(root / target);
  std::ofstream out(root / target / name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char(n >> (8 * i));
  return s;
}

// A safetensors file from a raw header and `data_bytes` bytes (0, 1, 2, ...), as the tests build
// them.
std::string raw_safetensors(const std::string& header, std::size_t data_bytes,
                            std::optional<uint64_t> declared = {}) {
  std::string s = le64(declared.value_or(header.size())) + header;
  for (std::size_t i = 0; i < data_bytes; ++i) s += char(i * 7 + 1);
  return s;
}

// Tiny configs: real layouts (text-only and multimodal names, tied and untied, local and global
// layers) at sizes where a forward pass takes microseconds.
ModelConfig tiny_text(bool tied) {
  ModelConfig m;
  m.model_type = "gemma3_text";
  TextConfig& t = m.text;
  t.vocab_size = 16;
  t.hidden_size = 8;
  t.intermediate_size = 16;
  t.num_hidden_layers = 2;
  t.num_attention_heads = 2;
  t.num_key_value_heads = 1;
  t.head_dim = 4;
  t.query_pre_attn_scalar = 4;
  t.sliding_window = 2;
  t.max_position_embeddings = 64;
  t.layer_types = layer_types_from_pattern(2, 2);
  t.rope_global.linear_factor = 8.0;
  t.tie_word_embeddings = tied;
  t.eos_token_ids = {1, 3};
  return m;
}

ModelConfig tiny_mm() {
  ModelConfig m = tiny_text(true);
  m.model_type = "gemma3";
  m.vision = VisionConfig{.hidden_size = 8,
                          .intermediate_size = 16,
                          .num_hidden_layers = 1,
                          .num_attention_heads = 2,
                          .image_size = 28,
                          .patch_size = 14};
  m.mm_tokens_per_image = 4;
  m.boi_token_index = 12;
  m.eoi_token_index = 13;
  m.image_token_index = 15;
  return m;
}

const std::string kSep = "#GEMMA3#";

// A checkpoint as fuzz_checkpoint's input: config, index (or empty), shards.
std::string checkpoint_input(const ModelConfig& cfg, std::size_t max_shard_bytes, DType dtype) {
  const fs::path dir = fs::temp_directory_path() / "gemma3-make-seeds";
  fs::remove_all(dir);
  synthesize_checkpoint(cfg, dir, {.seed = 3, .dtype = dtype, .max_shard_bytes = max_shard_bytes});
  std::string out = read(dir / "config.json") + kSep;
  if (!fs::exists(dir / TensorStore::kIndexFile)) {
    out += kSep + read(dir / TensorStore::kSingleFile);
  } else {
    // Shards renamed s1.safetensors, s2.safetensors, ... (what the target writes).
    auto index = nlohmann::json::parse(read(dir / TensorStore::kIndexFile));
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().filename().string().rfind("model-", 0) == 0)
        files.push_back(e.path().filename().string());
    std::sort(files.begin(), files.end());
    for (auto& [name, file] : index["weight_map"].items()) {
      const auto k = std::find(files.begin(), files.end(), file.get<std::string>()) - files.begin();
      file = "s" + std::to_string(k + 1) + ".safetensors";
    }
    out += index.dump();
    for (const auto& f : files) out += kSep + read(dir / f);
  }
  fs::remove_all(dir);
  return out;
}

// A SentencePiece ModelProto of `n` pieces: the special ones, two byte pieces, then words; as a
// tokenizer.model (fuzz_spm) and embedded in a GGUF (fuzz_gguf).
spm::ModelProto tiny_tokenizer(int n) {
  spm::ModelProto m;
  m.pieces = {{"<pad>", 0, spm::PieceType::Control},
              {"<eos>", 0, spm::PieceType::Control},
              {"<bos>", 0, spm::PieceType::Control},
              {"<unk>", 0, spm::PieceType::Unknown},
              {"<0x0A>", 0, spm::PieceType::Byte},
              {"<0x41>", 0, spm::PieceType::Byte},
              {"<start_of_turn>", 0, spm::PieceType::UserDefined}};
  for (int i = int(m.pieces.size()); i < n; ++i)
    m.pieces.push_back({"\xe2\x96\x81w" + std::to_string(i), -float(i), spm::PieceType::Normal});
  m.trainer_spec.model_type = spm::TrainerSpec::ModelType::Bpe;
  m.trainer_spec.pad_id = 0, m.trainer_spec.eos_id = 1, m.trainer_spec.bos_id = 2;
  m.trainer_spec.unk_id = 3;
  m.trainer_spec.byte_fallback = true;
  m.normalizer_spec.name = "identity";
  return m;
}

// A tiny config as fuzz_gguf's input: the llama.cpp-style file write_gguf makes (with a tokenizer,
// as llama.cpp's converter writes one).
std::string gguf_input(const ModelConfig& cfg, gguf::TensorType type, bool tokenizer = false) {
  const fs::path dir = fs::temp_directory_path() / "gemma3-make-seeds";
  fs::remove_all(dir);
  synthesize_checkpoint(cfg, dir / "st", {.seed = 5, .dtype = DType::F32});
  gguf::WriteOptions options;
  if (tokenizer) options.tokenizer = tiny_tokenizer(int(cfg.text.vocab_size));
  gguf::write_gguf(cfg, Checkpoint::open(dir / "st").weights(), dir / "m.gguf", type, {}, options);
  const std::string out = read(dir / "m.gguf");
  fs::remove_all(dir);
  return out;
}

void spm_seeds() {
  const std::string good = spm::serialize(tiny_tokenizer(24));
  put("spm", "tiny", good);
  put("spm", "bad_truncated", good.substr(0, good.size() / 2));
  put("spm", "bad_wire_type", std::string("\x0b", 1) + good);  // field 1, wire type 3
}

void gguf_seeds() {
  // Rows of 32 so that the quantized types apply (shorter rows fall back to F16).
  ModelConfig wide = tiny_text(false);
  wide.text.hidden_size = 32;
  wide.text.intermediate_size = 32;
  wide.text.head_dim = 32;
  wide.text.query_pre_attn_scalar = 24;  // off llama.cpp's rule: written as attention.scale
  put("gguf", "text_tied_f32", gguf_input(tiny_text(true), gguf::TensorType::F32));
  put("gguf", "text_untied_bf16", gguf_input(tiny_text(false), gguf::TensorType::BF16));
  put("gguf", "wide_f16", gguf_input(wide, gguf::TensorType::F16));
  put("gguf", "wide_q8_0", gguf_input(wide, gguf::TensorType::Q8_0));
  put("gguf", "wide_q4_0", gguf_input(wide, gguf::TensorType::Q4_0));
  put("gguf", "text_tokenizer", gguf_input(tiny_text(true), gguf::TensorType::F32, true));
  const std::string good = gguf_input(tiny_text(true), gguf::TensorType::BF16);
  put("gguf", "bad_truncated", good.substr(0, good.size() / 2));
  put("gguf", "bad_version_1", good.substr(0, 4) + std::string("\x01\0\0\0", 4) + good.substr(8));
  put("gguf", "bad_magic", "GGML" + good.substr(4));
}

void safetensors_seeds() {
  SafetensorsWriter w;
  std::vector<std::byte> f32(6 * 4), bf16(4 * 2), f16(3 * 2);
  for (std::size_t i = 0; i < f32.size(); ++i) f32[i] = std::byte(i * 13);
  for (std::size_t i = 0; i < bf16.size(); ++i) bf16[i] = std::byte(0x3f + i);
  for (std::size_t i = 0; i < f16.size(); ++i) f16[i] = std::byte(0x3c - i);
  w.add("model.layers.0.mlp.up_proj.weight", DType::F32, {2, 3}, f32);
  w.add("model.norm.weight", DType::BF16, {4}, bf16);
  w.add("scalar_and_more", DType::F16, {3, 1}, f16);
  w.add("empty", DType::F32, {0, 5}, std::vector<std::byte>{});
  const fs::path tmp = fs::temp_directory_path() / "gemma3-make-seeds.safetensors";
  w.write(tmp);
  put("safetensors", "valid_written", read(tmp));
  fs::remove(tmp);
  put("safetensors", "valid_metadata",
      raw_safetensors(
          R"({"__metadata__": {"format": "pt", "k": "v"}, "s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}})",
          4));

  // The malformed headers of tests/test_io.cpp, one seed each.
  const std::string ok = R"("t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})";
  const std::vector<std::tuple<std::string, std::string, std::size_t, std::optional<uint64_t>>> rows{
      {"past_eof", "{" + ok + "}", 8, 1000},
      {"absurd_length", "{}", 0, uint64_t(1) << 40},
      {"bad_json", "{\"t\": {", 0, {}},
      {"not_object", "[1, 2]", 0, {}},
      {"unknown_dtype", R"({"t": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}})", 8, {}},
      {"missing_dtype", R"({"t": {"shape": [2], "data_offsets": [0, 8]}})", 8, {}},
      {"negative_dim", R"({"t": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8, {}},
      {"offsets_reversed",
       R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})",
       8,
       {}},
      {"range_outside", R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 4, {}},
      {"shape_mismatch", R"({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8, {}},
      {"overlap",
       R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "u": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
       12,
       {}},
      {"duplicate", "{" + ok + ", " + ok + "}", 8, {}},
      {"bad_offsets", R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", 8, {}},
      {"huge_shape",
       R"({"t": {"dtype": "BF16", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})",
       8,
       {}},
      // 2^62 F32 elements are 2^64 bytes: a byte count that wraps to 0 (fixed; docs/robustness.md).
      {"wrapping_bytes",
       R"({"t": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0]}})",
       0,
       {}},
      {"metadata_not_string", R"({"__metadata__": {"a": 1}})", 0, {}},
  };
  for (const auto& [name, header, bytes, declared] : rows)
    put("safetensors", "bad_" + name, raw_safetensors(header, bytes, declared));
  put("safetensors", "bad_short", "abc");
}

void checkpoint_seeds() {
  put("checkpoint", "text_tied",
      checkpoint_input(tiny_text(true), std::size_t(1) << 30, DType::BF16));
  put("checkpoint", "text_untied_f32",
      checkpoint_input(tiny_text(false), std::size_t(1) << 30, DType::F32));
  put("checkpoint", "text_sharded", checkpoint_input(tiny_text(true), 300, DType::BF16));
  put("checkpoint", "mm", checkpoint_input(tiny_mm(), std::size_t(1) << 30, DType::BF16));
  // Malformed: no weights; weights of another config; an index naming a missing shard.
  const std::string text = checkpoint_input(tiny_text(true), std::size_t(1) << 30, DType::BF16);
  put("checkpoint", "bad_no_weights", text.substr(0, text.find(kSep)));
  ModelConfig other = tiny_text(true);
  other.text.hidden_size = 12;
  const std::string other_input = checkpoint_input(other, std::size_t(1) << 30, DType::BF16);
  put("checkpoint", "bad_shapes",
      text.substr(0, text.find(kSep)) + other_input.substr(other_input.find(kSep)));
  put("checkpoint", "bad_index",
      text.substr(0, text.find(kSep)) + kSep +
          R"({"weight_map": {"model.norm.weight": "s9.safetensors"}})");
}

void config_seeds() {
  for (const char* c : {"text-tiny-a", "text-tiny-b", "mm-tiny-a"})
    put("config", std::string("fixture_") + c,
        read(fs::path(GEMMA3_TEST_DATA) / "reference" / c / "config.json"));
  put("config", "preprocessor_mm-tiny-a",
      read(fs::path(GEMMA3_TEST_DATA) / "reference" / "mm-tiny-a" / "preprocessor_config.json"));
  for (const std::string p : {"1b", "4b", "27b"})
    put("config", "preset_" + p, config_to_json(preset(p)).dump(1));
  put("config", "generation_config",
      R"({"bos_token_id": 2, "cache_implementation": "hybrid", "do_sample": true, "eos_token_id": [1, 106], "pad_token_id": 0, "top_k": 64, "top_p": 0.95, "transformers_version": "4.51.3"})");
  put("config", "newer_layer_types_rope_parameters",
      R"({"model_type": "gemma3_text", "num_hidden_layers": 3,
    "layer_types": ["sliding_attention", "full_attention", "sliding_attention"],
    "rope_parameters": {"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                        "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}}})");
  // The impossible configs of docs/robustness.md.
  auto edited = [](const char* key, nlohmann::json value) {
    nlohmann::json j = config_to_json(preset("1b"));
    j[key] = std::move(value);
    return j.dump();
  };
  put("config", "bad_zero_heads", edited("num_attention_heads", 0));
  put("config", "bad_kv_not_dividing", edited("num_key_value_heads", 3));
  put("config", "bad_odd_head_dim", edited("head_dim", 33));
  put("config", "window_over_context", edited("sliding_window", 65536));
  put("config", "bad_layer_types",
      edited("layer_types", nlohmann::json::array({"full_attention"})));
  put("config", "bad_rope", edited("rope_scaling", {{"rope_type", "yarn"}, {"factor", 4}}));
  put("config", "bad_huge_layers", edited("num_hidden_layers", int64_t(1) << 40));
  put("config", "bad_json", "{\"model_type\": \"gemma3_text\", ");
  put("config", "bad_not_object", "[1, 2, 3]");
}

void npy_seeds() {
  for (const char* f : {"p0_input_ids.npy", "p0_mask_local.npy", "p0_embed.npy"})
    put("npy", std::string("fixture_") + f,
        read(fs::path(GEMMA3_TEST_DATA) / "reference" / "text-tiny-a" / f));
  const fs::path tmp = fs::temp_directory_path() / "gemma3-make-seeds.npy";
  auto written = [&](const std::string& name, const Shape& shape, const auto* values) {
    write_npy(tmp, shape, values);
    put("npy", name, read(tmp));
  };
  const double d[] = {1.5, -2.0, 1e300, -0.0, 3.0, 4.0};
  const float f[] = {1.5f, -2.0f, 3.25f, 0.0f};
  const int64_t i64[] = {7, -8, 9};
  const uint8_t u8[] = {1, 0, 1, 1};
  const int32_t i32[] = {2, 818, 5279};
  written("f8_2x3", {2, 3}, d);
  written("f4_scalar", {}, f);
  written("f4_2x0x2", {2, 0, 2}, f);
  written("i8_3", {3}, i64);
  written("u1_2x2", {2, 2}, u8);
  written("i4_1x3", {1, 3}, i32);
  fs::remove(tmp);
  // Versions 2 and 3 (4-byte header length) and malformed files.
  auto npy = [](int major, const std::string& header, const std::string& data) {
    std::string s = "\x93NUMPY";
    s += char(major);
    s += '\0';
    const uint32_t n = uint32_t(header.size());
    for (int i = 0; i < (major == 1 ? 2 : 4); ++i) s += char(n >> (8 * i));
    return s + header + data;
  };
  const std::string f4x2 = std::string("\0\0\x80\x3f\0\0\0\x40", 8);
  put("npy", "v2", npy(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n", f4x2));
  put("npy", "v3", npy(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }\n", f4x2));
  put("npy", "big_float_as_ids",
      npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n",
          std::string("\0\0\0\0\0\0\xf0\x7f", 8)));  // +inf
  put("npy", "bad_magic", "not numpy at all");
  put("npy", "bad_truncated",
      npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), }\n", "abcd"));
  put("npy", "bad_fortran",
      npy(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }\n", f4x2));
  put("npy", "bad_descr",
      npy(1, "{'descr': '>c16', 'fortran_order': False, 'shape': (2,), }\n", f4x2));
  put("npy", "bad_version", npy(9, "{}", ""));
  put("npy", "bad_header_length", npy(1, "{'descr'", "") + std::string(3, '\0'));
  put("npy", "bad_shape",
      npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999, 99999999999), }\n",
          ""));
}

void write_to_string(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data), std::size_t(size));
}

// Small images of every format stb_image reads (the processor settings prefix first).
void image_seeds() {
  const std::string prefix_plain("\x10\x0c\x00\x08", 4);  // 17 x 13, no pan & scan
  const std::string prefix_pan("\x20\x20\x01\x03", 4);    // 33 x 33, pan & scan, min crop 4
  put("image", "fixture_image0_png",
      prefix_plain + read(fs::path(GEMMA3_TEST_DATA) / "reference" / "mm-tiny-a" / "image0.png"));
  const int w = 12, h = 5;
  std::vector<uint8_t> rgba(w * h * 4);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 4; ++c) rgba[(y * w + x) * 4 + c] = uint8_t(x * 20 + y * 40 + c * 60);
  for (const int comp : {1, 2, 3, 4}) {
    std::vector<uint8_t> px(w * h * comp);
    for (int i = 0; i < w * h; ++i)
      for (int c = 0; c < comp; ++c) px[i * comp + c] = rgba[i * 4 + c];
    std::string png, bmp, tga, jpg;
    stbi_write_png_to_func(write_to_string, &png, w, h, comp, px.data(), w * comp);
    stbi_write_bmp_to_func(write_to_string, &bmp, w, h, comp, px.data());
    stbi_write_tga_to_func(write_to_string, &tga, w, h, comp, px.data());
    stbi_write_jpg_to_func(write_to_string, &jpg, w, h, comp, px.data(), 80);
    const std::string n = std::to_string(comp);
    put("image", "png_c" + n, (comp == 3 ? prefix_pan : prefix_plain) + png);
    put("image", "bmp_c" + n, prefix_plain + bmp);
    put("image", "tga_c" + n, prefix_pan + tga);
    put("image", "jpg_c" + n, prefix_plain + jpg);
  }
  // PNM (P6 and P5), a 1x1 GIF, a raw PSD, a Softimage PIC: written by hand.
  std::string ppm = "P6\n4 3\n255\n", pgm = "P5\n4 3\n255\n";
  for (int i = 0; i < 4 * 3 * 3; ++i) ppm += char(i * 7);
  for (int i = 0; i < 4 * 3; ++i) pgm += char(i * 21);
  put("image", "ppm", prefix_plain + ppm);
  put("image", "pgm", prefix_pan + pgm);
  // The classic 1x1 GIF89a (a 2-entry palette, a graphic control extension, LZW data).
  const unsigned char gif[] = {0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80,
                               0x00, 0x00, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x21, 0xf9, 0x04,
                               0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01,
                               0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};
  put("image", "gif", prefix_plain + std::string(reinterpret_cast<const char*>(gif), sizeof gif));
  std::string psd = std::string("8BPS\0\x01", 6) + std::string(6, '\0') + std::string("\0\x03", 2) +
                    std::string("\0\0\0\x02\0\0\0\x03", 8) + std::string("\0\x08\0\x03", 4) +
                    std::string(12, '\0') + std::string("\0\0", 2);  // 3 x 2 RGB, raw
  for (int i = 0; i < 3 * 3 * 2; ++i) psd += char(i * 13);
  put("image", "psd", prefix_plain + psd);
  std::string pic =
      std::string("\x53\x80\xf6\x34", 4) + std::string(84, '\0') + "PICT" +
      std::string("\0\x03\0\x02", 4) + std::string(4, '\0') + std::string("\0\0\0\0", 4) +
      std::string("\0\x08\0\xe0", 4);  // one packet: not chained, 8 bits, uncompressed, RGB
  for (int i = 0; i < 3 * 2 * 3; ++i) pic += char(i * 11);
  put("image", "pic", prefix_plain + pic);
  // Malformed: empty, not an image, a truncated PNG, sides over the limit.
  std::string png;
  stbi_write_png_to_func(write_to_string, &png, w, h, 3, rgba.data(), w * 3);
  put("image", "bad_empty", prefix_plain);
  put("image", "bad_text", prefix_plain + "this is not an image");
  put("image", "bad_truncated_png", prefix_plain + png.substr(0, png.size() / 2));
  // Legal but odd: an empty IDAT chunk (length 0, "IDAT", the CRC-32 of "IDAT") before the pixels.
  const std::size_t idat = png.find("IDAT") - 4;
  put("image", "png_empty_idat",
      prefix_plain + png.substr(0, idat) + std::string("\0\0\0\0IDAT\x35\xaf\x06\x1e", 12) +
          png.substr(idat));
  // An IDAT claiming 2^30 bytes in a file of a few hundred.
  put("image", "bad_png_idat_length",
      prefix_plain + png.substr(0, idat) + std::string("\x40\0\0\0", 4) + png.substr(idat + 4));
  put("image", "bad_huge_ppm", prefix_plain + "P6\n20000 2\n255\n" + std::string(64, 'x'));
  put("image", "bomb_ppm", prefix_plain + "P5\n16000 16000\n255\n" + std::string(64, 'x'));
}

// Tokenizer strings: two of each category of the reference strings (tests/data/tokenizer), each
// with a flag byte (add <bos>, and for some also decode the bytes as ids), plus edge cases.
void tokenizer_seeds() {
  std::ifstream in(fs::path(GEMMA3_TEST_DATA) / "tokenizer" / "gemma3_tokenizer_reference.jsonl");
  std::map<std::string, int> per_category;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    const std::string category = j["category"];
    if (per_category[category]++ >= 2) continue;
    const std::string text = j["text"];
    put("tokenizer", "ref_" + category + "_" + std::to_string(per_category[category]),
        std::string(1, char(n++ % 4)) + text.substr(0, 600));
  }
  put("tokenizer", "special_pieces",
      std::string("\x01") +
          "<bos><start_of_turn>user\nhi<end_of_turn><image_soft_token><eos><pad><unk>");
  put("tokenizer", "invalid_utf8",
      std::string("\x00hi \xff\xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80", 16));
  put("tokenizer", "spaces_u2581",
      std::string(1, '\0') +
          "  \xe2\x96\x81\xe2\x96\x81 a\xe2\x96\x81"
          "b\t\n\r\n");
  std::string ids("\x02",
                  1);  // decode these ids: <bos>, two pieces, the image token, out of range, -1
  for (const int32_t id : {2, 236746, 250, 262144, 262145, -1})
    for (int i = 0; i < 4; ++i) ids += char(uint32_t(id) >> (8 * i));
  put("tokenizer", "ids", ids);
}

// Chat: the template cases of tests/data/chat in fuzz_chat's message format, and images.
void chat_seeds() {
  const auto cases =
      nlohmann::json::parse(read(fs::path(GEMMA3_TEST_DATA) / "chat" / "chat_template_cases.json"));
  int k = 0;
  for (const auto& c : cases["cases"]) {
    std::string out(1, char(c.value("add_generation_prompt", true) ? 1 : 0));
    bool first = true;
    for (const auto& m : c["messages"]) {
      if (!first) out += '\x1e';
      first = false;
      const std::string role = m["role"];
      const char code = role == "system" ? 0 : role == "user" ? 1 : role == "assistant" ? 2 : 3;
      if (m["content"].is_string()) {
        out += code;
        out += m["content"].get<std::string>();
        continue;
      }
      out += char(code | 0x80);
      bool first_part = true;
      for (const auto& part : m["content"]) {
        if (!first_part) out += '\x1f';
        first_part = false;
        if (part["type"] == "image")
          out += std::string("\x01\x00", 2);
        else
          out += part["text"].get<std::string>();
      }
    }
    put("chat", "case_" + std::to_string(k++), out);
  }
  // Flags: generation prompt, parse_special, 4 soft tokens, from message 1; an image with 2 crops.
  put("chat", "pan_and_scan_parse_special",
      std::string("\x2f\x01", 2) +
          "Hi <bos>\x1e\x02"
          "Hello\x1e\x81" +
          std::string("\x01\x02", 2) + "\x1fWhat is in <start_of_image> this?");
}

// Tool calls: the forms and the malformed calls of tests/test_sampler.cpp.
void tool_call_seeds() {
  const std::vector<std::string> texts{
      "```tool_code\nget_weather(city='Paris', days=3)\n```",
      "```tool_code get_weather(city='Paris', days=3) ```",
      "```tool_code\r\nget_weather(\n    city='Paris',  # where\n    days=3,\n)\r\n```",
      "```tool_code\nprint(get_weather(city='Paris', \\\n days=3))\n```",
      "Sure!\n```tool_code\n[a(x=1), b(y=2),]\nc()\n```\ntext\n```tool_code\nd(z=[])\n```",
      R"(```tool_code
search(query='it\'s "ok"\n', limit=10, ratio=0.25, exact=True, fuzzy=False, lang=None, tags=['a', "b", 3], filters={'year': [2020, 2021], "nested": {'deep': (1, 2.5e-3, -7)}}, empty_list=[], empty_dict={}, flag=true, missing=null)
```)",
      R"(```tool_code
f(a="tab\there", b='\x41\101\u00e9\U0001F600\ud83d\ude00', c='back\\slash', d='adjacent' " strings", e='''multi
line''', f="unknown \d escape", g='', h="")
```)",
      "```tool_code\nf(a=42, b=-7, c=+3, d=1_000, e=2.5, f=-0.5, g=.5, h=5., i=1e3, j=1.5E-2, "
      "k=9223372036854775807, l=-9223372036854775808, m=18446744073709551615, o=- 4)\n```",
      "```tool_code\nweather.today(\"Paris\", 3, unit='C'); now()\n```",
      "```tool_code\nf(a=(1, 2), b=(1,), c=(), d=(5), e={1: 'x', 'y': (None,)})\n```",
      "Let me check.\n```tool_code\nget_weather(city='Par",
      "```tool_codex\nget_weather()\n```",
      "```tool_code\nf(a=[1, 2)\n```",
      "```tool_code\nf(a='abc)```",
      "```tool_code\nf(a=g(1), *args)\n```",
      "```tool_code\nf(a={'k': 1)\n```",
      "```tool_code\nf(a=99999999999999999999, b=0x10, c=1e)\n```",
      R"(```tool_code
f(a='\ud83d', b='\U00110000', c=r'x')
```)",
      "```tool_code\n[]\n```",
      "```tool_code\nprint(x)\n```",
  };
  for (std::size_t i = 0; i < texts.size(); ++i)
    put("tool_call", "text_" + std::to_string(i), texts[i]);
}

// Command lines (NUL-separated arguments): every subcommand with its options, and bad values.
void cli_seeds() {
  const std::vector<std::vector<std::string>> lines{
      {"run",
       "--model",
       "/tmp/m",
       "--prompt",
       "Why is the sky blue?",
       "--max-new-tokens",
       "12",
       "--seed",
       "7",
       "--json",
       "--temperature",
       "0.7",
       "--top-k",
       "40",
       "--top-p",
       "0.9",
       "--min-p",
       "0.05",
       "--repetition-penalty",
       "1.1",
       "--stop",
       "\n\n",
       "--stop",
       "END",
       "--threads",
       "2",
       "--context",
       "2048"},
      {"run", "--model=/tmp/m", "--prompt=hi", "--raw", "--system", "be brief", "--image",
       "/etc/hostname", "--pan-and-scan", "--tokenizer", "/tmp/tokenizer.model"},
      {"chat", "--model", "/tmp/m", "--max-new-tokens", "6", "--seed", "1", "--json"},
      {"synth", "--preset", "tiny", "--seed", "5", "--out", "/tmp/x", "--dtype", "f32"},
      {"inspect", "--model", "/tmp/m"},
      {"dump", "--model", "/tmp/m", "--ids", "2,818,5279", "--out", "/tmp/o", "--dtype", "f64",
       "--prefill", "2", "--all"},
      {"dump", "--model", "/tmp/m", "--ids-npy", "/tmp/ids.npy", "--out", "/tmp/o"},
      {"tokenize", "--tokenizer", "/tmp/t.model", "--bos", "--parse-special"},
      {"detokenize", "--skip-special"},
      {"--help"},
      {"run", "--help"},
      {},
      {"run", "--model", "m", "--prompt", "p", "--top-p", "2"},
      {"run", "--model", "m", "--prompt", "p", "--temperature", "-1", "--context", "0"},
      {"synth", "--preset", "huge", "--out", "x", "--dtype", "f8"},
      {"bogus", "--x"},
      {"run", "--model"},
      {"-h", "run", "--unknown=3", "--", "extra"},
  };
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::string out;
    for (std::size_t a = 0; a < lines[i].size(); ++a)
      out += (a ? std::string(1, '\0') : std::string()) + lines[i][a];
    put("cli", "args_" + std::to_string(i), out);
  }
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " CORPUS_DIR\n";
    return 2;
  }
  root = argv[1];
  try {
    safetensors_seeds();
    checkpoint_seeds();
    gguf_seeds();
    spm_seeds();
    config_seeds();
    npy_seeds();
    image_seeds();
    tokenizer_seeds();
    chat_seeds();
    tool_call_seeds();
    cli_seeds();
  } catch (const std::exception& e) {
    std::cerr << "make_seeds: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
