// GGUF: the format reader and writer, ggml's block quantizations, the llama.cpp gemma3 mapping
// (names, 1 + w norms, metadata), the fixtures' reference logits through a converted file, and the
// malformed files of docs/robustness.md (G rows).
#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <random>

#include <gemma3/checkpoint.hpp>
#include <gemma3/io/gguf_gemma3.hpp>
#include <gemma3/io/gguf_tokenizer.hpp>
#include <gemma3/synth.hpp>
#include <gemma3/text/model.hpp>
#include <gemma3/tokenizer/load_tokenizer.hpp>

#include "check_error.hpp"
#include "test_helpers.hpp"

using namespace gemma3;
namespace fs = std::filesystem;

namespace {

// A GGUF file assembled byte by byte, for the malformed cases.
struct Bytes {
  std::string s;
  Bytes& raw(const std::string& b) { return s += b, *this; }
  template <typename T>
  Bytes& le(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    s.append(b, sizeof(T));
    return *this;
  }
  Bytes& u32(uint32_t v) { return le(v); }
  Bytes& u64(uint64_t v) { return le(v); }
  Bytes& str(const std::string& v) { return u64(v.size()).raw(v); }
  Bytes& header(uint64_t tensors, uint64_t kvs, uint32_t version = 3) {
    return raw("GGUF").u32(version).u64(tensors).u64(kvs);
  }
  // A tensor info: name, dims (outermost first, written innermost first), type, offset.
  Bytes& tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type,
                uint64_t offset) {
    str(name).u32(uint32_t(dims.size()));
    for (auto d = dims.rbegin(); d != dims.rend(); ++d) u64(*d);
    return u32(type).u64(offset);
  }
  Bytes& pad_to(std::size_t alignment) {
    return s.resize((s.size() + alignment - 1) / alignment * alignment), *this;
  }
  Bytes& zeros(std::size_t n) { return s.append(n, '\0'), *this; }
  fs::path write(const fs::path& path) const {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(s.data(), std::streamsize(s.size()));
    return path;
  }
};

// A small text config off every default llama.cpp assumes, so that each key must round-trip.
ModelConfig small_config() {
  ModelConfig cfg = preset("tiny");
  auto& t = cfg.text;
  t.vocab_size = 96, t.hidden_size = 64, t.intermediate_size = 128, t.num_hidden_layers = 4;
  t.num_attention_heads = 4, t.num_key_value_heads = 2, t.head_dim = 32,
  t.query_pre_attn_scalar = 24;
  t.sliding_window = 5, t.max_position_embeddings = 4096;
  t.rope_global = {.theta = 500000.0, .linear_factor = 4.0};
  t.layer_types = {LayerKind::Local, LayerKind::Global, LayerKind::Local, LayerKind::Global};
  return cfg;
}

// Rewrites a parsed GGUF through `edit`, which may change its metadata and tensor list (types of
// metadata are inferred: unsigned -> U32, negative -> I32, float -> F32, bool arrays).
struct Rewrite {
  nlohmann::json metadata;
  std::vector<gguf::TensorInfo> tensors;
};
fs::path rewrite(const fs::path& from, const fs::path& to,
                 const std::function<void(Rewrite&)>& edit) {
  const gguf::File f(from);
  Rewrite r{f.metadata(), f.tensors()};
  edit(r);
  gguf::Writer w;
  for (const auto& [k, v] : r.metadata.items()) {
    using VT = gguf::ValueType;
    if (v.is_array())
      w.set_array(k, v.empty() || v[0].is_boolean() ? VT::Bool : VT::U32, v);
    else
      w.set(k,
            v.is_string()            ? VT::String
            : v.is_boolean()         ? VT::Bool
            : v.is_number_unsigned() ? VT::U32
            : v.is_number_integer()  ? VT::I32
                                     : VT::F32,
            v);
  }
  for (const auto& t : r.tensors)
    w.add(t.name, t.shape, static_cast<gguf::TensorType>(t.type),
          std::vector<std::byte>(t.data, t.data + t.nbytes));
  w.write(to);
  return to;
}

float f32_at(const gguf::TensorInfo& t, std::size_t i) {
  float v;
  std::memcpy(&v, t.data + 4 * i, 4);
  return v;
}

}  // namespace

TEST_CASE("gguf: written files read back (metadata, reversed dimensions, aligned bytes)",
          "[io][gguf]") {
  const auto dir = test::scratch_dir("gguf_rw");
  gguf::Writer w;
  using VT = gguf::ValueType;
  w.set("general.architecture", VT::String, "gemma3");
  w.set("a.u8", VT::U8, 200);
  w.set("a.i16", VT::I16, -300);
  w.set("a.u64", VT::U64, uint64_t(1) << 40);
  w.set("a.f64", VT::F64, 0.125);
  w.set("a.bool", VT::Bool, true);
  w.set_array("a.ints", VT::I32, {-1, 2, 3});
  std::vector<std::byte> f32(3 * 5 * 4), bf16(2 * 32 * 2);
  for (std::size_t i = 0; i < f32.size(); ++i) f32[i] = std::byte(i);
  for (std::size_t i = 0; i < bf16.size(); ++i) bf16[i] = std::byte(255 - i);
  w.add("m", {3, 5}, gguf::TensorType::F32, f32);
  w.add("b", {2, 32}, gguf::TensorType::BF16, bf16);
  w.write(dir / "x.gguf");

  const gguf::File f(dir / "x.gguf");
  CHECK(f.version() == 3);
  CHECK(f.metadata()["a.u8"] == 200);
  CHECK(f.metadata()["a.i16"] == -300);
  CHECK(f.metadata()["a.u64"] == uint64_t(1) << 40);
  CHECK(f.metadata()["a.f64"] == 0.125);
  CHECK(f.metadata()["a.bool"] == true);
  CHECK(f.metadata()["a.ints"] == nlohmann::json({-1, 2, 3}));
  REQUIRE(f.tensors().size() == 2);
  const auto& m = f.tensors()[0];
  CHECK(m.shape == Shape{3, 5});
  CHECK(m.type == 0);
  CHECK(std::memcmp(m.data, f32.data(), f32.size()) == 0);
  const auto& b = *f.find("b");
  CHECK(b.shape == Shape{2, 32});
  CHECK(b.offset % 32 == 0);
  CHECK(std::memcmp(b.data, bf16.data(), bf16.size()) == 0);
  // The bytes on disk: ne innermost first ([5, 3] for the [3, 5] matrix).
  const std::string raw = Bytes().header(2, 7).s;
  std::ifstream in(dir / "x.gguf", std::ios::binary);
  std::string head(raw.size(), '\0');
  in.read(head.data(), std::streamsize(head.size()));
  CHECK(head == raw);
}

TEST_CASE("gguf: llama.cpp tensor names, both ways", "[io][gguf]") {
  CHECK(gguf::gguf_name(Module::Text, "embed_tokens.weight") == "token_embd.weight");
  CHECK(gguf::gguf_name(Module::Text, "norm.weight") == "output_norm.weight");
  CHECK(gguf::gguf_name(Module::LmHead, "lm_head.weight") == "output.weight");
  CHECK(gguf::gguf_name(Module::Text, "layers.3.pre_feedforward_layernorm.weight") ==
        "blk.3.ffn_norm.weight");
  CHECK(gguf::gguf_name(Module::Text, "layers.12.self_attn.o_proj.weight") ==
        "blk.12.attn_output.weight");
  CHECK(gguf::gguf_name(Module::Text, "layers.0.post_feedforward_layernorm.weight") ==
        "blk.0.post_ffw_norm.weight");
  CHECK(gguf::hf_name("blk.7.attn_k_norm.weight") == "model.layers.7.self_attn.k_norm.weight");
  CHECK(gguf::hf_name("blk.1.unknown.weight") == "blk.1.unknown.weight");
  CHECK_THROWS_AS(gguf::gguf_name(Module::Vision, "post_layernorm.weight"), InvalidArgument);
  // Every tensor of a config maps to a distinct GGUF name and back.
  const ModelConfig cfg = preset("1b");
  ModelWeights w;
  std::set<std::string> names;
  for_each_tensor(cfg, w, [&](Module m, const std::string& rel, TensorView&, const Shape&, Init) {
    const std::string g = gguf::gguf_name(m, rel);
    CHECK(names.insert(g).second);
    CHECK(gguf::hf_name(g) == published_name_scheme(cfg).full_name(m, rel));
  });
}

TEST_CASE("gguf: the fixtures converted to GGUF give the reference logits",
          "[io][gguf][fixtures]") {
  const auto dir = test::scratch_dir("gguf_fixtures");
  for (const auto& name : test::text_fixtures()) {
    INFO(name);
    const auto src = test::fixture(name);
    const auto ck = Checkpoint::open(src);
    const auto path = dir / (name + ".gguf");
    gguf::write_gguf(ck.config(), ck.weights(), path, gguf::TensorType::F32);

    // The file as llama.cpp writes it: norms hold 1 + w, the embedding keeps its shape.
    const gguf::File file(path);
    const auto& norm = *file.find("output_norm.weight");
    for (int64_t i = 0; i < ck.weights().text.norm.numel(); ++i)
      CHECK(f32_at(norm, std::size_t(i)) == 1.0f + ck.weights().text.norm.at<float>(i));
    CHECK(file.find("token_embd.weight")->shape == ck.weights().text.embed_tokens.shape);

    const auto gg = Checkpoint::open(path);
    const TextConfig &a = ck.config().text, &b = gg.config().text;
    CHECK(b.vocab_size == a.vocab_size);
    CHECK(b.hidden_size == a.hidden_size);
    CHECK(b.intermediate_size == a.intermediate_size);
    CHECK(b.num_key_value_heads == a.num_key_value_heads);
    CHECK(b.head_dim == a.head_dim);
    CHECK(b.layer_types == a.layer_types);
    CHECK(b.sliding_window == a.sliding_window);
    CHECK(b.rope_global.linear_factor == a.rope_global.linear_factor);
    CHECK(b.query_pre_attn_scalar == Approx(a.query_pre_attn_scalar).epsilon(1e-6));
    CHECK(b.tie_word_embeddings == a.tie_word_embeddings);

    const TextModel<float> original(ck), converted(gg);
    for (int k = 0; k < test::prompt_count(src); ++k) {
      const auto ids = test::read_ids(src / (test::prompt_prefix(k) + "input_ids.npy"));
      const Mat<float> logits = converted.forward(ids);
      const Mat<double> expected =
          read_npy(src / (test::prompt_prefix(k) + "logits.npy")).matrix<double>();
      CHECK(test::max_abs_diff(logits, expected) <= 1e-4);
      // Against the same weights from safetensors: only f32 rounding of eps, theta and 1 + w - 1.
      CHECK(test::max_abs_diff(logits, original.forward(ids)) <= 1e-5);
    }
  }
}

TEST_CASE("gguf: every key of an unusual config round-trips, bf16 and quantized files load",
          "[io][gguf]") {
  const auto dir = test::scratch_dir("gguf_types");
  ModelConfig cfg = small_config();
  cfg.text.tie_word_embeddings = false;
  synthesize_checkpoint(cfg, dir / "st", {.seed = 3, .dtype = DType::F32});
  const auto ck = Checkpoint::open(dir / "st");
  const std::vector<int32_t> ids{2, 17, 5, 90, 33, 8, 8, 61};
  const TextModel<float> model(ck);
  const Mat<float> expected = model.forward(ids);
  const double scale = expected.cwiseAbs().maxCoeff();

  // (type, tolerance relative to the largest logit): bf16 and f16 round each weight (2^-9, 2^-12
  // relative), Q8_0 by up to 1/254 of its block's largest weight, Q4_0 up to 1/8.
  for (const auto& [type, tolerance] : {std::pair{std::string("f32"), 1e-5},
                                        {"f16", 5e-3},
                                        {"bf16", 2e-2},
                                        {"q8_0", 3e-2},
                                        {"q4_0", 0.5}}) {
    INFO(type);
    const auto path = dir / (type + ".gguf");
    gguf::write_gguf(cfg, ck.weights(), path, *gguf::parse_file_type(type));
    const auto gg = Checkpoint::open(path);
    const TextConfig& t = gg.config().text;
    CHECK(t.layer_types == cfg.text.layer_types);
    CHECK(t.query_pre_attn_scalar == Approx(24).epsilon(1e-6));
    CHECK(t.rope_global.theta == 500000.0);
    CHECK(t.rope_global.linear_factor == 4.0);
    CHECK(t.sliding_window == 5);
    CHECK(t.max_position_embeddings == 4096);
    CHECK(t.num_key_value_heads == 2);
    CHECK_FALSE(t.tie_word_embeddings);
    CHECK(t.eos_token_ids == cfg.text.eos_token_ids);
    const TextModel<float> converted(gg);
    const double err = test::max_abs_diff(converted.forward(ids), expected) / scale;
    CHECK(err <= tolerance);
    if (type == "f32") {
      // Views of F32 matrices point into the mapped file: no copy at load.
      const auto& q = gg.weights().text.layers[0].q_proj;
      CHECK(q.dtype == DType::F32);
      REQUIRE(gg.gguf_file() != nullptr);
      CHECK(q.data == gg.gguf_file()->find("blk.0.attn_q.weight")->data);
    }
  }
}

TEST_CASE("robustness: malformed GGUF files give clear errors", "[robustness][gguf]") {
  const auto dir = test::scratch_dir("gguf_bad");
  auto file = [&](const Bytes& b) { return b.write(dir / "bad.gguf"); };
  const std::string bad = (dir / "bad.gguf").string();
  auto open = [](const fs::path& p) { return gguf::File(p); };

  // G1-G4: not GGUF, old or foreign versions, truncation.
  CHECK_ERROR(FormatError, open(file(Bytes().raw("GGML").zeros(20))), bad,
              "not a GGUF file (the first 4 bytes are not \"GGUF\")");
  CHECK_ERROR(
      FormatError, open(file(Bytes().header(0, 0, 1))), bad,
      "GGUF version 1 (32-bit counts) is not supported; re-save it with a current llama.cpp");
  CHECK_ERROR(FormatError, open(file(Bytes().header(0, 0, 0x03000000))), bad,
              "GGUF version 50331648 (a big-endian file?) is not supported (expected 2 or 3, "
              "little-endian)");
  CHECK_ERROR(FormatError, open(file(Bytes().raw("GGUF").u32(3).u32(0))), bad,
              "truncated: tensor count at byte 8 needs 8 bytes, the file has 4 left");
  // G5-G12: counts and lengths the file cannot hold; bad values.
  CHECK_ERROR(FormatError, open(file(Bytes().header(0, uint64_t(1) << 60))), bad,
              "metadata count 1152921504606846976 cannot fit in the file");
  CHECK_ERROR(FormatError, open(file(Bytes().header(uint64_t(1) << 40, 0))), bad,
              "tensor count 1099511627776 cannot fit in the file");
  CHECK_ERROR(FormatError, open(file(Bytes().header(0, 1).u64(1000).raw("key").zeros(10))), bad,
              "truncated: metadata key 0 at byte 32 needs 1000 bytes, the file has 13 left");
  CHECK_ERROR(FormatError, open(file(Bytes().header(0, 1).str("k").u32(13).zeros(8))), bad,
              "metadata 'k' has unknown value type 13");
  CHECK_ERROR(FormatError,
              open(file(Bytes().header(0, 1).str("k").u32(9).u32(8).u64(1000000).zeros(16))), bad,
              "metadata 'k': array of 1000000 elements does not fit in the 16 bytes left");
  CHECK_ERROR(FormatError, open(file(Bytes().header(0, 1).str("k").u32(7).raw("\x02").zeros(8))),
              bad, "metadata 'k': bool value 2");
  CHECK_ERROR(
      FormatError,
      open(file(Bytes().header(0, 2).str("k").u32(4).u32(1).str("k").u32(4).u32(2).zeros(8))), bad,
      "duplicate metadata key 'k'");
  CHECK_ERROR(FormatError,
              open(file(Bytes().header(0, 1).str("general.alignment").u32(4).u32(24).zeros(8))),
              bad, "general.alignment must be a power of two, got 24");
  // G13-G20: tensor infos.
  auto one_tensor = [&](std::vector<uint64_t> dims, uint32_t type, uint64_t offset,
                        std::size_t data) {
    return file(
        Bytes().header(1, 0).tensor("t", std::move(dims), type, offset).pad_to(32).zeros(data));
  };
  CHECK_ERROR(FormatError, open(one_tensor({1, 1, 1, 1, 1}, 0, 0, 4)), bad,
              "tensor 't' has 5 dimensions (expected 1 to 4)");
  CHECK_ERROR(FormatError, open(one_tensor({4, 0}, 0, 0, 64)), bad,
              "tensor 't' has a zero or overflowing dimension");
  CHECK_ERROR(FormatError, open(one_tensor({uint64_t(1) << 32, uint64_t(1) << 32}, 0, 0, 64)), bad,
              "tensor 't' has a zero or overflowing dimension");
  CHECK_ERROR(FormatError, open(one_tensor({4, 256}, 16, 0, 1024)), bad,
              "tensor 't' is stored as IQ2_XXS, which this loader does not read (supported: F32, "
              "F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K; llama.cpp's "
              "llama-quantize writes these with Q8_0, Q4_0, Q4_K_M, Q5_K_M or Q6_K)");
  CHECK_ERROR(FormatError, open(one_tensor({2, 20}, 8, 0, 128)), bad,
              "tensor 't': rows of 20 elements are not whole Q8_0 blocks of 32");
  CHECK_ERROR(FormatError, open(one_tensor({4}, 0, 16, 64)), bad,
              "tensor 't' offset 16 is not a multiple of the 32-byte alignment");
  CHECK_ERROR(FormatError, open(one_tensor({4, 8}, 0, 0, 64)), bad,
              "tensor 't' data [0, +128) lies outside the 64-byte data section");
  CHECK_ERROR(FormatError,
              open(file(Bytes()
                            .header(2, 0)
                            .tensor("a", {16}, 0, 0)
                            .tensor("b", {8}, 0, 32)
                            .pad_to(32)
                            .zeros(96))),
              bad, "data of tensors 'a' and 'b' overlap");
  CHECK_ERROR(FormatError,
              open(file(Bytes()
                            .header(2, 0)
                            .tensor("a", {8}, 0, 0)
                            .tensor("a", {8}, 0, 32)
                            .pad_to(32)
                            .zeros(64))),
              bad, "duplicate tensor 'a'");

  // G21-G28: a well-formed file that is not a Gemma 3 text model, or disagrees with itself.
  const ModelConfig cfg = small_config();
  synthesize_checkpoint(cfg, dir / "st", {.seed = 1, .dtype = DType::F32});
  const auto good = dir / "good.gguf";
  gguf::write_gguf(cfg, Checkpoint::open(dir / "st").weights(), good, gguf::TensorType::F32);
  REQUIRE_NOTHROW(Checkpoint::open(good));
  const auto edited = dir / "edited.gguf";
  const std::string where = edited.string();
  auto with = [&](const std::function<void(Rewrite&)>& edit) {
    return rewrite(good, edited, edit);
  };
  CHECK_ERROR(
      ConfigError,
      Checkpoint::open(with([](Rewrite& r) { r.metadata["general.architecture"] = "llama"; })),
      "general.architecture", "is 'llama', expected 'gemma3' (in " + where + ")");
  CHECK_ERROR(
      ConfigError,
      Checkpoint::open(with([](Rewrite& r) { r.metadata["general.architecture"] = "clip"; })),
      "general.architecture",
      "is 'clip', expected 'gemma3' (this is a vision projector, mmproj, file; open the text "
      "model's GGUF) (in " +
          where + ")");
  CHECK_ERROR(ConfigError,
              Checkpoint::open(with([](Rewrite& r) { r.metadata.erase("gemma3.block_count"); })),
              "gemma3.block_count", "missing from the GGUF metadata of " + where);
  CHECK_ERROR(ConfigError,
              Checkpoint::open(with([](Rewrite& r) { r.metadata["gemma3.block_count"] = "four"; })),
              "gemma3.block_count", "expected an integer, got \"four\" (in " + where + ")");
  CHECK_ERROR(
      ConfigError,
      Checkpoint::open(with([](Rewrite& r) { r.metadata["gemma3.rope.scaling.type"] = "yarn"; })),
      "gemma3.rope.scaling.type", "'yarn' is not Gemma 3's (expected linear or none)");
  CHECK_ERROR(
      ConfigError,
      Checkpoint::open(with([](Rewrite& r) { r.metadata["gemma3.attention.head_count_kv"] = 3; })),
      "num_key_value_heads", "must divide num_attention_heads (4), got 3");
  CHECK_ERROR(TensorError, Checkpoint::open(with([](Rewrite& r) {
                std::erase_if(r.tensors,
                              [](const auto& t) { return t.name == "blk.1.ffn_up.weight"; });
              })),
              "blk.1.ffn_up.weight", "missing from " + where + " (expected shape [128, 64])");
  CHECK_ERROR(TensorError, Checkpoint::open(with([](Rewrite& r) {
                for (auto& t : r.tensors)
                  if (t.name == "blk.2.attn_k.weight") t.shape = {32, 128};
              })),
              "blk.2.attn_k.weight", "expected shape [64, 64], found [32, 128] (in " + where + ")");
  CHECK_ERROR(TensorError, Checkpoint::open(with([](Rewrite& r) {
                auto extra = r.tensors.back();
                extra.name = "blk.0.attn_extra.weight";
                r.tensors.push_back(extra);
              })),
              "blk.0.attn_extra.weight",
              "unexpected tensor in " + where + " for a gemma3_text config (name scheme: " +
                  published_name_scheme(cfg).label + ")");
}

TEST_CASE("gguf: arrays of any length are read from the mapping, typed and checked", "[io][gguf]") {
  const auto dir = test::scratch_dir("gguf_arrays");
  using VT = gguf::ValueType;
  const uint64_t n = gguf::kMaxKeptArray + 1000;  // long: not kept in metadata()
  nlohmann::json words = nlohmann::json::array(), scores = nlohmann::json::array(),
                 types = nlohmann::json::array();
  for (uint64_t i = 0; i < n; ++i) {
    std::string word = "w";  // (appended: GCC 12 warns falsely, -Wrestrict, on "w" + to_string)
    words.push_back(word += std::to_string(i));
    scores.push_back(-0.5 * double(i));
    types.push_back(int32_t(i % 7) - 3);
  }
  gguf::Writer w;
  w.set("a.u32", VT::U32, 7);
  w.set_array("a.words", VT::String, words);
  w.set_array("a.scores", VT::F32, scores);
  w.set_array("a.types", VT::I32, types);
  w.set_array("a.short", VT::String, {"x", "", "z"});
  const auto path = dir / "a.gguf";
  w.write(path);
  const gguf::File f(path);
  CHECK(f.keys() == std::vector<std::string>{"a.u32", "a.words", "a.scores", "a.types", "a.short"});
  CHECK_FALSE(f.metadata().contains("a.words"));
  CHECK(f.long_arrays().at("a.words") == std::pair{VT::String, n});
  CHECK(f.type_of("a.words") == VT::Array);
  CHECK(f.type_of("a.u32") == VT::U32);
  CHECK_FALSE(f.type_of("a.none").has_value());
  CHECK(f.array_info("a.scores") == std::pair{VT::F32, n});
  CHECK_FALSE(f.array_info("a.u32").has_value());
  CHECK(f.string_array("a.words") == words.get<std::vector<std::string>>());
  CHECK(f.f32_array("a.scores") == scores.get<std::vector<float>>());
  CHECK(f.i32_array("a.types") == types.get<std::vector<int32_t>>());
  // Short arrays too, the same way.
  CHECK(f.string_array("a.short") == std::vector<std::string>{"x", "", "z"});

  const std::string where = path.string();
  CHECK_ERROR(FormatError, f.string_array("a.none"), where, "has no metadata 'a.none'");
  CHECK_ERROR(FormatError, f.i32_array("a.u32"), where,
              "metadata 'a.u32' is a UINT32, not an array");
  CHECK_ERROR(FormatError, f.f32_array("a.types"), where,
              "metadata 'a.types' is an array of INT32, expected FLOAT32");
  CHECK_ERROR(FormatError, f.string_array("a.scores"), where,
              "metadata 'a.scores' is an array of FLOAT32, expected STRING");
}

namespace {

// The tokenizer.model scripts/get_tokenizer.sh built, and the HF tokenizer_config.json it keeps
// beside it.
spm::ModelProto tokenizer_proto() {
  return spm::parse_model_proto(read_file(GEMMA3_TOKENIZER_MODEL), GEMMA3_TOKENIZER_MODEL);
}
nlohmann::json tokenizer_config() {
  const auto path = fs::path(GEMMA3_TOKENIZER_MODEL).parent_path() / "tokenizer_config.json";
  INFO("scripts/get_tokenizer.sh keeps tokenizer_config.json beside tokenizer.model: " << path);
  REQUIRE(fs::exists(path));
  return nlohmann::json::parse(read_file(path));
}

// True if `key` has the same type and value in both files (arrays element by element).
bool same_value(const gguf::File& a, const gguf::File& b, const std::string& key) {
  using VT = gguf::ValueType;
  if (a.type_of(key) != b.type_of(key)) return false;
  if (a.type_of(key) != VT::Array) return a.metadata().at(key) == b.metadata().at(key);
  const auto info = a.array_info(key);
  if (info != b.array_info(key)) return false;
  switch (info->first) {
    case VT::String:
      return a.string_array(key) == b.string_array(key);
    case VT::F32:
      return a.f32_array(key) == b.f32_array(key);
    case VT::I32:
      return a.i32_array(key) == b.i32_array(key);
    default:
      return a.metadata().at(key) == b.metadata().at(key);  // short arrays of other types
  }
}

}  // namespace

TEST_CASE("gguf: convert writes the metadata llama.cpp's converter writes (text-tiny-a)",
          "[io][gguf]") {
  // The oracle: llama.cpp's convert_hf_to_gguf.py --outtype f32 on the same checkpoint, with the
  // real tokenizer.model and tokenizer_config.json beside it (tests/data/gguf/README.md).
  const gguf::File reference(test::data_dir() / "gguf" / "text-tiny-a.llamacpp-f32.gguf");
  const auto dir = test::scratch_dir("gguf_llamacpp_keys");
  const auto ck = Checkpoint::open(test::fixture("text-tiny-a"));
  const auto path = dir / "text-tiny-a.gguf";
  // llama.cpp derives general.name from the directory name, which was text-tiny-a.hfdir.
  gguf::write_gguf(ck.config(), ck.weights(), path, gguf::TensorType::F32, {},
                   {.name = "Text Tiny A Hfdir",
                    .tokenizer = tokenizer_proto(),
                    .tokenizer_config = tokenizer_config()});
  const gguf::File ours(path);

  // Keys we write that this reference lacks. llama.cpp's SpecialVocab takes the eos and unk ids
  // from tokenizer.json (absent from that directory) or config.json, whose eos_token_id is a list
  // ([1, 106]), which it skips; its 270M file, made from a full HF directory, has eos and unknown
  // ids. We write config.json's two end ids as eos (<eos>) and eot (<end_of_turn>), both of which
  // llama.cpp counts as the end of generation, and SentencePiece's unknown piece.
  const std::set<std::string> ours_only{"tokenizer.ggml.eos_token_id",
                                        "tokenizer.ggml.eot_token_id",
                                        "tokenizer.ggml.unknown_token_id"};
  for (const auto& key : reference.keys()) {
    INFO(key);
    CHECK(same_value(reference, ours, key));
  }
  for (const auto& key : ours.keys()) {
    INFO(key);
    CHECK((reference.type_of(key).has_value() || ours_only.count(key)));
  }
  // The keys in llama.cpp's order (ours interleave the three above).
  std::vector<std::string> order = ours.keys();
  std::erase_if(order, [&](const std::string& k) { return ours_only.count(k) > 0; });
  CHECK(order == reference.keys());

  // Read back: the same config, and the first 512 pieces of tokenizer.model.
  const auto back = Checkpoint::open(path);
  CHECK(back.config().text.eos_token_ids == ck.config().text.eos_token_ids);
  CHECK(back.config().text.layer_types == ck.config().text.layer_types);
  const auto pieces = gguf::sentencepiece_model(ours).pieces;
  auto expected = tokenizer_proto().pieces;
  expected.resize(512);
  CHECK(pieces == expected);
}

TEST_CASE("gguf: a converted model carries its tokenizer, with the ids of tokenizer.model",
          "[io][gguf][tokenizer]") {
  // The tiny preset has the real 262144-piece vocabulary. Converted as `gemma3 convert` converts a
  // synthesised checkpoint: a tokenizer.model and no tokenizer_config.json.
  const auto dir = test::scratch_dir("gguf_one_file");
  const ModelConfig cfg = preset("tiny");
  synthesize_checkpoint(cfg, dir / "st", {.seed = 4, .dtype = DType::BF16});
  const auto path = dir / "tiny.gguf";
  gguf::write_gguf(cfg, Checkpoint::open(dir / "st").weights(), path, gguf::TensorType::Q8_0, {},
                   {.tokenizer = tokenizer_proto()});
  const gguf::File f(path);
  CHECK(f.metadata()["general.file_type"] == 7);  // llama.cpp's MOSTLY_Q8_0
  CHECK(f.metadata()["general.size_label"] == "17M");
  CHECK(f.metadata()["tokenizer.ggml.add_bos_token"] == true);
  const auto m = gguf::sentencepiece_model(f);
  const auto original = tokenizer_proto();
  CHECK(m.pieces == original.pieces);
  CHECK(m.trainer_spec == original.trainer_spec);
  CHECK(m.normalizer_spec == original.normalizer_spec);

  const Tokenizer expected(GEMMA3_TOKENIZER_MODEL);
  const Tokenizer tok = load_tokenizer(path);
  CHECK(tok.path() == path.string());
  REQUIRE(tok.vocab_size() == expected.vocab_size());
  std::ifstream in(test::data_dir() / "tokenizer" / "gemma3_tokenizer_reference.jsonl");
  int strings = 0, same = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const std::string text = nlohmann::json::parse(line)["text"];
    ++strings;
    same +=
        tok.encode(text) == expected.encode(text) &&
        tok.encode(text, {.parse_special = true}) == expected.encode(text, {.parse_special = true});
  }
  CHECK(strings == 3460);
  CHECK(same == strings);
}

TEST_CASE("gguf: the vocabulary we write is llama.cpp's, for all 262144 pieces", "[io][gguf]") {
  // The oracle: the tokens, scores and token types llama.cpp's converter wrote for the full
  // tokenizer.model with tokenizer_config.json (tests/data/gguf/README.md).
  const gguf::File reference(test::data_dir() / "gguf" / "gemma3-270m-metadata.llamacpp.gguf");
  const auto v = gguf::llama_cpp_vocab(tokenizer_proto(), tokenizer_config(), 262144);
  CHECK(v.tokens == reference.string_array("tokenizer.ggml.tokens"));
  CHECK(v.scores == reference.f32_array("tokenizer.ggml.scores"));
  CHECK(v.token_types == reference.i32_array("tokenizer.ggml.token_type"));
  // Past the tokenizer the converter fills in [PAD<id>] tokens, and the tokenizer_config.json's
  // <image_soft_token> (262144) where the model's vocabulary reaches it (4B and up: 262208).
  const auto wide = gguf::llama_cpp_vocab(tokenizer_proto(), tokenizer_config(), 262208);
  CHECK(wide.tokens[262144] == "<image_soft_token>");
  CHECK(wide.token_types[262144] == 3);
  CHECK(wide.tokens[262207] == "[PAD262207]");
  CHECK(wide.token_types[262207] == 5);
  CHECK(wide.scores[262207] == -10000.0f);
}

TEST_CASE("robustness: malformed GGUF tokenizer metadata gives clear errors",
          "[robustness][gguf][tokenizer]") {
  const auto dir = test::scratch_dir("gguf_bad_tokenizer");
  const auto path = dir / "t.gguf";
  const std::string where = path.string();
  using VT = gguf::ValueType;
  // A file with a 4-token vocabulary, edited by `edit` before it is written.
  auto file = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json md = {{"tokenizer.ggml.model", "llama"},
                         {"tokenizer.ggml.tokens", {"<unk>", "<bos>", "a", "b"}},
                         {"tokenizer.ggml.scores", {0.0, 0.0, -1.0, -2.0}},
                         {"tokenizer.ggml.token_type", {2, 3, 1, 1}},
                         {"tokenizer.ggml.bos_token_id", 1}};
    edit(md);
    gguf::Writer w;
    for (const auto& [k, v] : md.items()) {
      if (k == "tokenizer.ggml.tokens")
        w.set_array(k, VT::String, v);
      else if (k == "tokenizer.ggml.scores")
        w.set_array(k, VT::F32, v);
      else if (k == "tokenizer.ggml.token_type")
        w.set_array(k, VT::I32, v);
      else
        w.set(k, v.is_string() ? VT::String : VT::U32, v);
    }
    w.write(path);
    return gguf::File(path);
  };
  auto model = [&](const std::function<void(nlohmann::json&)>& edit) {
    return gguf::sentencepiece_model(file(edit));
  };
  const auto m = model([](nlohmann::json&) {});
  REQUIRE(m.pieces.size() == 4);
  CHECK(m.pieces[0].type == spm::PieceType::Unknown);
  CHECK(m.trainer_spec.bos_id == 1);

  CHECK_ERROR(FormatError, model([](auto& md) { md.erase("tokenizer.ggml.model"); }), where,
              "has no tokenizer (no tokenizer.ggml.model metadata); give a tokenizer.model");
  CHECK_ERROR(
      FormatError, model([](auto& md) { md["tokenizer.ggml.model"] = "gpt2"; }), where,
      "tokenizer.ggml.model is \"gpt2\"; only \"llama\" (SentencePiece) tokenizers are read");
  CHECK_ERROR(FormatError, model([](auto& md) { md.erase("tokenizer.ggml.scores"); }), where,
              "has no metadata 'tokenizer.ggml.scores'");
  CHECK_ERROR(FormatError, model([](auto& md) { md["tokenizer.ggml.scores"].push_back(1.0); }),
              where,
              "tokenizer.ggml.tokens has 4 entries but tokenizer.ggml.scores 5 and "
              "tokenizer.ggml.token_type 4");
  CHECK_ERROR(FormatError, model([](auto& md) { md["tokenizer.ggml.token_type"][2] = 9; }), where,
              "tokenizer.ggml.token_type[2] is 9, not a token type (1 NORMAL ... 6 BYTE)");
  CHECK_ERROR(FormatError, model([](auto& md) { md["tokenizer.ggml.bos_token_id"] = 4; }), where,
              "tokenizer.ggml.bos_token_id is 4, not one of the 4 token ids");
  CHECK_ERROR(FormatError, model([](auto& md) {
                md["tokenizer.ggml.tokens"][0] = "x";
                md["tokenizer.ggml.token_type"][0] = 1;
              }),
              where,
              "has no unknown token (no tokenizer.ggml.unknown_token_id, no token of type "
              "UNKNOWN, no '<unk>'), which a SentencePiece model needs");
  // A well-formed file that is not a Gemma 3 tokenizer: refused by name, naming the file.
  CHECK_ERROR(FormatError, tokenizer_from_gguf(file([](nlohmann::json&) {})), where,
              "has no '<pad>' piece: not a Gemma 3 tokenizer");
}
