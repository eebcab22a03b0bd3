// The bad-input catalogue of docs/robustness.md, one check per row: each kind of bad input the
// public API and the CLI can receive, and the exact error it produces (type, subject and message).
// Row ids (R1, C1, ...) are the catalogue's.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <thread>

#include <sys/stat.h>

#include <gemma3/checkpoint.hpp>
#include <gemma3/io/npy.hpp>
#include <gemma3/io/safetensors.hpp>
#include <gemma3/multimodal.hpp>
#include <gemma3/sample/sampler.hpp>
#include <gemma3/session.hpp>
#include <gemma3/synth.hpp>
#include <gemma3/tokenizer/chat.hpp>
#include <gemma3/tokenizer/tokenizer.hpp>
#include <gemma3/tokenizer/tool_call.hpp>
#include <gemma3/vision/image.hpp>
#include <gemma3/vision/preprocess.hpp>

#include "check_error.hpp"
#include "test_helpers.hpp"

// stb_image_write (libstb-dev), private to this file, to make JPEGs and PNGs.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#if defined(__GNUC__)  // (clang too)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

using namespace gemma3;
namespace fs = std::filesystem;
using Catch::Matchers::EndsWith;
using Catch::Matchers::StartsWith;

namespace {

// stb_image_write's callback: appends the encoded bytes to the std::string at ctx.
void write_to_string(void* ctx, void* data, int size) {
  static_cast<std::string*>(ctx)->append(static_cast<char*>(data), std::size_t(size));
}

void write(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char(n >> (8 * i));
  return s;
}

// A safetensors file from a raw JSON header and `data_bytes` zero bytes.
fs::path raw_safetensors(const fs::path& path, const std::string& header, std::size_t data_bytes) {
  write(path, le64(header.size()) + header + std::string(data_bytes, '\0'));
  return path;
}

const Tokenizer& tokenizer() {
  static const Tokenizer tok(GEMMA3_TOKENIZER_MODEL);  // built by scripts/get_tokenizer.sh
  return tok;
}

// A copy of the text-tiny-a checkpoint whose tensors pass through `edit` (rename, reshape, drop).
template <typename Edit>
fs::path rewritten_text_checkpoint(const std::string& name, Edit&& edit) {
  const auto src = test::fixture("text-tiny-a");
  const SafetensorsFile st(src / "model.safetensors");
  const auto dir = test::scratch_dir("rob_" + name);
  fs::copy_file(src / "config.json", dir / "config.json");
  SafetensorsWriter w;
  for (const auto& [tensor, v] : st.tensors()) {
    std::string n = tensor;
    Shape shape = v.shape;
    if (!edit(n, shape)) continue;
    w.add(n, v.dtype, shape, std::vector<std::byte>(v.data, v.data + v.nbytes()));
  }
  w.write(dir / "model.safetensors");
  return dir;
}

// parse_config of the 1b preset's config.json with one key changed.
ModelConfig parse_edited(const std::string& key, const nlohmann::json& value) {
  nlohmann::json j = config_to_json(preset("1b"));
  j[key] = value;
  return parse_config(j);
}

ModelConfig parse_edited_mm(const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = config_to_json(preset("4b"));
  edit(j);
  return parse_config(j);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
TEST_CASE("robustness: missing files and wrong file kinds", "[robustness]") {
  const auto dir = test::scratch_dir("rob_files");
  const auto text = test::fixture("text-tiny-a");
  // R1, R2: no checkpoint directory; a file instead of one.
  CHECK_ERROR(IoError, Checkpoint::open("/nonexistent/ckpt"), "/nonexistent/ckpt",
              "not a directory or a .gguf file (expected a checkpoint directory with config.json, "
              "or a GGUF file)");
  CHECK_ERROR(IoError, Checkpoint::open(text / "config.json"), (text / "config.json").string(),
              "not a directory or a .gguf file (expected a checkpoint directory with config.json, "
              "or a GGUF file)");
  // R3: a directory without config.json.
  CHECK_ERROR(IoError, Checkpoint::open(dir), (dir / "config.json").string(),
              "cannot open: No such file or directory");
  // R4: config.json but no weights.
  fs::copy_file(text / "config.json", dir / "config.json");
  CHECK_ERROR(IoError, Checkpoint::open(dir), dir.string(),
              "no model.safetensors or model.safetensors.index.json here");
  // R5, R6: a missing safetensors file; a directory in its place.
  CHECK_ERROR(IoError, SafetensorsFile(dir / "none.safetensors"),
              (dir / "none.safetensors").string(), "cannot open: No such file or directory");
  CHECK_ERROR(IoError, SafetensorsFile(dir), dir.string(), "is a directory, not a regular file");
  // R7: a shard the index names is missing.
  write(dir / TensorStore::kIndexFile,
        R"({"weight_map": {"model.norm.weight": "s2.safetensors"}})");
  CHECK_ERROR(IoError, TensorStore::open(dir), (dir / "s2.safetensors").string(),
              "cannot open: No such file or directory");
  // R8 - R12: a missing .npy, image, tokenizer, preprocessor config; a directory as an image.
  CHECK_ERROR(IoError, read_npy(dir / "none.npy"), (dir / "none.npy").string(),
              "cannot open: No such file or directory");
  CHECK_ERROR(IoError, load_image(dir / "none.png"), (dir / "none.png").string(),
              "cannot open: No such file or directory");
  CHECK_ERROR(IoError, load_image(dir), dir.string(), "is a directory, not a regular file");
  CHECK_ERROR(IoError, Tokenizer(dir / "tokenizer.model"), (dir / "tokenizer.model").string(),
              "tokenizer model not found (run scripts/get_tokenizer.sh to build one)");
  CHECK_ERROR(IoError, load_preprocessor_config(dir / "preprocessor_config.json"),
              (dir / "preprocessor_config.json").string(),
              "cannot open: No such file or directory");
  // A FIFO in place of any input is refused at once: opening one for reading would wait for a
  // writer forever.
  const auto fifo_dir = test::scratch_dir("rob_fifo");
  for (const char* name : {"config.json", "model.safetensors", "image.png", "ids.npy",
                           "tokenizer.model", "preprocessor_config.json"})
    REQUIRE(::mkfifo((fifo_dir / name).c_str(), 0600) == 0);
  CHECK_ERROR(IoError, Checkpoint::open(fifo_dir), (fifo_dir / "config.json").string(),
              "is a FIFO, not a regular file");
  fs::remove(fifo_dir / "config.json");
  fs::copy_file(text / "config.json", fifo_dir / "config.json");
  CHECK_ERROR(IoError, Checkpoint::open(fifo_dir), (fifo_dir / "model.safetensors").string(),
              "is a FIFO, not a regular file");
  CHECK_ERROR(IoError, load_image(fifo_dir / "image.png"), (fifo_dir / "image.png").string(),
              "is a FIFO, not a regular file");
  CHECK_ERROR(IoError, read_npy(fifo_dir / "ids.npy"), (fifo_dir / "ids.npy").string(),
              "is a FIFO, not a regular file");
  CHECK_ERROR(IoError, Tokenizer(fifo_dir / "tokenizer.model"),
              (fifo_dir / "tokenizer.model").string(), "is a FIFO, not a regular file");
  CHECK_ERROR(IoError, load_preprocessor_config(fifo_dir / "preprocessor_config.json"),
              (fifo_dir / "preprocessor_config.json").string(), "is a FIFO, not a regular file");

  // R13: config.json that is not JSON (an image).
  const auto png = test::fixture("mm-tiny-a") / "image0.png";
  CHECK_ERROR_THAT(FormatError, load_config(png), png.string(),
                   StartsWith(png.string() + ": invalid JSON: [json.exception.parse_error.101]"));
  // R14: a safetensors path that holds JSON: its first 8 bytes read as an absurd header length.
  const auto cfg = text / "config.json";
  uint64_t n = 0;
  {
    std::ifstream in(cfg, std::ios::binary);
    unsigned char b[8];
    in.read(reinterpret_cast<char*>(b), 8);
    for (int i = 7; i >= 0; --i) n = (n << 8) | b[i];
  }
  CHECK_ERROR(FormatError, SafetensorsFile(cfg), cfg.string(),
              "header length " + std::to_string(n) + " exceeds the 100000000-byte limit");
  // R15: a .npy path that holds something else.
  CHECK_ERROR(FormatError, read_npy(cfg), cfg.string(), "not a .npy file (bad magic)");
  // R16: an image path that holds text.
  CHECK_ERROR(FormatError, load_image(cfg), cfg.string(),
              "not a readable image (Image not of any known type, or corrupt): corrupt, truncated, "
              "too large, or "
              "not PNG, JPEG, BMP, GIF, TGA, PSD or PNM");
  // R17: a tokenizer.model that is not a SentencePiece model.
  CHECK_ERROR_THAT(FormatError, Tokenizer(cfg), cfg.string(),
                   StartsWith(cfg.string() + ": not a SentencePiece model: "));
  // R18: a config.json that is JSON but not an object.
  write(dir / "list.json", "[1, 2]");
  CHECK_ERROR(ConfigError, load_config(dir / "list.json"),
              (dir / "list.json").string() + ": config", "expected a JSON object");
}

// ---------------------------------------------------------------------------------------------
TEST_CASE("robustness: truncated and corrupt checkpoints", "[robustness]") {
  const auto dir = test::scratch_dir("rob_corrupt");
  const auto f = dir / "x.safetensors";
  const std::string ok = R"("t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})";
  // R19: shorter than the 8-byte length.
  write(f, "abc");
  CHECK_ERROR(FormatError, SafetensorsFile(f), f.string(),
              "truncated: 3 bytes, a safetensors file starts with an 8-byte header length");
  // R20: a header length past the end of the file.
  write(f, le64(1000) + "{}" + std::string(14, ' '));
  CHECK_ERROR(FormatError, SafetensorsFile(f), f.string(),
              "header length 1000 runs past the end of the 24-byte file");
  // R21: a header that is not JSON.
  raw_safetensors(f, "{\"t\": {", 0);
  CHECK_ERROR_THAT(
      FormatError, SafetensorsFile(f), f.string(),
      StartsWith(f.string() + ": invalid JSON header: [json.exception.parse_error.101]"));
  // R22: the data section cut short.
  raw_safetensors(f, "{" + ok + "}", 4);
  CHECK_ERROR(FormatError, SafetensorsFile(f), f.string() + ": tensor 't'",
              "data range [0, 8) lies outside the 4-byte data section");
  // R23, R24: a name twice; overlapping data.
  raw_safetensors(f, "{" + ok + ", " + ok + "}", 8);
  CHECK_ERROR(FormatError, SafetensorsFile(f), f.string(), "duplicate tensor name 't'");
  raw_safetensors(
      f, "{" + ok + R"(, "u": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", 12);
  CHECK_ERROR(FormatError, SafetensorsFile(f), f.string(),
              "data ranges of tensors 't' and 'u' overlap");
  // R30: a shape whose byte count wraps around 2^64 (found by fuzz_safetensors' review; fixed).
  raw_safetensors(
      f, R"({"t": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0]}})", 0);
  CHECK_ERROR(FormatError, SafetensorsFile(f), f.string() + ": tensor 't'", "shape overflows");

  // Sharded checkpoints (R25 - R29).
  ModelConfig cfg = preset("tiny");
  cfg.text.vocab_size = 300;
  const auto sharded = test::scratch_dir("rob_sharded");
  synthesize_checkpoint(cfg, sharded, {.seed = 1, .max_shard_bytes = 40000});
  const auto index_path = sharded / TensorStore::kIndexFile;
  const auto index = nlohmann::json::parse(std::ifstream(index_path));
  const std::string norm = "model.norm.weight", norm_file = index["weight_map"][norm];
  auto with_index = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = index;
    edit(j);
    write(index_path, j.dump());
    return sharded;
  };
  // R25: a tensor stored in two shards.
  {
    const auto dup = test::scratch_dir("rob_dup");
    raw_safetensors(dup / "a.safetensors", "{" + ok + "}", 8);
    raw_safetensors(dup / "b.safetensors", "{" + ok + "}", 8);
    write(dup / TensorStore::kIndexFile,
          R"({"weight_map": {"t": "a.safetensors", "u": "b.safetensors"}})");
    CHECK_ERROR(FormatError, TensorStore::open(dup), (dup / "b.safetensors").string(),
                "tensor 't' also appears in another shard");
  }
  // R26: the index lists a tensor no shard holds.
  CHECK_ERROR(
      TensorError,
      TensorStore::open(with_index([&](auto& j) { j["weight_map"]["model.extra"] = norm_file; })),
      "model.extra", "listed in " + index_path.string() + " but missing from " + norm_file);
  // R27: a shard holds a tensor the index does not list.
  CHECK_ERROR(
      TensorError, TensorStore::open(with_index([&](auto& j) { j["weight_map"].erase(norm); })),
      norm,
      "stored in " + (sharded / norm_file).string() + " but not listed in " + index_path.string());
  // R28: a shard path that leaves the directory.
  CHECK_ERROR(
      FormatError,
      TensorStore::open(with_index([&](auto& j) { j["weight_map"][norm] = "../m.safetensors"; })),
      index_path.string(),
      "weight_map['" + norm +
          "'] = '../m.safetensors' is not a file name in the checkpoint directory");
  // R29: an index without a weight_map object.
  CHECK_ERROR(FormatError, TensorStore::open(with_index([](auto& j) {
                j = {{"weight_map", 3}};
              })),
              index_path.string(), "expected an object with a \"weight_map\" object");
}

// ---------------------------------------------------------------------------------------------
TEST_CASE("robustness: shape and dtype mismatches", "[robustness]") {
  const auto dir = test::scratch_dir("rob_shapes");
  const auto f = dir / "x.safetensors";
  // R31: a dtype the library does not read.
  raw_safetensors(f, R"({"t": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]}})", 16);
  CHECK_ERROR(FormatError, SafetensorsFile(f), f.string() + ": tensor 't'",
              "unsupported dtype \"F64\" (expected BF16, F16 or F32)");
  // R32: byte range and shape disagree.
  raw_safetensors(f, R"({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8);
  CHECK_ERROR(FormatError, SafetensorsFile(f), f.string() + ": tensor 't'",
              "shape [3] x F32 needs 12 bytes, data_offsets span 8");
  // R33: a tensor whose shape is not the config's (k_proj is [kv_heads * head_dim, hidden] = [32,
  // 64]).
  const auto k_proj = "model.layers.0.self_attn.k_proj.weight";
  const auto reshaped = rewritten_text_checkpoint("reshaped", [&](std::string& n, Shape& s) {
    if (n == k_proj) s = {64, 32};
    return true;
  });
  CHECK_ERROR(TensorError, Checkpoint::open(reshaped), k_proj,
              "expected shape [32, 64], found [64, 32] (in " + reshaped.string() + ")");
  // R34: a missing tensor (a renamed one is missing too).
  const auto up = "model.layers.2.mlp.up_proj.weight";
  const auto missing =
      rewritten_text_checkpoint("missing", [&](std::string& n, Shape&) { return n != up; });
  CHECK_ERROR(TensorError, Checkpoint::open(missing), up,
              "missing from " + missing.string() + " (expected shape [256, 64])");
  // R35: a tensor the config does not call for.
  {
    const SafetensorsFile st(test::fixture("text-tiny-a") / "model.safetensors");
    const auto added = test::scratch_dir("rob_added");
    fs::copy_file(test::fixture("text-tiny-a") / "config.json", added / "config.json");
    SafetensorsWriter w;
    for (const auto& [tensor, v] : st.tensors())
      w.add(tensor, v.dtype, v.shape, std::vector<std::byte>(v.data, v.data + v.nbytes()));
    w.add("model.extra.weight", DType::F32, {1}, std::vector<std::byte>(4));
    w.write(added / "model.safetensors");
    CHECK_ERROR(TensorError, Checkpoint::open(added), "model.extra.weight",
                "unexpected tensor in " + added.string() +
                    " for a gemma3_text config (name scheme: text-only (model.*))");
  }
  // R36: no embedding under any known name scheme.
  const auto renamed = rewritten_text_checkpoint("renamed", [&](std::string& n, Shape&) {
    n = "transformer." + n;
    return true;
  });
  CHECK_ERROR(
      TensorError, Checkpoint::open(renamed), renamed.string(),
      "no embedding tensor found (looked for model.embed_tokens.weight, "
      "language_model.model.embed_tokens.weight, model.language_model.embed_tokens.weight)");
}

// ---------------------------------------------------------------------------------------------
TEST_CASE("robustness: impossible configs", "[robustness][config]") {
  // R37 - R40: zero heads, zero kv heads, kv heads not dividing heads, an odd head_dim.
  CHECK_ERROR(ConfigError, parse_edited("num_attention_heads", 0), "num_attention_heads",
              "must be positive");
  CHECK_ERROR(ConfigError, parse_edited("num_key_value_heads", 0), "num_key_value_heads",
              "must be positive");
  CHECK_ERROR(ConfigError, parse_edited("num_key_value_heads", 3), "num_key_value_heads",
              "must divide num_attention_heads (4), got 3");
  CHECK_ERROR(ConfigError, parse_edited("head_dim", 33), "head_dim",
              "must be positive and even (RoPE rotates halves), got 33");
  // R41: heads x head_dim need not equal hidden_size (27B: 32 x 128 = 4096, hidden 5376): accepted.
  CHECK(parse_edited("head_dim", 384).text.head_dim == 384);
  // R42: a window larger than the context is accepted, as transformers does: local layers then see
  // every earlier position, and their cache is capped at the capacity.
  {
    const ModelConfig m = parse_edited("sliding_window", 65536);
    CHECK(m.text.sliding_window > m.text.max_position_embeddings);
    const KVCache<float> cache(m.text, 100);
    CHECK(cache.layer(0).rows() == 100);
    TextConfig all_global = m.text;
    for (auto& k : all_global.layer_types) k = LayerKind::Global;
    CHECK(KVCache<float>::bytes_needed(m.text, 100) ==
          KVCache<float>::bytes_needed(all_global, 100));
  }
  // R43: a window of zero.
  CHECK_ERROR(ConfigError, parse_edited("sliding_window", 0), "sliding_window", "must be positive");
  // R44: a layer count that would allocate unboundedly (found by fuzz_config; fixed).
  CHECK_ERROR(ConfigError, parse_edited("num_hidden_layers", int64_t(1) << 40), "num_hidden_layers",
              "must be in [1, 4096], got 1099511627776");
  CHECK_ERROR(ConfigError, parse_edited("num_hidden_layers", 0), "num_hidden_layers",
              "must be in [1, 4096], got 0");
  // R45: layer_types of the wrong length.
  CHECK_ERROR(ConfigError, parse_edited("layer_types", {"full_attention"}), "layer_types",
              "has 1 entries, expected num_hidden_layers = 26");
  // R46: sizes whose tensors could not exist (their element counts overflow).
  CHECK_ERROR(ConfigError, parse_edited("vocab_size", int64_t(1) << 60), "vocab_size",
              "makes a tensor of 2^62 or more elements (vocab_size x hidden_size)");
  CHECK_ERROR(
      ConfigError, parse_edited("head_dim", int64_t(1) << 60), "head_dim",
      "makes a tensor of 2^62 or more elements (num_attention_heads x head_dim x hidden_size)");
  // R47, R48, R56: an unknown model_type, RoPE type or activation.
  CHECK_ERROR(ConfigError, parse_edited("model_type", "llama"), "model_type",
              "unsupported 'llama' (expected \"gemma3_text\" or \"gemma3\")");
  CHECK_ERROR(ConfigError, parse_edited("rope_scaling", {{"rope_type", "yarn"}, {"factor", 4}}),
              "rope_scaling.rope_type",
              "unsupported RoPE type 'yarn' (Gemma 3 uses default or linear)");
  CHECK_ERROR(ConfigError, parse_edited("hidden_activation", "silu"), "hidden_activation",
              "unsupported 'silu' (Gemma 3 uses gelu_pytorch_tanh)");
  // R49: a value of the wrong JSON type.
  CHECK_ERROR(ConfigError, parse_edited("hidden_size", "64"), "hidden_size",
              "expected an integer, got \"64\"");
  // R50, R51: a non-positive epsilon or soft cap.
  CHECK_ERROR(ConfigError, parse_edited("rms_norm_eps", 0), "rms_norm_eps", "must be positive");
  CHECK_ERROR(ConfigError, parse_edited("final_logit_softcapping", -30.0),
              "final_logit_softcapping", "must be positive or null");
  // R52 - R54: vision tower and image-token settings.
  CHECK_ERROR(ConfigError, parse_edited_mm([](auto& j) { j["vision_config"]["patch_size"] = 15; }),
              "vision_config.patch_size", "must be positive and divide image_size");
  CHECK_ERROR(ConfigError,
              parse_edited_mm([](auto& j) { j["vision_config"]["image_size"] = 1 << 20; }),
              "vision_config.image_size", "must be in [1, 16384]");
  CHECK_ERROR(ConfigError, parse_edited_mm([](auto& j) { j["mm_tokens_per_image"] = 255; }),
              "mm_tokens_per_image",
              "must be a square whose side divides the patch grid side (64), got 255");
  CHECK_ERROR(ConfigError, parse_edited_mm([](auto& j) { j["image_token_index"] = 262208; }),
              "image_token_index", "262208 is outside the embedding table [0, 262208)");
  // R55: through load_config the subject starts with the file.
  const auto dir = test::scratch_dir("rob_config");
  nlohmann::json j = config_to_json(preset("1b"));
  j["num_attention_heads"] = 0;
  write(dir / "config.json", j.dump());
  CHECK_ERROR(ConfigError, load_config(dir / "config.json"),
              (dir / "config.json").string() + ": num_attention_heads", "must be positive");
}

// ---------------------------------------------------------------------------------------------
TEST_CASE("robustness: token ids out of range", "[robustness]") {
  const auto ck = Checkpoint::open(test::fixture("text-tiny-a"));
  const TextModel<float> model(ck);
  // R57, R58, R61: ids outside the embedding, negative ids, no ids.
  CHECK_ERROR(InvalidArgument, model.forward(std::vector<int32_t>{2, 512}), "ids",
              "token id 512 at position 1 is outside the vocabulary [0, 512)");
  CHECK_ERROR(InvalidArgument, model.forward(std::vector<int32_t>{-1}), "ids",
              "token id -1 at position 0 is outside the vocabulary [0, 512)");
  CHECK_ERROR(InvalidArgument, model.forward(std::vector<int32_t>{}), "ids", "empty sequence");
  // R59: decoding an id the tokenizer does not have.
  CHECK_ERROR(InvalidArgument, tokenizer().decode({5, 262145}), "id",
              "token id 262145 is outside the tokenizer's [0, 262144]");
  // R60: penalties over recent tokens outside the row.
  Sampler s({.repetition_penalty = 1.2f});
  const std::vector<float> row{0.f, 1.f, 2.f, 3.f};
  const std::vector<int32_t> recent{9};
  CHECK_ERROR(InvalidArgument, s.sample(row, recent), "recent_tokens",
              "token id 9 at position 0 is outside the vocabulary [0, 4)");
  // ... and through the public penalty stages (the ASan build caught a test writing past the row).
  std::vector<float> two{1.f, 1.f};
  CHECK_ERROR(InvalidArgument, sampling::apply_presence_frequency_penalties(two, recent, 0.5f, 0.f),
              "recent_tokens", "token id 9 at position 0 is outside the vocabulary [0, 2)");
  CHECK_ERROR(InvalidArgument, sampling::apply_repetition_penalty(two, recent, 1.5f),
              "recent_tokens", "token id 9 at position 0 is outside the vocabulary [0, 2)");
  // R62: ids read from a .npy that does not hold integers (found by fuzz_npy: undefined behaviour
  // before; fixed).
  const auto dir = test::scratch_dir("rob_ids");
  const double inf[] = {std::numeric_limits<double>::infinity()}, half[] = {1.5};
  const int64_t big[] = {int64_t(1) << 40};
  write_npy(dir / "inf.npy", {1}, inf);
  write_npy(dir / "half.npy", {1}, half);
  write_npy(dir / "big.npy", {1}, big);
  CHECK_ERROR(InvalidArgument, read_npy(dir / "inf.npy").values<int32_t>(), "npy",
              "element 0 of a <f8 array (inf) is not a value of the requested integer type");
  CHECK_ERROR(InvalidArgument, read_npy(dir / "half.npy").values<int32_t>(), "npy",
              "element 0 of a <f8 array (1.500000) is not a value of the requested integer type");
  CHECK_ERROR(
      InvalidArgument, read_npy(dir / "big.npy").values<int32_t>(), "npy",
      "element 0 of a <i8 array (1099511627776) is not a value of the requested integer type");
  // R63: a piece name the tokenizer does not have.
  CHECK_ERROR(InvalidArgument, tokenizer().id_of("<nope>"), "piece",
              "'<nope>' is not a piece of " + tokenizer().path());
}

// ---------------------------------------------------------------------------------------------
TEST_CASE("robustness: prompts over the context and out-of-memory caches", "[robustness]") {
  const auto ck = Checkpoint::open(test::fixture("text-tiny-a"));
  const TextConfig& cfg = ck.config().text;
  const Gemma3<float> model(ck);
  // R64, R69: a prompt longer than the session's context; an empty prompt.
  Session<float> session(model, tokenizer(), 4);
  CHECK_ERROR(InvalidArgument, session.prefill(std::vector<int32_t>{2, 3, 4, 5, 6}), "prompt",
              "5 tokens do not fit: 0 of the context's 4 positions are in use");
  CHECK_ERROR(InvalidArgument, session.prefill(std::vector<int32_t>{}), "prompt", "empty");
  // R65: a whole sequence longer than max_position_embeddings.
  CHECK_ERROR(InvalidArgument, model.text().forward(std::vector<int32_t>(32769, 2)), "ids",
              "sequence of 32769 tokens exceeds max_position_embeddings 32768");
  // R66: more tokens than a cache has room for.
  KVCache<float> cache(cfg, 3);
  model.text().forward(std::vector<int32_t>{2, 5}, cache);
  CHECK_ERROR(InvalidArgument, model.text().forward(std::vector<int32_t>{6, 7}, cache), "kv_cache",
              "full: 2 positions cached, 2 more requested, capacity 3");
  // R67, R68: a context beyond max_position_embeddings; a context of zero.
  CHECK_ERROR(InvalidArgument, KVCache<float>(cfg, 40000), "capacity",
              "KV cache capacity 40000 exceeds max_position_embeddings 32768");
  CHECK_ERROR(InvalidArgument, KVCache<float>(cfg, 0), "capacity",
              "KV cache capacity must be positive");
  // R70: a cache larger than the memory available is refused before allocating it.
  TextConfig big = cfg;
  big.max_position_embeddings = int64_t(1) << 40;
  // text-tiny-a: 5 local layers (window 8) and 1 global, 1 kv head of 32, float.
  CHECK(KVCache<float>::bytes_needed(big, int64_t(1) << 40) ==
        ((int64_t(1) << 40) + 5 * 8) * 2 * 32 * 4);
  CHECK_ERROR_THAT(
      InvalidArgument, KVCache<float>(big, int64_t(1) << 40), "context",
      StartsWith("context: a KV cache of 1099511627776 positions needs 262144.00 GiB, only ") &&
          EndsWith(" GiB of memory is available"));
  // R71: the estimate saturates instead of overflowing.
  big.max_position_embeddings = std::numeric_limits<int64_t>::max();
  CHECK(KVCache<float>::bytes_needed(big, int64_t(1) << 62) == std::numeric_limits<int64_t>::max());
}

// ---------------------------------------------------------------------------------------------
TEST_CASE("robustness: invalid sampler settings and logits", "[robustness][sampler]") {
  // R72 - R78: each setting outside its range names its field.
  CHECK_ERROR(InvalidArgument, Sampler({.temperature = -1.f}), "temperature",
              "must be a finite number >= 0 (0 means greedy), got -1");
  CHECK_ERROR(InvalidArgument, Sampler({.temperature = std::numeric_limits<float>::quiet_NaN()}),
              "temperature", "must be a finite number >= 0 (0 means greedy), got nan");
  CHECK_ERROR(InvalidArgument, Sampler({.top_k = -1}), "top_k",
              "must be >= 0 (0 turns it off), got -1");
  CHECK_ERROR(InvalidArgument, Sampler({.top_p = 0.f}), "top_p",
              "must be in (0, 1] (1 turns it off), got 0");
  CHECK_ERROR(InvalidArgument, Sampler({.min_p = 1.5f}), "min_p",
              "must be in [0, 1] (0 turns it off), got 1.5");
  CHECK_ERROR(InvalidArgument, Sampler({.repetition_penalty = 0.f}), "repetition_penalty",
              "must be a finite number > 0 (1 turns it off), got 0");
  CHECK_ERROR(InvalidArgument,
              Sampler({.presence_penalty = std::numeric_limits<float>::infinity()}),
              "presence_penalty", "must be finite (0 turns it off), got inf");
  CHECK_ERROR(InvalidArgument,
              Sampler({.frequency_penalty = -std::numeric_limits<float>::infinity()}),
              "frequency_penalty", "must be finite (0 turns it off), got -inf");
  CHECK_ERROR(InvalidArgument, Sampler({.penalty_window = -2}), "penalty_window",
              "must be >= 0 (0 means every recent token), got -2");
  CHECK_ERROR(InvalidArgument, Sampler({.top_logprobs = -1}), "top_logprobs",
              "must be >= 0, got -1");
  // R79 - R81: logits the sampler cannot draw from.
  Sampler s;
  const float nan = std::numeric_limits<float>::quiet_NaN(),
              inf = std::numeric_limits<float>::infinity();
  CHECK_ERROR(InvalidArgument, s.sample(std::vector<float>{0.f, nan}), "logits",
              "NaN at token id 1");
  CHECK_ERROR(InvalidArgument, s.sample(std::vector<float>{-inf, -inf}), "logits",
              "every logit is -inf: no token can be sampled");
  CHECK_ERROR(InvalidArgument, s.sample(std::vector<float>{}), "logits", "empty row");
  // R82: a generation_config.json value of the wrong type.
  CHECK_ERROR(ConfigError, sampler_config_from_json({{"top_k", "40"}}), "generation_config.top_k",
              "unexpected type: \"40\"");
}

// ---------------------------------------------------------------------------------------------
TEST_CASE("robustness: empty, huge and corrupt images", "[robustness][vision]") {
  const auto dir = test::scratch_dir("rob_images");
  // R83, R84: an empty file; empty memory.
  write(dir / "empty.png", "");
  CHECK_ERROR(FormatError, load_image(dir / "empty.png"), (dir / "empty.png").string(),
              "empty file");
  CHECK_ERROR(FormatError, decode_image(std::span<const uint8_t>()), "<memory>",
              "empty image data");
  // R85: a PNG whose pixel data is cut off.
  std::string png;
  {
    std::ifstream in(test::fixture("mm-tiny-a") / "image0.png", std::ios::binary);
    png.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  write(dir / "cut.png", png.substr(0, png.size() / 2));
  CHECK_ERROR_THAT(FormatError, load_image(dir / "cut.png"), (dir / "cut.png").string(),
                   StartsWith((dir / "cut.png").string() + ": cannot decode image ("));
  // R86: a side over the limit, refused from the header before any pixel memory is allocated.
  const std::string huge = "P6\n20000 2\n255\n" + std::string(64, 'x');
  CHECK_ERROR(FormatError,
              decode_image(std::as_bytes(std::span(huge.data(), huge.size())), "huge.ppm"),
              "huge.ppm", "image is 20000 x 2 pixels; each side must be between 1 and 16384");
  // R87: a small file claiming far more pixels than its bytes can encode (a decompression bomb).
  const std::string bomb = "P5\n16000 16000\n255\n" + std::string(64, 'x');
  CHECK_ERROR(
      FormatError, decode_image(std::as_bytes(std::span(bomb.data(), bomb.size())), "bomb.pgm"),
      "bomb.pgm",
      "claims 16000 x 16000 pixels in " + std::to_string(bomb.size()) +
          " bytes, more than any image format can encode in them (at most 16384 pixels per byte)");
  // R88 - R90: images on a text-only model; too few images for the placeholders; pixel values of
  // the wrong shape.
  const auto text = Checkpoint::open(test::fixture("text-tiny-a"));
  const Gemma3<float> text_model(text);
  const Image image = load_image(test::fixture("mm-tiny-a") / "image0.png");
  CHECK_ERROR(InvalidArgument, text_model.encode(std::vector<Image>{image}), "image",
              "this is a text-only checkpoint (gemma3_text): no vision tower");
  const auto mm = Checkpoint::open(test::fixture("mm-tiny-a"));
  const Gemma3<float> mm_model(mm);
  const auto ids = test::read_ids(test::fixture("mm-tiny-a") / "p0_input_ids.npy");
  CHECK_ERROR(InvalidArgument, mm_model.forward(ids), "images",
              "16 image placeholder tokens in the prompt but 0 image(s) with 0 soft tokens");
  CHECK_ERROR(InvalidArgument, mm_model.encode(Mat<float>::Zero(3, 4)), "pixel_values",
              "expected [3, 50176] (channels x 224*224 pixels), got [3, 4]");
  // R91, R92: processor settings out of range; a preprocessor_config.json size the tower cannot
  // take.
  ImageProcessorConfig zero_height;
  zero_height.height = 0;
  CHECK_ERROR(ConfigError, ImageProcessor(zero_height), "size",
              "height and width must be in [1, 16384]");
  CHECK_ERROR(ConfigError,
              parse_preprocessor_config({{"size", {{"height", 448}, {"width", 448}}}},
                                        &*mm.config().vision),
              "size", "448 x 448 does not match the vision tower's image_size 224");
  // R93: resizing an empty image.
  CHECK_ERROR(InvalidArgument, resize_bilinear(Image(), 4, 4), "image",
              "cannot resize an empty image");
}

// ---------------------------------------------------------------------------------------------
TEST_CASE("robustness: text, chat and tool-call input", "[robustness][tokenizer]") {
  // R94: text that is not UTF-8.
  CHECK_ERROR(InvalidArgument, tokenizer().encode("ok\xff"), "text", "invalid UTF-8 at byte 2");
  // R95, R96: a conversation whose roles do not alternate; a message that is not UTF-8.
  Conversation roles;
  roles.user("a").user("b");
  CHECK_ERROR(InvalidArgument, roles.render(), "conversation",
              "roles must alternate user/assistant/user/assistant/... (message 1 has role 'user')");
  Conversation bad_text;
  bad_text.user("\xc3");
  CHECK_ERROR(InvalidArgument, bad_text.render(), "message", "invalid UTF-8 at byte 0");
  // R97: a malformed tool call; R98: a tool declaration that is not an object.
  CHECK_ERROR(ToolCallError, find_tool_calls("```tool_code\nf(a=[1, 2)\n```"), "tool_code",
              "offset 22 (line 2, column 10): expected ',' or ']' in the list opened at offset 17, "
              "found ')'");
  CHECK_ERROR(InvalidArgument, render_tool_declarations(nlohmann::json::array({3})), "tools[0]",
              "a declaration must be an object, got 3");
}

// ---------------------------------------------------------------------------------------------
// The CLI: one line on stderr and exit code 2 (usage, InvalidArgument) or 1 (everything else).
namespace {
fs::path cli_binary() {
  // build/tests/gemma3_tests → build/examples/gemma3 (built when GEMMA3_BUILD_EXAMPLES is on).
  const fs::path exe = fs::read_symlink("/proc/self/exe");
  const fs::path cli = exe.parent_path().parent_path() / "examples" / "gemma3";
  return fs::exists(cli) ? cli : fs::path();
}

struct CliResult {
  int code;
  std::string err;  // stderr
};

// Runs the CLI with `args`, and `env` ("NAME=value ...") in its environment.
CliResult run_cli(const std::string& args, const std::string& env = "") {
  const auto dir = test::scratch_dir("rob_cli_out");
  const std::string cmd = env + " " + cli_binary().string() + " " + args + " </dev/null >" +
                          (dir / "out").string() + " 2>" + (dir / "err").string();
  const int status = std::system(cmd.c_str());
  std::ifstream in(dir / "err");
  std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, err};
}

// Tiny checkpoints with the real vocabulary (the CLI refuses a tokenizer larger than the model),
// narrow so that they are quick to write: text-only, and multimodal.
fs::path cli_checkpoint(bool multimodal) {
  ModelConfig cfg = preset(multimodal ? "tiny-mm" : "tiny");
  TextConfig& t = cfg.text;
  t.hidden_size = 8;
  t.intermediate_size = 16;
  t.num_hidden_layers = 2;
  t.num_attention_heads = 2;
  t.num_key_value_heads = 1;
  t.head_dim = 4;
  t.query_pre_attn_scalar = 4;
  t.layer_types = layer_types_from_pattern(2, 2);
  t.max_position_embeddings = int64_t(1) << 40;  // room for a context that cannot fit in memory
  const auto dir = test::scratch_dir(multimodal ? "rob_cli_mm" : "rob_cli_text");
  synthesize_checkpoint(cfg, dir, {.seed = 1});
  return dir;
}
}  // namespace

TEST_CASE("robustness: the command line's exit codes and one-line errors", "[robustness][cli]") {
  if (cli_binary().empty()) {
    WARN("the gemma3 CLI is not built (GEMMA3_BUILD_EXAMPLES=OFF): CLI rows skipped");
    return;
  }
  const std::string tok = " --tokenizer " + std::string(GEMMA3_TOKENIZER_MODEL);
  const fs::path text = cli_checkpoint(false), mm = cli_checkpoint(true);
  const std::string model = " --model " + text.string() + tok;
  auto check = [](const CliResult& r, int code, const std::string& lines) {
    INFO(r.err);
    CHECK(r.code == code);
    CHECK(r.err == lines + "\n");
  };
  // C1 - C4: usage errors from the argument parser (CLI11's message and a hint), exit 2.
  check(run_cli(""), 2, "A subcommand is required\nRun with --help for more information.");
  check(run_cli("run --model m --prompt p --bogus"), 2,
        "The following argument was not expected: --bogus\nRun with --help for more information.");
  check(run_cli("run --model m --prompt p --top-p 2"), 2,
        "--top-p: 2 is not in (0, 1]\nRun with --help for more information.");
  check(run_cli("run --prompt p"), 2, "--model is required\nRun with --help for more information.");
  // C5: a missing checkpoint: a runtime error, exit 1.
  check(run_cli("run --model /nonexistent/ckpt --prompt hi"), 1,
        "gemma3: error: /nonexistent/ckpt: not a directory or a .gguf file (expected a checkpoint "
        "directory with config.json, or a GGUF file)");
  // C6: a prompt longer than --context: an InvalidArgument, exit 2.
  {
    const auto r = run_cli("run" + model + " --prompt 'a b c d e f g h' --context 4");
    CHECK(r.code == 2);
    CHECK_THAT(r.err,
               StartsWith("gemma3: error: prompt: ") &&
                   EndsWith(" tokens do not fit: 0 of the context's 4 positions are in use\n"));
  }
  // C7: --context beyond max_position_embeddings.
  check(run_cli("run" + model + " --prompt hi --context 2000000000000"), 2,
        "gemma3: error: capacity: KV cache capacity 2000000000000 exceeds max_position_embeddings "
        "1099511627776");
  // C8: --image on a text-only checkpoint.
  const auto png = test::fixture("mm-tiny-a") / "image0.png";
  check(run_cli("run" + model + " --prompt hi --image " + png.string()), 2,
        "gemma3: error: image: this is a text-only checkpoint (gemma3_text): no vision tower");
  // C9: a corrupt image file: a runtime error, exit 1.
  const auto bad = test::scratch_dir("rob_cli_img") / "bad.png";
  write(bad, "not an image");
  check(run_cli("run --model " + mm.string() + tok + " --prompt hi --image " + bad.string()), 1,
        "gemma3: error: " + bad.string() +
            ": not a readable image (Image not of any known type, or corrupt): corrupt, truncated, "
            "too large, or "
            "not PNG, JPEG, BMP, GIF, TGA, PSD or PNM");
  // C10: a --context whose KV cache cannot fit in memory: refused before allocating, exit 2.
  {
    const auto r = run_cli("run" + model + " --prompt hi --context 1000000000000");
    CHECK(r.code == 2);
    CHECK_THAT(r.err,
               StartsWith("gemma3: error: context: a KV cache of 1000000000000 positions needs ") &&
                   EndsWith(" GiB of memory is available\n"));
  }
  // C11: token ids from a .npy that does not hold integers.
  const auto ids = test::scratch_dir("rob_cli_ids") / "ids.npy";
  const double values[] = {2.0, 0.5};
  write_npy(ids, {2}, values);
  check(run_cli("dump --model " + text.string() + " --ids-npy " + ids.string() + " --out " +
                ids.parent_path().string()),
        2,
        "gemma3: error: npy: element 1 of a <f8 array (0.500000) is not a value of the requested "
        "integer type");

  // Misuse (docs/robustness.md, "Faults and misuse"): each refused with what was wrong, exit 2.
  check(run_cli("frobnicate"), 2,
        "gemma3: error: unknown command 'frobnicate' (the commands: synth, inspect, convert, "
        "quantize, "
        "dump, tokenize, detokenize, run, chat, bench, score, perplexity)");
  const int cores = std::max(1, int(std::thread::hardware_concurrency()));
  check(run_cli("run" + model + " --prompt hi --threads 100000"), 2,
        "gemma3: error: --threads: 100000 threads exceed " + std::to_string(4 * cores) +
            ", four times the " + std::to_string(cores) + " cores of this machine");
  check(run_cli("run" + model + " --prompt hi", "OMP_NUM_THREADS=100000"), 2,
        "gemma3: error: OMP_NUM_THREADS: 100000 threads exceed " + std::to_string(4 * cores) +
            ", four times the " + std::to_string(cores) + " cores of this machine");
  check(run_cli("run" + model + " --prompt hi", "GEMMA3_NUM_THREADS=two"), 2,
        "gemma3: error: GEMMA3_NUM_THREADS: 'two' is not a whole number of threads from 1 to " +
            std::to_string(4 * cores));
  for (const char* seed : {"-1", "18446744073709551616", "1e23"})
    check(run_cli("run" + model + " --prompt hi --seed " + seed), 2,
          std::string("--seed: '") + seed +
              "' is not a whole number from 0 to 18446744073709551615\nRun with --help for more "
              "information.");
  check(run_cli("run" + model + " --prompt hi --max-new-tokens 9223372036854775808"), 2,
        "--max-new-tokens: 9223372036854775808 is not in [1, 2147483647]\nRun with --help for more "
        "information.");
  check(run_cli("run" + model + " --prompt hi --temperature 1.8e308"), 2,
        "--temperature: 1.8e308 is not a finite number\nRun with --help for more information.");
  check(run_cli("run" + model + " --prompt hi --temperature 1e300"), 2,
        "--temperature: 1e300 is not in [0, 1e+06]\nRun with --help for more information.");
  check(run_cli("run" + model + " --prompt hi --stop ''"), 2,
        "--stop: an empty stop string\nRun with --help for more information.");
}

// ---------------------------------------------------------------------------------------------
// Regressions: the inputs the fuzz targets found (docs/robustness.md, "Found"), each reduced to its
// essence. (The npy, config and safetensors findings are rows R62, R44 and R30 above.)
TEST_CASE("robustness: regressions of the fuzz findings", "[robustness][fuzz]") {
  // fuzz_image: a JPEG Huffman table of more than 256 codes made stb_image 2.27 write past its
  // tables.
  std::string jpeg = "\xFF\xD8\xFF\xC4";
  jpeg += std::string("\x00\x13\x00", 3) +
          std::string(16, '\x20');  // DHT: class 0, id 0, 16 x 32 codes
  jpeg += std::string(64, '\x01');
  for (const std::string& prefix :
       {std::string(), std::string(8, '\xFF')}) {  // fill bytes before SOI too
    const std::string bad = prefix + jpeg;
    CHECK_ERROR(FormatError,
                decode_image(std::as_bytes(std::span(bad.data(), bad.size())), "dht.jpg"),
                "dht.jpg",
                "not a readable image (Corrupt JPEG): corrupt, truncated, too large, or not PNG, "
                "JPEG, BMP, GIF, TGA, "
                "PSD or PNM");
  }
  // Valid JPEGs (stb_image_write's, grey and colour) pass the check and decode.
  for (const int comp : {1, 3}) {
    std::vector<uint8_t> px(16 * 8 * comp);
    for (std::size_t i = 0; i < px.size(); ++i) px[i] = uint8_t(i * 7);
    std::string out;
    stbi_write_jpg_to_func(write_to_string, &out, 16, 8, comp, px.data(), 90);
    CHECK(detail::stb::jpeg_huffman_tables_ok(reinterpret_cast<const unsigned char*>(out.data()),
                                              int(out.size())));
    const Image image = decode_image(std::as_bytes(std::span(out.data(), out.size())));
    CHECK((image.width == 16 && image.height == 8));
  }
  // fuzz_image: a 16-bit greyscale PNM, converted to 3 channels by stb_image 2.27, read past its
  // buffer; now decoded in its own channels and converted by gemma3.
  const std::string pgm16 = std::string("P5\n2 1\n65535\n") + std::string("\x12\x34\xab\xcd", 4);
  const Image grey = decode_image(std::as_bytes(std::span(pgm16.data(), pgm16.size())));
  REQUIRE((grey.width == 2 && grey.height == 1));
  CHECK((grey.at(0, 0, 0) == grey.at(0, 0, 1) && grey.at(0, 0, 1) == grey.at(0, 0, 2)));
  CHECK((grey.at(0, 1, 0) == grey.at(0, 1, 1) && grey.at(0, 1, 1) == grey.at(0, 1, 2)));
  CHECK(grey.at(0, 0, 0) < grey.at(0, 1, 0));
  // fuzz_image: a PNG whose first IDAT chunk is empty (legal: the compressed pixels may be split
  // over any number of IDAT chunks) made stb_image 2.27 copy zero bytes to a null pointer (UBSan).
  {
    std::vector<uint8_t> px(5 * 3 * 3);
    for (std::size_t i = 0; i < px.size(); ++i) px[i] = uint8_t(i * 11);
    std::string png;
    stbi_write_png_to_func(write_to_string, &png, 5, 3, 3, px.data(), 5 * 3);
    const std::size_t idat = png.find("IDAT");
    REQUIRE((idat != std::string::npos && idat >= 12));
    // Before the first IDAT's length field: length 0, "IDAT", the CRC-32 of "IDAT".
    const std::string split = png.substr(0, idat - 4) +
                              std::string("\0\0\0\0IDAT\x35\xaf\x06\x1e", 12) +
                              png.substr(idat - 4);
    const Image image = decode_image(std::as_bytes(std::span(split.data(), split.size())));
    REQUIRE((image.width == 5 && image.height == 3));
    CHECK(image.pixels == px);
    // fuzz_image: an IDAT claiming 2^30 bytes made stb_image 2.27 allocate 1-2 GiB before finding
    // the file too short; a chunk that runs past the end is now refused before stb reads the file.
    std::string bomb = png;
    bomb.replace(idat - 4, 4, std::string("\x40\0\0\0", 4));
    CHECK_ERROR(FormatError,
                decode_image(std::as_bytes(std::span(bomb.data(), bomb.size())), "idat.png"),
                "idat.png", "cannot decode image (Corrupt PNG: a chunk runs past the end)");
  }
  // fuzz_image: a PNM header number past INT_MAX was signed overflow inside stb_image 2.27.
  const std::string pnm = "P6\n4555555555 1\n255\n" + std::string(16, '\0');
  CHECK_ERROR(FormatError,
              decode_image(std::as_bytes(std::span(pnm.data(), pnm.size())), "big.ppm"), "big.ppm",
              "not a readable image (Corrupt PNM header: a number overflows): corrupt, truncated, "
              "too large, or not "
              "PNG, JPEG, BMP, GIF, TGA, PSD or PNM");
  // fuzz_tool_call: a string literal that is not UTF-8 made render_tool_call (nlohmann's dump)
  // throw a json::type_error; it is now a ToolCallError at the bad byte.
  CHECK_ERROR(ToolCallError, find_tool_calls("```tool_code\nf(a=\"\xa6\")\n```"), "tool_code",
              "offset 18 (line 2, column 6): invalid UTF-8 in a string literal");
  // fuzz_tool_call: a function whose name starts with "print" was taken for print(...).
  const auto calls =
      find_tool_calls("```tool_code\nprint_report(x=1)\nprinter.status()\nprint(f())\n```");
  REQUIRE(calls.size() == 3);
  CHECK(calls[0].name == "print_report");
  CHECK(calls[1].name == "printer.status");
  CHECK(calls[2].name == "f");
  // fuzz_tool_call: a value holding ``` closed the block render_tool_call wrote it into.
  const ToolCall fence{.name = "f", .arguments = {{"code", "```py\nx\n```"}}};
  CHECK(render_tool_call(fence) ==
        "```tool_code\nf(code=\"\\x60\\x60\\x60py\\nx\\n\\x60\\x60\\x60\")\n```");
  CHECK(find_tool_calls(render_tool_call(fence)) == std::vector<ToolCall>{fence});
}
