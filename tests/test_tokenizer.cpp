// The tokenizer against the reference ids of the JS/HF tokenizer (tests/data/tokenizer, 3460
// strings), in both encode modes, decoding, streaming, and the chat template against Jinja
// renderings.
#include <catch2/catch.hpp>

#include <fstream>

#include <gemma3/tokenizer/chat.hpp>
#include <gemma3/tokenizer/load_tokenizer.hpp>
#include <gemma3/tokenizer/spm_model.hpp>
#include <gemma3/tokenizer/tokenizer.hpp>

#include "check_error.hpp"
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

TEST_CASE("tokenizer: SentencePiece's ModelProto is read and written without libprotobuf",
          "[tokenizer][spm]") {
  const std::string bytes = read_file(GEMMA3_TOKENIZER_MODEL);
  const auto m = spm::parse_model_proto(bytes, GEMMA3_TOKENIZER_MODEL);
  const auto& tok = tokenizer();
  REQUIRE(int(m.pieces.size()) == tok.vocab_size());
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    if (m.pieces[id].piece != tok.processor().IdToPiece(id) ||
        m.pieces[id].score != tok.processor().GetScore(id))
      FAIL_CHECK("piece " << id);
  }
  // The types alone (what Tokenizer keeps), read without the pieces' text.
  const auto types = spm::piece_types(bytes, GEMMA3_TOKENIZER_MODEL);
  REQUIRE(types.size() == m.pieces.size());
  for (std::size_t id = 0; id < types.size(); ++id)
    if (types[id] != m.pieces[id].type) FAIL_CHECK("type of piece " << id);
  CHECK(m.pieces[105] == spm::Piece{"<start_of_turn>", 0.0f, spm::PieceType::UserDefined});
  CHECK(m.pieces[3].type == spm::PieceType::Unknown);
  CHECK(m.pieces[1].type == spm::PieceType::Control);
  CHECK(m.trainer_spec.model_type == spm::TrainerSpec::ModelType::Bpe);
  CHECK(m.trainer_spec.byte_fallback);
  CHECK(m.trainer_spec.eos_piece == "<eos>");
  CHECK_FALSE(m.normalizer_spec.add_dummy_prefix);
  CHECK(m.normalizer_spec.escape_whitespaces);
  // scripts/convert_tokenizer.py's file holds only the fields modelled here, written as protobuf
  // writes them, so it comes back byte for byte (Google's own file records more, which is skipped).
  if (m.skipped_fields == 0) CHECK(spm::serialize(m) == bytes);
  // And what we write, libsentencepiece reads as the same tokenizer.
  const auto again = Tokenizer::from_serialized_proto(spm::serialize(m), "rewritten");
  for (const auto& r : reference_records()) {
    const std::string text = r["text"];
    if (again.encode(text) != tok.encode(text)) FAIL_CHECK("record " << r["id"]);
  }

  // Negative int32 fields (10-byte varints), unknown fields skipped and counted.
  spm::ModelProto small;
  small.pieces = {{"a", -1.5f, spm::PieceType::Byte}, {"b", 2.0f, spm::PieceType::Normal}};
  small.trainer_spec.eos_id = -7;
  small.normalizer_spec.name = "identity";
  const auto back = spm::parse_model_proto(spm::serialize(small) + std::string("\x48\x01", 2), "x");
  CHECK(back.pieces == small.pieces);
  CHECK(back.trainer_spec == small.trainer_spec);
  CHECK(back.normalizer_spec == small.normalizer_spec);
  CHECK(back.skipped_fields == 1);
}

TEST_CASE("robustness: a malformed ModelProto names what is wrong and where", "[tokenizer][spm]") {
  auto parse = [](std::string_view b) { return spm::parse_model_proto(b, "m.model"); };
  const std::string head = "malformed SentencePiece ModelProto: ";
  CHECK(parse("").pieces.empty());
  CHECK_ERROR(FormatError, parse(std::string("\x0a\x05\x0a\x01", 4)), "m.model",
              head +
                  "pieces[0]: length 5 runs past the end of its message (bytes left: 2) (at "
                  "byte 1)");
  CHECK_ERROR(FormatError, parse(std::string("\x0a\x02\x18\x09", 4)), "m.model",
              head +
                  "pieces[0].type is 9, not a SentencePiece piece type (1 NORMAL ... 6 BYTE) "
                  "(at byte 3)");
  CHECK_ERROR(FormatError, parse(std::string("\x0a\x02\x10\x01", 4)), "m.model",
              head + "pieces[0].score is varint, expected fixed32 (at byte 3)");
  CHECK_ERROR(
      FormatError, parse(std::string("\x0b", 1)), "m.model",
      head + "ModelProto field 1 has wire type 3, which a ModelProto never uses (at byte 0)");
  CHECK_ERROR(FormatError, parse(std::string("\x78") + std::string(10, '\xff') + "\x01"), "m.model",
              head + "ModelProto field 15: a varint longer than 10 bytes (at byte 1)");
  CHECK_ERROR(FormatError, parse(std::string("\x00", 1)), "m.model",
              head + "ModelProto: field number 0 is not valid (at byte 0)");
  CHECK_ERROR(FormatError, parse(std::string("\x12\x02\x18\x07", 4)), "m.model",
              head +
                  "trainer_spec.model_type is 7, not a SentencePiece model type (1 UNIGRAM ... "
                  "4 CHAR) (at byte 3)");
  CHECK_ERROR(FormatError, parse(std::string("\x1a\x02\x08\x01", 4)), "m.model",
              head + "normalizer_spec field 1 is varint, expected length-delimited (at byte 3)");
  // Every truncation of a real file either parses (at a piece boundary) or is refused: no crash.
  const std::string bytes = read_file(GEMMA3_TOKENIZER_MODEL);
  for (std::size_t n = 0; n < 4096; n += 7) {
    try {
      parse(std::string_view(bytes).substr(0, n));
    } catch (const FormatError&) {
    }
  }
}

TEST_CASE("tokenizer: the tokenizer in llama.cpp's GGUF metadata is tokenizer.model",
          "[tokenizer][gguf]") {
  // llama.cpp's converter wrote this file's tokenizer.ggml.* keys from the full tokenizer.model
  // (tests/data/gguf/README.md); rebuilt from them, the SentencePiece model is that file, and it
  // gives the reference ids in both modes.
  const gguf::File f(test::data_dir() / "gguf" / "gemma3-270m-metadata.llamacpp.gguf");
  const auto rebuilt = gguf::sentencepiece_model(f);
  const auto original =
      spm::parse_model_proto(read_file(GEMMA3_TOKENIZER_MODEL), "tokenizer.model");
  CHECK(rebuilt.pieces == original.pieces);
  CHECK(rebuilt.trainer_spec == original.trainer_spec);
  CHECK(rebuilt.normalizer_spec == original.normalizer_spec);

  const Tokenizer gguf_tok = load_tokenizer(f.path());
  CHECK(gguf_tok.path() == f.path().string());
  const auto& tok = tokenizer();
  int sp_ok = 0, hf_ok = 0, same = 0;
  const auto records = reference_records();
  for (const auto& r : records) {
    const std::string text = r["text"];
    const auto hf = r["ids_no_special"].get<std::vector<int32_t>>();
    const auto sp =
        r["sp_agrees"].get<bool>() ? hf : r["sp_ids_no_special"].get<std::vector<int32_t>>();
    const auto got_sp = gguf_tok.encode(text);
    const auto got_hf = gguf_tok.encode(text, {.parse_special = true});
    sp_ok += got_sp == sp;
    hf_ok += got_hf == hf;
    same += got_sp == tok.encode(text) && got_hf == tok.encode(text, {.parse_special = true});
  }
  CHECK(records.size() == 3460);
  CHECK(sp_ok == 3460);
  CHECK(hf_ok == 3460);
  CHECK(same == 3460);
  CHECK(gguf_tok.end_of_turn() == 106);
  CHECK(gguf_tok.is_user_defined(gguf_tok.start_of_turn()));
}
