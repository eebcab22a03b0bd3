// config.json parsing: presets, published defaults, the fixture configs, and bad values.
#include <catch2/catch.hpp>

#include <gemma3/config.hpp>

#include "test_helpers.hpp"

using namespace gemma3;

TEST_CASE("every preset survives config.json write and parse unchanged", "[config]") {
  for (const auto& name : preset_names()) {
    INFO(name);
    const ModelConfig c = preset(name);
    CHECK(parse_config(config_to_json(c)) == c);
  }
}

TEST_CASE("presets carry the published values (docs/model.md, Sizes)", "[config]") {
  const auto p270 = preset("270m").text, p1b = preset("1b").text, p4b = preset("4b").text,
             p27b = preset("27b").text;
  CHECK(p270.hidden_size == 640);
  CHECK(p270.sliding_window == 512);
  CHECK(p1b.num_hidden_layers == 26);
  CHECK(p1b.vocab_size == 262144);
  CHECK(p4b.vocab_size == 262208);
  CHECK(p4b.rope_global.linear_factor == 8.0);
  CHECK(p4b.rope_local.linear_factor == 1.0);
  CHECK(p1b.rope_global.linear_factor == 1.0);
  CHECK(p27b.query_pre_attn_scalar == 168);
  CHECK(p27b.head_dim == 128);
  std::vector<int64_t> globals;
  for (int64_t i = 0; i < p1b.num_hidden_layers; ++i)
    if (layer_kind(p1b, i) == LayerKind::Global) globals.push_back(i);
  CHECK(globals == std::vector<int64_t>{5, 11, 17, 23});
  CHECK(preset("12b").vision->num_patches() == 4096);
  CHECK_THROWS_WITH(preset("2b"), Catch::Contains("unknown preset '2b'"));
}

TEST_CASE("fixture configs parse to the configs transformers resolved", "[config]") {
  for (const std::string name : {"text-tiny-a", "text-tiny-b", "mm-tiny-a"}) {
    INFO(name);
    const ModelConfig c = load_config(test::fixture(name) / "config.json");
    const auto m = test::manifest(name);
    const auto& r = m["resolved_text_config"];
    CHECK(c.text.vocab_size == r["vocab_size"].get<int64_t>());
    CHECK(c.text.hidden_size == r["hidden_size"].get<int64_t>());
    CHECK(c.text.intermediate_size == r["intermediate_size"].get<int64_t>());
    CHECK(c.text.num_hidden_layers == r["num_hidden_layers"].get<int64_t>());
    CHECK(c.text.num_attention_heads == r["num_attention_heads"].get<int64_t>());
    CHECK(c.text.num_key_value_heads == r["num_key_value_heads"].get<int64_t>());
    CHECK(c.text.head_dim == r["head_dim"].get<int64_t>());
    CHECK(c.text.query_pre_attn_scalar == r["query_pre_attn_scalar"].get<double>());
    CHECK(c.text.sliding_window == r["sliding_window"].get<int64_t>());
    CHECK(c.text.max_position_embeddings == r["max_position_embeddings"].get<int64_t>());
    CHECK(c.text.rms_norm_eps == r["rms_norm_eps"].get<double>());
    CHECK(c.text.rope_global.theta == r["rope_theta"].get<double>());
    CHECK(c.text.rope_local.theta == r["rope_local_base_freq"].get<double>());
    const double factor =
        r["rope_scaling"].is_null() ? 1.0 : r["rope_scaling"]["factor"].get<double>();
    CHECK(c.text.rope_global.linear_factor == factor);
    CHECK(c.text.layer_types ==
          layer_types_from_pattern(c.text.num_hidden_layers,
                                   r["sliding_window_pattern"].get<int64_t>()));
    CHECK(c.is_multimodal() == m["multimodal"].is_object());
    if (c.is_multimodal()) {
      const auto& v = m["resolved_vision_config"];
      CHECK(c.vision->hidden_size == v["hidden_size"].get<int64_t>());
      CHECK(c.vision->image_size == v["image_size"].get<int64_t>());
      CHECK(c.vision->patch_size == v["patch_size"].get<int64_t>());
      CHECK(c.vision->layer_norm_eps == 1e-6);  // absent in the file: SiglipVisionConfig default
      CHECK(c.mm_tokens_per_image == 16);
      CHECK(c.image_token_index == 512);
    }
    // A config written back parses to the same model.
    CHECK(parse_config(config_to_json(c)) == c);
  }
}

TEST_CASE("absent keys take transformers' Gemma3TextConfig defaults", "[config]") {
  const auto c = parse_config(nlohmann::json{{"model_type", "gemma3_text"}});
  CHECK(c.text.vocab_size == 262208);
  CHECK(c.text.hidden_size == 2304);
  CHECK(c.text.sliding_window == 4096);
  CHECK(c.text.max_position_embeddings == 131072);
  CHECK(c.text.rope_global.theta == 1e6);
  CHECK(c.text.rope_local.theta == 1e4);
  CHECK(c.text.tie_word_embeddings);
  CHECK(!c.text.final_logit_softcapping);
}

TEST_CASE("newer configs: layer_types and rope_parameters win", "[config]") {
  nlohmann::json j{
      {"model_type", "gemma3_text"},
      {"num_hidden_layers", 3},
      {"layer_types", {"full_attention", "sliding_attention", "full_attention"}},
      {"rope_parameters",
       {{"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 10000.0}}},
        {"full_attention", {{"rope_type", "linear"}, {"factor", 8.0}, {"rope_theta", 1e6}}}}}};
  const auto c = parse_config(j);
  CHECK(c.text.layer_types == std::vector{LayerKind::Global, LayerKind::Local, LayerKind::Global});
  CHECK(c.text.rope_global == RopeParams{1e6, 8.0});
  CHECK(c.text.rope_local == RopeParams{1e4, 1.0});
  CHECK(parse_config(config_to_json(c)) == c);
}

TEST_CASE("impossible or unsupported config values name their field", "[config]") {
  using nlohmann::json;
  const json base{{"model_type", "gemma3_text"}};
  struct Row {
    json patch;
    std::string field;
  };
  const std::vector<Row> rows{
      {{{"num_attention_heads", 0}}, "num_attention_heads"},
      {{{"num_key_value_heads", 3}}, "num_key_value_heads"},
      {{{"head_dim", 0}}, "head_dim"},
      {{{"head_dim", 33}}, "head_dim"},
      {{{"hidden_size", "big"}}, "hidden_size"},
      {{{"sliding_window", -1}}, "sliding_window"},
      {{{"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4}}}}, "rope_scaling.rope_type"},
      {{{"rope_scaling", {{"rope_type", "linear"}}}}, "rope_scaling.factor"},
      {{{"hidden_activation", "relu"}}, "hidden_activation"},
      {{{"layer_types", {"sliding_attention"}}}, "layer_types"},
      {{{"layer_types", {"local"}}}, "layer_types"},
      {{{"final_logit_softcapping", -1.0}}, "final_logit_softcapping"},
      {{{"model_type", "llama"}}, "model_type"},
  };
  for (const auto& row : rows) {
    json j = base;
    j.update(row.patch);
    INFO(j.dump());
    try {
      parse_config(j);
      FAIL("no error");
    } catch (const ConfigError& e) {
      CHECK(e.subject() == row.field);
    }
  }
  CHECK_THROWS_AS(load_config(test::data_dir() / "no-such-dir" / "config.json"), IoError);
}
