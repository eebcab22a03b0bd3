// The tokenizer against the reference ids of the JS/HF tokenizer (tests/data/tokenizer, 3460
// strings), in both encode modes, decoding, streaming, and the chat template against Jinja
// renderings.
#include <catch2/catch.hpp>

#include <fstream>

#include <gemma3/tokenizer/chat.hpp>
#include <gemma3/tokenizer/tokenizer.hpp>

#include "test_helpers.hpp"

using namespace gemma3;

namespace {
const Tokenizer& tokenizer() {
  static const Tokenizer tok(GEMMA3_TOKENIZER_MODEL);  // built by scripts/get_tokenizer.sh
  return tok;
}

std::vector<nlohmann::json> reference_records() {
  std::vector<nlohmann::json> records;
  std::ifstream in(test::data_dir() / "tokenizer" / "gemma3_tokenizer_reference.jsonl");
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) records.push_back(nlohmann::json::parse(line));
  return records;
}
}  // namespace

TEST_CASE("tokenizer: special ids are looked up by piece and match Gemma 3's", "[tokenizer]") {
  const auto& tok = tokenizer();
  CHECK(tok.vocab_size() == 262144);
  CHECK(tok.pad() == 0);
  CHECK(tok.eos() == 1);
  CHECK(tok.bos() == 2);
  CHECK(tok.unk() == 3);
  CHECK(tok.start_of_turn() == 105);
  CHECK(tok.end_of_turn() == 106);
  CHECK(tok.start_of_image() == 255999);
  CHECK(tok.end_of_image() == 256000);
  CHECK(tok.image_soft_token() == 262144);
  CHECK(tok.piece(106) == "<end_of_turn>");
  CHECK(tok.id_of("<start_of_turn>") == 105);
  CHECK_THROWS_WITH(tok.id_of("<no_such_token>"), Catch::Contains("not a piece"));
  CHECK_THROWS_WITH(tok.piece(262145), Catch::Contains("outside"));
}

TEST_CASE("tokenizer: every reference string encodes exactly, in both modes, and decodes",
          "[tokenizer]") {
  const auto& tok = tokenizer();
  const auto records = reference_records();
  REQUIRE(records.size() == 3460);
  int sp_ok = 0, hf_ok = 0, decode_ok = 0;
  for (const auto& r : records) {
    const std::string text = r["text"];
    const auto hf = r["ids_no_special"].get<std::vector<int32_t>>();
    const auto sp =
        r["sp_agrees"].get<bool>() ? hf : r["sp_ids_no_special"].get<std::vector<int32_t>>();
    const auto got_sp = tok.encode(text);
    const auto got_hf = tok.encode(text, {.parse_special = true});
    sp_ok += got_sp == sp;
    hf_ok += got_hf == hf;
    decode_ok += tok.decode(hf) == r["decoded"].get<std::string>();
    if (got_sp != sp || got_hf != hf)
      UNSCOPED_INFO("record " << r["id"] << " (" << r["category"] << ")");
    auto with_bos = tok.encode(text, {.add_bos = true, .parse_special = true});
    CHECK(with_bos == r["ids_with_bos"].get<std::vector<int32_t>>());
  }
  CHECK(sp_ok == 3460);
  CHECK(hf_ok == 3460);
  CHECK(decode_ok == 3460);
}

TEST_CASE("tokenizer: streaming decode holds back incomplete UTF-8 and equals decode",
          "[tokenizer]") {
  const auto& tok = tokenizer();
  // Over every reference string: the streamed pieces concatenate to decode()'s text.
  for (const auto& r : reference_records()) {
    const auto ids = tok.encode(r["text"].get<std::string>());
    StreamDecoder stream(tok);
    std::string out;
    for (const auto id : ids) out += stream.push(id);
    out += stream.finish();
    if (out != tok.decode(ids)) FAIL_CHECK("record " << r["id"]);
  }
  for (const std::string text : {"Grüße, 世界! 🦙🧑‍🚀 naïve café",
                                 "plain ascii text", "\xf0\x9f\x98\x80 x \xe2\x82\xac"}) {
    const auto ids = tok.encode(text);
    StreamDecoder stream(tok);
    std::string out;
    for (const auto id : ids) {
      const std::string chunk = stream.push(id);
      CHECK(find_invalid_utf8(chunk) == std::string::npos);
      out += chunk;
    }
    out += stream.finish();
    CHECK(out == text);
    CHECK(tok.decode(ids) == text);
  }
  // An emoji split into byte pieces arrives over several pushes but prints once, whole.
  StreamDecoder stream(tok);
  const int32_t f0 = tok.id_of("<0xF0>"), x9f = tok.id_of("<0x9F>"), x98 = tok.id_of("<0x98>"),
                x80 = tok.id_of("<0x80>");
  CHECK(stream.push(f0).empty());
  CHECK(stream.push(x9f).empty());
  CHECK(stream.push(x98).empty());
  CHECK(stream.push(x80) == "\xf0\x9f\x98\x80");
  CHECK(stream.push(f0).empty());
  CHECK(stream.finish() == "\xef\xbf\xbd");  // a dangling lead byte becomes U+FFFD
}

TEST_CASE("tokenizer: bad input and bad model files give clear errors", "[tokenizer][errors]") {
  const auto& tok = tokenizer();
  CHECK_THROWS_WITH(tok.encode("ok \xff bad"), Catch::Contains("invalid UTF-8 at byte 3"));
  CHECK_THROWS_WITH(tok.encode("\xe2\x82"), Catch::Contains("invalid UTF-8 at byte 0"));
  CHECK_THROWS_WITH(tok.encode("\xed\xa0\x80"), Catch::Contains("invalid UTF-8"));  // a surrogate
  CHECK_THROWS_WITH(tok.decode({5, -1}), Catch::Contains("token id -1"));
  CHECK_THROWS_AS(Tokenizer("/nonexistent/tokenizer.model"), IoError);
  const auto dir = test::scratch_dir("tok_bad");
  std::ofstream(dir / "tokenizer.model", std::ios::binary) << "this is not a protobuf";
  CHECK_THROWS_WITH(Tokenizer(dir / "tokenizer.model"),
                    Catch::Contains("not a SentencePiece model"));
}

TEST_CASE("chat: the Conversation renders exactly what the official Jinja template renders",
          "[tokenizer][chat]") {
  std::ifstream in(test::data_dir() / "chat" / "chat_template_cases.json");
  const auto cases = nlohmann::json::parse(in)["cases"];
  REQUIRE(cases.size() >= 10);
  for (const auto& c : cases) {
    INFO(c["name"].get<std::string>());
    Conversation conv;
    for (const auto& m : c["messages"]) {
      Message msg{m["role"], {}, m["content"].is_string()};
      if (m["content"].is_string())
        msg.content.push_back(ContentPart::Text(m["content"]));
      else
        for (const auto& item : m["content"])
          msg.content.push_back(item["type"] == "image" ? ContentPart::Image()
                                                        : ContentPart::Text(item["text"]));
      conv.add(msg);
    }
    if (c.contains("expected_error")) {
      CHECK_THROWS_WITH(conv.render(c["add_generation_prompt"]), Catch::Contains("alternate"));
      continue;
    }
    const std::string expected = c["expected"];
    CHECK(conv.render(c["add_generation_prompt"]) == expected);

    // Ids: the HF processor's expansion of every <start_of_image>, tokenized HF-style, must equal
    // the marker-aware rendering (which only differs for special-token literals in user text).
    std::string expanded;
    const std::string boi = "<start_of_image>";
    for (std::size_t i = 0; i < expected.size();) {
      if (expected.compare(i, boi.size(), boi) == 0) {
        expanded += "\n\n" + boi;
        for (int k = 0; k < 256; ++k) expanded += "<image_soft_token>";
        expanded += "<end_of_image>\n\n";
        i += boi.size();
      } else {
        expanded += expected[i++];
      }
    }
    const auto& tok = tokenizer();
    CHECK(conv.render_ids(tok, 256, c["add_generation_prompt"], /*parse_special=*/true) ==
          tok.encode(expanded, {.parse_special = true}));
    const auto ids = conv.render_ids(tok, 256, c["add_generation_prompt"]);
    CHECK(ids.front() == tok.bos());
    CHECK(std::count(ids.begin(), ids.end(), tok.image_soft_token()) == 256 * conv.num_images());
  }
}

TEST_CASE("chat: a user's literal <bos> stays text by default", "[tokenizer][chat]") {
  const auto& tok = tokenizer();
  Conversation conv;
  conv.user("<bos>");
  const auto ids = conv.render_ids(tok);
  CHECK(std::count(ids.begin(), ids.end(), tok.bos()) == 1);
  const auto hf = conv.render_ids(tok, 256, true, /*parse_special=*/true);
  CHECK(std::count(hf.begin(), hf.end(), tok.bos()) == 2);
}
