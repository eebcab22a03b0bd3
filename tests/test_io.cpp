// Checkpoint I/O: safetensors (round trip, sharding, malformed headers), .npy, name mapping,
// synthesis.
#include <catch2/catch.hpp>

#include <fstream>
#include <tuple>

#include <gemma3/checkpoint.hpp>
#include <gemma3/io/gguf_gemma3.hpp>
#include <gemma3/io/npy.hpp>
#include <gemma3/io/safetensors.hpp>
#include <gemma3/synth.hpp>
#include <gemma3/text/model.hpp>

#include "test_helpers.hpp"

using namespace gemma3;

namespace {
// Writes a safetensors file from a raw header string and `data_bytes` zero bytes.
std::filesystem::path raw_safetensors(const std::filesystem::path& dir, const std::string& name,
                                      const std::string& header, std::size_t data_bytes,
                                      std::optional<uint64_t> declared_length = {}) {
  const auto path = dir / name;
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = declared_length.value_or(header.size());
  for (int i = 0; i < 8; ++i) out.put(char(n >> (8 * i)));
  out << header << std::string(data_bytes, '\0');
  return path;
}
}  // namespace

TEST_CASE("safetensors: written tensors read back bit-exactly", "[io][safetensors]") {
  const auto dir = test::scratch_dir("st_roundtrip");
  SafetensorsWriter w;
  std::vector<float> f32{1.5f, -2.25f, 3.0f, 0.0f, 1e-8f, 7.0f};
  std::vector<std::byte> f32_bytes(f32.size() * 4);
  std::memcpy(f32_bytes.data(), f32.data(), f32_bytes.size());
  w.add("b.f32", DType::F32, {2, 3}, f32_bytes);
  std::vector<std::byte> bf16_bytes(8);
  for (int i = 0; i < 4; ++i) {
    const uint16_t b = float_to_bf16(float(i) * 0.5f - 1.0f);
    std::memcpy(bf16_bytes.data() + 2 * i, &b, 2);
  }
  w.add("a.bf16", DType::BF16, {4}, bf16_bytes);
  w.write(dir / "x.safetensors");

  SafetensorsFile f(dir / "x.safetensors");
  REQUIRE(f.tensors().size() == 2);
  CHECK(f.metadata().at("format") == "pt");
  const auto& t = f.at("b.f32");
  CHECK(t.dtype == DType::F32);
  CHECK(t.shape == Shape{2, 3});
  CHECK(std::memcmp(t.data, f32.data(), 24) == 0);
  CHECK(t.as<float>()(1, 1) == 1e-8f);
  const auto& b = f.at("a.bf16");
  CHECK(b.vec<float>()[3] == 0.5f);
  // Sorted by name, so a.bf16's data comes first.
  CHECK(b.data < t.data);
}

TEST_CASE("tensor views: rows, columns and bytes of every rank, empty ones included", "[io]") {
  const auto view = [](Shape shape, DType dtype = DType::F32) {
    return TensorView{.name = "t", .dtype = dtype, .shape = std::move(shape)};
  };
  // (a scalar, a vector, a matrix, a 4-D tensor, and tensors with a zero dimension)
  for (const auto& [shape, rows, cols] : {std::tuple{Shape{}, 1, 1},
                                          {Shape{5}, 1, 5},
                                          {Shape{3, 4}, 3, 4},
                                          {Shape{2, 3, 4, 5}, 2, 60},
                                          {Shape{0, 4}, 0, 4},
                                          {Shape{4, 0}, 4, 0},
                                          {Shape{0}, 1, 0}}) {
    const TensorView t = view(shape);
    INFO(t.numel());
    CHECK(t.rows() == rows);
    CHECK(t.cols() == cols);
    CHECK(t.nbytes() == std::size_t(rows * cols * 4));
  }
  CHECK(view({3, 64}, DType::Q8_0).nbytes() == 3 * 2 * 34);  // blocks of 32 in 34 bytes
}

TEST_CASE("safetensors: each malformed header gives its clear error", "[io][safetensors]") {
  const auto dir = test::scratch_dir("st_malformed");
  struct Row {
    const char* what;
    std::string header;
    std::size_t data_bytes;
    std::optional<uint64_t> declared;
    const char* message;
  };
  const std::string ok_entry = R"("t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})";
  const std::vector<Row> rows{
      {"header length past EOF", "{" + ok_entry + "}", 8, 1000, "runs past the end"},
      {"absurd header length", "{}", 0, uint64_t(1) << 40, "exceeds"},
      {"bad JSON", "{\"t\": {", 0, {}, "invalid JSON"},
      {"not an object", "[1, 2]", 0, {}, "not a JSON object"},
      {"unknown dtype",
       R"({"t": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}})",
       8,
       {},
       "unsupported dtype"},
      {"missing dtype", R"({"t": {"shape": [2], "data_offsets": [0, 8]}})", 8, {}, "dtype"},
      {"negative dim",
       R"({"t": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})",
       8,
       {},
       "negative"},
      {"offsets reversed",
       R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})",
       8,
       {},
       "begin > end"},
      {"range out of file",
       R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
       4,
       {},
       "outside"},
      {"shape/byte mismatch",
       R"({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})",
       8,
       {},
       "needs 12 bytes"},
      {"overlap",
       R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "u": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
       12,
       {},
       "overlap"},
      {"duplicate names",
       "{" + ok_entry + ", " + ok_entry + "}",
       8,
       {},
       "duplicate tensor name 't'"},
      {"bad offsets",
       R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})",
       8,
       {},
       "data_offsets"},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    const auto path =
        raw_safetensors(dir, "bad.safetensors", row.header, row.data_bytes, row.declared);
    CHECK_THROWS_WITH(SafetensorsFile(path),
                      Catch::Contains(row.message) && Catch::Contains(path.string()));
  }
  {
    std::ofstream(dir / "short.safetensors", std::ios::binary) << "abc";
    CHECK_THROWS_WITH(SafetensorsFile(dir / "short.safetensors"), Catch::Contains("truncated"));
  }
  CHECK_THROWS_AS(SafetensorsFile(dir / "missing.safetensors"), IoError);
  CHECK_THROWS_AS(TensorStore::open(dir / "nowhere"), IoError);
}

TEST_CASE("synthesised checkpoints load back bit-exactly, single and sharded", "[io][synth]") {
  ModelConfig cfg = preset("tiny");
  cfg.text.vocab_size = 300;  // keep the test small
  for (const std::size_t shard : {std::size_t(4) << 30, std::size_t(40000)}) {
    INFO("max shard bytes " << shard);
    const auto dir = test::scratch_dir("synth");
    const std::size_t total = synthesize_checkpoint(
        cfg, dir, {.seed = 7, .dtype = DType::BF16, .max_shard_bytes = shard});
    const bool sharded = shard < total;
    CHECK(std::filesystem::exists(dir / TensorStore::kIndexFile) == sharded);
    const auto ck = Checkpoint::open(dir);
    CHECK(ck.config() == cfg);
    CHECK((ck.store().files().size() > 1) == sharded);
    std::size_t bytes = 0;
    for (const auto& [name, view] : ck.store().tensors()) {
      bytes += view.nbytes();
      const auto expected = synthesize_tensor(7, name, view.shape, Init::Linear, DType::BF16);
      (void)expected;
    }
    CHECK(bytes == total);
    // Bit-exact: the embedding equals a freshly synthesised copy.
    const auto& e = ck.weights().text.embed_tokens;
    const auto again =
        synthesize_tensor(7, "model.embed_tokens.weight", e.shape, Init::Embedding, DType::BF16);
    CHECK(std::memcmp(e.data, again.data(), again.size()) == 0);
    CHECK(ck.weights().text.lm_head.data == e.data);  // tied
  }
}

TEST_CASE("weights read into 2 MiB pages equal the mapped ones, safetensors (sharded) and GGUF",
          "[io][residency]") {
  ModelConfig cfg = preset("tiny");
  cfg.text.vocab_size = 300;
  const auto dir = test::scratch_dir("residency");
  synthesize_checkpoint(cfg, dir, {.seed = 3, .dtype = DType::BF16, .max_shard_bytes = 40000});
  const auto gguf_path = dir / "model.gguf";
  gguf::write_gguf(cfg, Checkpoint::open(dir).weights(), gguf_path, gguf::TensorType::BF16);
  for (const auto& path : {dir, gguf_path}) {
    INFO(path);
    const auto mapped = Checkpoint::open(path);
    const auto copied = Checkpoint::open(path, Residency::HugePages);
    REQUIRE(copied.store().tensors().size() == mapped.store().tensors().size());
    for (const auto& [name, view] : mapped.store().tensors()) {
      INFO(name);
      const TensorView& other = copied.store().at(name);
      CHECK(other.data != view.data);  // a copy, not the mapping
      REQUIRE(other.nbytes() == view.nbytes());
      CHECK(std::memcmp(other.data, view.data, view.nbytes()) == 0);
    }
    const std::vector<int32_t> ids = {2, 17, 45, 99, 250};
    const TextModel<float> a(mapped), b(copied);
    CHECK(test::max_abs_diff(a.forward(ids), b.forward(ids)) == 0.0);
  }
  // The memory itself: 2 MiB aligned, whole pages, written by the reader.
  const MappedFile file(gguf_path, Residency::HugePages);
  CHECK(file.residency() == Residency::HugePages);
  CHECK(reinterpret_cast<std::uintptr_t>(file.data()) % HugePageMemory::kPage == 0);
  CHECK(file.size() == std::filesystem::file_size(gguf_path));
  CHECK(std::memcmp(file.data(), "GGUF", 4) == 0);
  CHECK(MappedFile(gguf_path).residency() == Residency::Mapped);
}

TEST_CASE("sharded checkpoints: an index that disagrees with its shards is refused",
          "[io][safetensors]") {
  ModelConfig cfg = preset("tiny");
  cfg.text.vocab_size = 300;
  const auto dir = test::scratch_dir("shard_bad");
  synthesize_checkpoint(cfg, dir, {.seed = 1, .max_shard_bytes = 40000});
  auto index = nlohmann::json::parse(std::ifstream(dir / TensorStore::kIndexFile));
  auto& map = index["weight_map"];
  SECTION("a listed tensor is missing") {
    map["model.extra.weight"] = map["model.norm.weight"];
    std::ofstream(dir / TensorStore::kIndexFile) << index.dump();
    CHECK_THROWS_WITH(TensorStore::open(dir),
                      Catch::Contains("model.extra.weight") && Catch::Contains("missing"));
  }
  SECTION("a stored tensor is not listed") {
    map.erase("model.norm.weight");
    std::ofstream(dir / TensorStore::kIndexFile) << index.dump();
    CHECK_THROWS_WITH(TensorStore::open(dir), Catch::Contains("not listed"));
  }
  SECTION("a shard path leaves the directory") {
    map["model.norm.weight"] = "../model.safetensors";
    std::ofstream(dir / TensorStore::kIndexFile) << index.dump();
    CHECK_THROWS_WITH(TensorStore::open(dir), Catch::Contains("not a file name"));
  }
}

TEST_CASE("name mapping: text-only and multimodal fixture checkpoints bind every tensor",
          "[io][names]") {
  const auto text = Checkpoint::open(test::fixture("text-tiny-a"));
  CHECK(std::string(text.name_scheme().label).find("text-only") != std::string::npos);
  CHECK(text.weights().text.layers.size() == 6);
  CHECK(text.weights().text.layers[3].q_proj.name == "model.layers.3.self_attn.q_proj.weight");
  CHECK(text.weights().text.layers[3].q_proj.shape == Shape{4 * 32, 64});
  CHECK(!text.weights().vision);

  const auto mm = Checkpoint::open(test::fixture("mm-tiny-a"));
  CHECK(mm.name_scheme().text == "language_model.model.");
  REQUIRE(mm.weights().vision);
  CHECK(mm.weights().vision->layers.size() == 2);
  CHECK(mm.weights().vision->mm_input_projection.name ==
        "multi_modal_projector.mm_input_projection_weight");
  CHECK(mm.weights().vision->mm_input_projection.shape == Shape{32, 64});
  CHECK(mm.weights().text.embed_tokens.shape == Shape{576, 64});
  std::size_t bound = 0;
  ModelWeights w = mm.weights();
  for_each_tensor(mm.config(), w,
                  [&](Module, const std::string&, TensorView&, const Shape&, Init) { ++bound; });
  CHECK(bound == mm.store().tensors().size());
}

TEST_CASE("name mapping: newer module paths, missing, unexpected and mis-shaped tensors",
          "[io][names]") {
  const auto src = SafetensorsFile(test::fixture("mm-tiny-a") / "model.safetensors");
  auto rewrite = [&](const std::string& case_name, auto&& edit) {
    const auto dir = test::scratch_dir(case_name);
    std::filesystem::copy_file(test::fixture("mm-tiny-a") / "config.json", dir / "config.json");
    SafetensorsWriter w;
    for (const auto& [name, v] : src.tensors()) {
      std::string n = name;
      Shape shape = v.shape;
      std::vector<std::byte> bytes(v.data, v.data + v.nbytes());
      if (!edit(n, shape, bytes)) continue;
      w.add(n, v.dtype, shape, bytes);
    }
    w.write(dir / "model.safetensors");
    return dir;
  };
  SECTION("model.language_model.* names load") {
    const auto dir = rewrite("names_new", [](std::string& n, Shape&, auto&) {
      for (const auto& [from, to] :
           {std::pair{"language_model.model.", "model.language_model."},
            std::pair{"vision_tower.", "model.vision_tower."},
            std::pair{"multi_modal_projector.", "model.multi_modal_projector."}})
        if (n.rfind(from, 0) == 0) n = to + n.substr(std::strlen(from));
      return true;
    });
    const auto ck = Checkpoint::open(dir);
    CHECK(ck.name_scheme().text == "model.language_model.");
    CHECK(ck.weights().vision->post_layernorm_bias.name ==
          "model.vision_tower.vision_model.post_layernorm.bias");
  }
  SECTION("a missing tensor") {
    const auto dir = rewrite("names_missing", [](std::string& n, Shape&, auto&) {
      return n != "language_model.model.layers.2.mlp.up_proj.weight";
    });
    CHECK_THROWS_WITH(Checkpoint::open(dir),
                      Catch::Contains("language_model.model.layers.2.mlp.up_proj.weight") &&
                          Catch::Contains("missing") && Catch::Contains("[256, 64]"));
  }
  SECTION("an unexpected tensor") {
    const auto dir = rewrite("names_unexpected", [](std::string& n, Shape&, auto&) {
      if (n == "language_model.model.norm.weight") n = "language_model.model.norm.scale";
      return true;
    });
    CHECK_THROWS_AS(Checkpoint::open(dir), TensorError);
  }
  SECTION("a mis-shaped tensor") {
    const auto dir = rewrite("names_shape", [](std::string& n, Shape& s, auto&) {
      if (n == "language_model.model.layers.0.self_attn.k_proj.weight") s = {32, 128};
      return true;
    });
    CHECK_THROWS_WITH(Checkpoint::open(dir), Catch::Contains("k_proj") &&
                                                 Catch::Contains("expected shape [64, 64]") &&
                                                 Catch::Contains("found [32, 128]"));
  }
}

TEST_CASE("npy: round trip of every element type, and the fixtures' files", "[io][npy]") {
  const auto dir = test::scratch_dir("npy");
  const std::vector<double> d{1.0, -2.5, 3.25, 4.0, 5.5, 6.0};
  write_npy(dir / "d.npy", {2, 3}, d.data());
  const auto a = read_npy(dir / "d.npy");
  CHECK(a.shape == Shape{2, 3});
  CHECK(a.values<double>() == d);
  const std::vector<int64_t> i64{7, -8, 9};
  write_npy(dir / "i.npy", {3}, i64.data());
  CHECK(read_npy(dir / "i.npy").values<int64_t>() == i64);
  const std::vector<uint8_t> u8{1, 0, 1, 1};
  write_npy(dir / "u.npy", {2, 2}, u8.data());
  CHECK(read_npy(dir / "u.npy").values<uint8_t>() == u8);

  const auto ids = read_npy(test::fixture("text-tiny-a") / "p1_input_ids.npy");
  CHECK(ids.descr == "<i4");
  CHECK(ids.values<int32_t>() == std::vector<int32_t>{2, 69, 66, 399, 251, 296});
  const auto layers = read_npy(test::fixture("text-tiny-a") / "p1_layers.npy");
  CHECK(layers.shape == Shape{6, 6, 64});

  std::ofstream(dir / "bad.npy", std::ios::binary) << "not numpy at all";
  CHECK_THROWS_WITH(read_npy(dir / "bad.npy"), Catch::Contains("bad magic"));
  std::string truncated = "\x93NUMPY\x01";
  truncated += '\0';
  truncated += "\x46";
  truncated += '\0';
  truncated += "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), }";
  truncated.append(70 - truncated.size() + 10, ' ');
  std::ofstream(dir / "short.npy", std::ios::binary) << truncated << "abcd";
  CHECK_THROWS_AS(read_npy(dir / "short.npy"), FormatError);
}
