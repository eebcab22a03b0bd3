// SentencePiece's ModelProto — the bytes of a tokenizer.model — read and written without
// libprotobuf, for what this library needs: the pieces (text, score, type) and the settings that
// decide how a model encodes.
//
// sentencepiece_model.proto (proto2), the fields kept here:
//   ModelProto      pieces = 1 (repeated SentencePiece), trainer_spec = 2, normalizer_spec = 3
//   SentencePiece   piece = 1 (string), score = 2 (float), type = 3 (enum Type, absent = NORMAL)
//   TrainerSpec     model_type = 3, vocab_size = 4, split_by_unicode_script = 21,
//                   split_by_whitespace = 22, split_by_number = 23, treat_whitespace_as_suffix =
//                   24, split_digits = 25, allow_whitespace_only_pieces = 26, byte_fallback = 35,
//                   unk_id = 40, bos_id = 41, eos_id = 42, pad_id = 43,
//                   unk_piece = 45, bos_piece = 46, eos_piece = 47, pad_piece = 48
//   NormalizerSpec  name = 1, precompiled_charsmap = 2, add_dummy_prefix = 3,
//                   remove_extra_whitespaces = 4, escape_whitespaces = 5
// Every other field (Google's files record the whole training run: input files, sentence counts,
// ...) is skipped, checked only for being well formed, and counted in ModelProto::skipped_fields;
// serialize() does not write them back.
//
// Protobuf wire format (protobuf.dev/programming-guides/encoding): a message is a sequence of
// (key, value) records, key = field_number << 3 | wire_type, as a varint. Wire types: 0 varint, 1
// 8 bytes, 2 length-delimited (a varint length, then that many bytes: strings and embedded
// messages), 5 4 bytes (float); 3 and 4 are the deprecated groups, which no ModelProto uses. A
// negative int32 is a 10-byte varint of its 64-bit two's complement. Fields go out in field-number
// order, as protobuf's own serializer writes them, so serialize(parse(bytes)) == bytes for a file
// with no skipped fields (scripts/convert_tokenizer.py's, for one).
//
// Like the other readers here, every length is checked against the bytes that remain before it is
// used: a malformed or hostile file gives a FormatError naming the field and byte, never a crash.
#pragma once

#include "gemma3/build_mode.hpp"

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "gemma3/error.hpp"

namespace gemma3::inline GEMMA3_MODE::spm {

// ModelProto.SentencePiece.Type.
enum class PieceType : uint8_t {
  Normal = 1,
  Unknown = 2,      // exactly one; what text no piece covers becomes (without byte_fallback)
  Control = 3,      // <bos>, <eos>, <pad>: never matched in text
  UserDefined = 4,  // always one piece wherever it appears in the text
  Unused = 5,
  Byte = 6,  // <0x00> ... <0xFF>, the byte_fallback pieces
};

struct Piece {
  std::string piece;  // the text, with spaces as U+2581 when escape_whitespaces is set
  float score = 0;    // BPE: the pair whose merge has the highest score merges first
  PieceType type = PieceType::Normal;

  bool operator==(const Piece&) const = default;
};

// TrainerSpec, the fields listed at the top; member defaults are the proto's defaults.
struct TrainerSpec {
  enum class ModelType : int32_t { Unigram = 1, Bpe = 2, Word = 3, Char = 4 };
  ModelType model_type = ModelType::Unigram;
  int32_t vocab_size = 8000;
  // Training-only: how the trainer split its corpus (they do not change encoding).
  bool split_by_unicode_script = true;
  bool split_by_whitespace = true;
  bool split_by_number = true;
  bool treat_whitespace_as_suffix = false;  // this one does: "▁" ends a word instead of starting it
  bool split_digits = false;
  bool allow_whitespace_only_pieces = false;
  bool byte_fallback = false;  // unknown characters become their UTF-8 bytes' <0xXX> pieces
  int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;  // -1: none
  std::string unk_piece = "<unk>", bos_piece = "<s>", eos_piece = "</s>", pad_piece = "<pad>";

  bool operator==(const TrainerSpec&) const = default;
};

// NormalizerSpec; member defaults are the proto's.
struct NormalizerSpec {
  std::string name;                  // "identity", "nmt_nfkc", ...; informational
  std::string precompiled_charsmap;  // the normalization rules; empty = none
  bool add_dummy_prefix = true;      // prepend "▁" to the text
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;  // " " -> "▁"

  bool operator==(const NormalizerSpec&) const = default;
};

struct ModelProto {
  std::vector<Piece> pieces;  // id order
  TrainerSpec trainer_spec;
  NormalizerSpec normalizer_spec;
  // Fields the file had that are not modelled here (see the top); not written back.
  int64_t skipped_fields = 0;
};

namespace detail {

inline constexpr int kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kStartGroup = 3,
                     kEndGroup = 4, kFixed32 = 5;

// Bounds-checked reads of one message (or an embedded one) of the file; `offset` is where the
// message starts in the file, so errors give file byte positions.
class WireReader {
 public:
  WireReader(std::string_view bytes, std::size_t offset, const std::string& where)
      : b_(bytes), offset_(offset), where_(where) {}

  bool done() const { return i_ >= b_.size(); }
  std::size_t position() const { return offset_ + i_; }

  // The next record's key; `field` and `wire` are its field number and wire type.
  void key(const std::string& message, uint64_t& field, int& wire) {
    const std::size_t at = position();
    const uint64_t k = varint(message + " field key");
    field = k >> 3;
    wire = int(k & 7);
    if (field == 0 || field > 0x1fffffff)
      throw fail(at, message + ": field number " + std::to_string(field) + " is not valid");
    if (wire == kStartGroup || wire == kEndGroup || wire > kFixed32)
      throw fail(at, message + " field " + std::to_string(field) + " has wire type " +
                         std::to_string(wire) + ", which a ModelProto never uses");
  }
  uint64_t varint(const std::string& what) {
    const std::size_t at = position();
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (done()) throw fail(at, what + ": the varint runs past the end of its message");
      const auto byte = static_cast<unsigned char>(b_[i_++]);
      if (shift == 63 && byte > 1) break;  // more than 64 bits
      v |= uint64_t(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return v;
    }
    throw fail(at, what + ": a varint longer than 10 bytes");
  }
  float fixed32_float(const std::string& what) {
    const std::size_t at = position();
    if (b_.size() - i_ < 4) throw fail(at, what + ": 4 bytes needed, the message has fewer left");
    uint32_t bits = 0;  // little-endian on the wire
    for (int k = 0; k < 4; ++k) bits |= uint32_t(static_cast<unsigned char>(b_[i_ + k])) << 8 * k;
    i_ += 4;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  // A length-delimited payload; `start` receives its file offset.
  std::string_view bytes(const std::string& what, std::size_t& start) {
    const std::size_t at = position();
    const uint64_t n = varint(what + " length");
    if (n > b_.size() - i_)
      throw fail(at, what + ": length " + std::to_string(n) +
                         " runs past the end of its message (bytes left: " +
                         std::to_string(b_.size() - i_) + ")");
    start = position();
    const auto payload = b_.substr(i_, std::size_t(n));
    i_ += std::size_t(n);
    return payload;
  }
  void skip(int wire, const std::string& what) {
    std::size_t start;
    if (wire == kVarint) {
      varint(what);
    } else if (wire == kLengthDelimited) {
      bytes(what, start);
    } else {  // kFixed64 or kFixed32
      const std::size_t n = wire == kFixed64 ? 8 : 4;
      if (b_.size() - i_ < n)
        throw fail(position(),
                   what + ": " + std::to_string(n) + " bytes needed, the message has fewer left");
      i_ += n;
    }
  }
  // Checks a known field's wire type.
  void expect(int wire, int expected, const std::string& what) const {
    static const char* names[] = {"varint", "fixed64", "length-delimited", "", "", "fixed32"};
    if (wire != expected)
      throw fail(position(), what + " is " + names[wire] + ", expected " + names[expected]);
  }
  FormatError fail(std::size_t at, const std::string& message) const {
    return FormatError(where_, "malformed SentencePiece ModelProto: " + message + " (at byte " +
                                   std::to_string(at) + ")");
  }

 private:
  std::string_view b_;
  std::size_t i_ = 0, offset_;
  const std::string& where_;
};

inline void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += char((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += char(v);
}
inline void put_key(std::string& out, int field, int wire) {
  put_varint(out, uint64_t(field) << 3 | uint64_t(wire));
}
// int32 and enums: negative values sign-extend to 64 bits (10 bytes), as protobuf writes them.
inline void put_int32(std::string& out, int field, int32_t v) {
  put_key(out, field, kVarint);
  put_varint(out, uint64_t(int64_t(v)));
}
inline void put_bool(std::string& out, int field, bool v) {
  put_key(out, field, kVarint);
  out += char(v ? 1 : 0);
}
inline void put_bytes(std::string& out, int field, std::string_view v) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, v.size());
  out += v;
}
inline void put_float(std::string& out, int field, float v) {
  put_key(out, field, kFixed32);
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  for (int k = 0; k < 4; ++k) out += char((bits >> 8 * k) & 0xff);
}

inline PieceType parse_type(WireReader& r, int wire, const std::string& name) {
  r.expect(wire, kVarint, name + ".type");
  const std::size_t at = r.position();
  const uint64_t t = r.varint(name + ".type");
  if (t < 1 || t > 6)
    throw r.fail(at, name + ".type is " + std::to_string(t) +
                         ", not a SentencePiece piece type (1 NORMAL ... 6 BYTE)");
  return static_cast<PieceType>(t);
}

inline Piece parse_piece(WireReader r, const std::string& name) {
  Piece p;
  while (!r.done()) {
    uint64_t field;
    int wire;
    r.key(name, field, wire);
    if (field == 1) {
      r.expect(wire, kLengthDelimited, name + ".piece");
      std::size_t start;
      p.piece = std::string(r.bytes(name + ".piece", start));
    } else if (field == 2) {
      r.expect(wire, kFixed32, name + ".score");
      p.score = r.fixed32_float(name + ".score");
    } else if (field == 3) {
      p.type = parse_type(r, wire, name);
    } else {
      r.skip(wire, name + " field " + std::to_string(field));
    }
  }
  return p;
}

inline void parse_trainer_spec(WireReader r, TrainerSpec& t, int64_t& skipped) {
  const std::string name = "trainer_spec";
  while (!r.done()) {
    uint64_t field;
    int wire;
    r.key(name, field, wire);
    const std::string what = name + " field " + std::to_string(field);
    auto as_int32 = [&] {
      r.expect(wire, kVarint, what);
      return static_cast<int32_t>(static_cast<uint32_t>(r.varint(what)));  // protobuf truncates
    };
    auto as_bool = [&] {
      r.expect(wire, kVarint, what);
      return r.varint(what) != 0;
    };
    auto as_string = [&] {
      r.expect(wire, kLengthDelimited, what);
      std::size_t start;
      return std::string(r.bytes(what, start));
    };
    switch (field) {
      case 3: {
        const std::size_t at = r.position();
        const int32_t m = as_int32();
        if (m < 1 || m > 4)
          throw r.fail(at, "trainer_spec.model_type is " + std::to_string(m) +
                               ", not a SentencePiece model type (1 UNIGRAM ... 4 CHAR)");
        t.model_type = static_cast<TrainerSpec::ModelType>(m);
        break;
      }
      case 4:
        t.vocab_size = as_int32();
        break;
      case 21:
        t.split_by_unicode_script = as_bool();
        break;
      case 22:
        t.split_by_whitespace = as_bool();
        break;
      case 23:
        t.split_by_number = as_bool();
        break;
      case 24:
        t.treat_whitespace_as_suffix = as_bool();
        break;
      case 25:
        t.split_digits = as_bool();
        break;
      case 26:
        t.allow_whitespace_only_pieces = as_bool();
        break;
      case 35:
        t.byte_fallback = as_bool();
        break;
      case 40:
        t.unk_id = as_int32();
        break;
      case 41:
        t.bos_id = as_int32();
        break;
      case 42:
        t.eos_id = as_int32();
        break;
      case 43:
        t.pad_id = as_int32();
        break;
      case 45:
        t.unk_piece = as_string();
        break;
      case 46:
        t.bos_piece = as_string();
        break;
      case 47:
        t.eos_piece = as_string();
        break;
      case 48:
        t.pad_piece = as_string();
        break;
      default:
        r.skip(wire, what);
        ++skipped;
    }
  }
}

inline void parse_normalizer_spec(WireReader r, NormalizerSpec& n, int64_t& skipped) {
  const std::string name = "normalizer_spec";
  while (!r.done()) {
    uint64_t field;
    int wire;
    r.key(name, field, wire);
    const std::string what = name + " field " + std::to_string(field);
    std::size_t start;
    if (field == 1 || field == 2) {
      r.expect(wire, kLengthDelimited, what);
      (field == 1 ? n.name : n.precompiled_charsmap) = std::string(r.bytes(what, start));
    } else if (field >= 3 && field <= 5) {
      r.expect(wire, kVarint, what);
      const bool v = r.varint(what) != 0;
      (field == 3   ? n.add_dummy_prefix
       : field == 4 ? n.remove_extra_whitespaces
                    : n.escape_whitespaces) = v;
    } else {
      r.skip(wire, what);
      ++skipped;
    }
  }
}

}  // namespace detail

// Parses a serialized ModelProto (a tokenizer.model's bytes); `where` names it in errors.
inline ModelProto parse_model_proto(std::string_view bytes, const std::string& where) {
  ModelProto m;
  detail::WireReader r(bytes, 0, where);
  while (!r.done()) {
    uint64_t field;
    int wire;
    r.key("ModelProto", field, wire);
    if (field >= 1 && field <= 3) {
      const std::string name = field == 1   ? "pieces[" + std::to_string(m.pieces.size()) + "]"
                               : field == 2 ? "trainer_spec"
                                            : "normalizer_spec";
      r.expect(wire, detail::kLengthDelimited, name);
      std::size_t start;
      const auto payload = r.bytes(name, start);
      const detail::WireReader sub(payload, start, where);
      if (field == 1)
        m.pieces.push_back(detail::parse_piece(sub, name));
      else if (field == 2)
        detail::parse_trainer_spec(sub, m.trainer_spec, m.skipped_fields);
      else
        detail::parse_normalizer_spec(sub, m.normalizer_spec, m.skipped_fields);
    } else {
      r.skip(wire, "ModelProto field " + std::to_string(field));
      ++m.skipped_fields;
    }
  }
  return m;
}

// The type of each piece of a serialized ModelProto, in id order, and nothing else: what a
// tokenizer needs beside libsentencepiece's own copy of the model, without a second copy of the
// 262144 pieces' text (parse_model_proto's ~13 MB, at the peak of a model's load).
inline std::vector<PieceType> piece_types(std::string_view bytes, const std::string& where) {
  std::vector<PieceType> types;
  detail::WireReader r(bytes, 0, where);
  while (!r.done()) {
    uint64_t field;
    int wire;
    r.key("ModelProto", field, wire);
    if (field != 1) {
      r.skip(wire, "ModelProto field " + std::to_string(field));
      continue;
    }
    const std::string name = "pieces[" + std::to_string(types.size()) + "]";
    r.expect(wire, detail::kLengthDelimited, name);
    std::size_t start = 0;
    const auto payload = r.bytes(name, start);  // sets start: not in the reader's arguments
    detail::WireReader piece(payload, start, where);
    PieceType type = PieceType::Normal;
    while (!piece.done()) {
      piece.key(name, field, wire);
      if (field == 3)
        type = detail::parse_type(piece, wire, name);
      else
        piece.skip(wire, name + " field " + std::to_string(field));
    }
    types.push_back(type);
  }
  return types;
}

// The serialized ModelProto of `m`: its pieces, then every TrainerSpec and NormalizerSpec field
// listed at the top (all of them, set explicitly, as scripts/convert_tokenizer.py writes them).
inline std::string serialize(const ModelProto& m) {
  using namespace detail;
  std::string out, sub;
  for (const auto& p : m.pieces) {
    sub.clear();
    put_bytes(sub, 1, p.piece);
    put_float(sub, 2, p.score);
    if (p.type != PieceType::Normal) put_int32(sub, 3, int32_t(p.type));  // absent = NORMAL
    put_bytes(out, 1, sub);
  }
  const TrainerSpec& t = m.trainer_spec;
  sub.clear();
  put_int32(sub, 3, int32_t(t.model_type));
  put_int32(sub, 4, t.vocab_size);
  put_bool(sub, 21, t.split_by_unicode_script);
  put_bool(sub, 22, t.split_by_whitespace);
  put_bool(sub, 23, t.split_by_number);
  put_bool(sub, 24, t.treat_whitespace_as_suffix);
  put_bool(sub, 25, t.split_digits);
  put_bool(sub, 26, t.allow_whitespace_only_pieces);
  put_bool(sub, 35, t.byte_fallback);
  put_int32(sub, 40, t.unk_id);
  put_int32(sub, 41, t.bos_id);
  put_int32(sub, 42, t.eos_id);
  put_int32(sub, 43, t.pad_id);
  put_bytes(sub, 45, t.unk_piece);
  put_bytes(sub, 46, t.bos_piece);
  put_bytes(sub, 47, t.eos_piece);
  put_bytes(sub, 48, t.pad_piece);
  put_bytes(out, 2, sub);
  const NormalizerSpec& n = m.normalizer_spec;
  sub.clear();
  put_bytes(sub, 1, n.name);
  put_bytes(sub, 2, n.precompiled_charsmap);
  put_bool(sub, 3, n.add_dummy_prefix);
  put_bool(sub, 4, n.remove_extra_whitespaces);
  put_bool(sub, 5, n.escape_whitespaces);
  put_bytes(out, 3, sub);
  return out;
}

}  // namespace gemma3::inline GEMMA3_MODE::spm
