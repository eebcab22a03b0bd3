// GGUF (llama.cpp's checkpoint format): a validating, zero-copy reader and a writer.
//
// Layout (ggml `docs/gguf.md`, version 2 and 3; all integers little-endian):
//   "GGUF"  u32 version  u64 tensor_count  u64 metadata_kv_count
//   metadata_kv_count x { string key, u32 value_type, value }        string = u64 length + bytes
//   tensor_count x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
//   padding to `general.alignment` (default 32), then the data section; every tensor's offset is
//   relative to the data section and a multiple of the alignment.
// ggml lists dimensions innermost first (ne[0] is the row length), so a PyTorch [out, in] matrix
// has ne = [in, out]; the bytes are the same row-major layout. The reader reverses ne into the
// usual outermost-first shape.
//
// Like the safetensors reader, everything is checked before a tensor is used: every read against
// the end of the file, counts against the bytes that could hold them, dimensions against overflow,
// types, alignment, data ranges and their overlap, duplicate keys and names. A file from a stranger
// can fail to load, never crash.
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "gemma3/error.hpp"
#include "gemma3/io/files.hpp"
#include "gemma3/io/mapped_file.hpp"
#include "gemma3/tensor.hpp"

namespace gemma3::inline GEMMA3_MODE::gguf {

inline constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
inline constexpr uint32_t kDefaultAlignment = 32;
// ggml's GGML_MAX_DIMS.
inline constexpr uint32_t kMaxDims = 4;
// Arrays longer than this (the tokenizer's 262144 pieces, say) are walked and validated but not
// kept in metadata(): keeping them as JSON would let a small file allocate many times its size.
// File::string_array and its siblings read them from the mapping when asked.
inline constexpr uint64_t kMaxKeptArray = 4096;
// Arrays of arrays are legal GGUF; nobody nests deeper than this.
inline constexpr int kMaxArrayDepth = 4;

// gguf_type: the type of a metadata value.
enum class ValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};

// The names gguf-py gives the value types (GGUFValueType), for messages.
inline const char* value_type_name(ValueType t) {
  static const char* names[] = {"UINT8",  "INT8",    "UINT16", "INT16",  "UINT32",
                                "INT32",  "FLOAT32", "BOOL",   "STRING", "ARRAY",
                                "UINT64", "INT64",   "FLOAT64"};
  return uint32_t(t) <= uint32_t(ValueType::F64) ? names[uint32_t(t)] : "unknown";
}

// ggml_type: how a tensor's elements are stored. Only the types this library reads are named; the
// others are reported by number and name (ggml_type_name) in the error.
enum class TensorType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  BF16 = 30,
};

inline std::string type_name(uint32_t t) {
  static const std::map<uint32_t, const char*> names{
      {0, "F32"},     {1, "F16"},      {2, "Q4_0"},   {3, "Q4_1"},    {6, "Q5_0"},
      {7, "Q5_1"},    {8, "Q8_0"},     {9, "Q8_1"},   {10, "Q2_K"},   {11, "Q3_K"},
      {12, "Q4_K"},   {13, "Q5_K"},    {14, "Q6_K"},  {15, "Q8_K"},   {16, "IQ2_XXS"},
      {17, "IQ2_XS"}, {18, "IQ3_XXS"}, {19, "IQ1_S"}, {20, "IQ4_NL"}, {21, "IQ3_S"},
      {22, "IQ2_S"},  {23, "IQ4_XS"},  {24, "I8"},    {25, "I16"},    {26, "I32"},
      {27, "I64"},    {28, "F64"},     {29, "IQ1_M"}, {30, "BF16"},   {34, "TQ1_0"},
      {35, "TQ2_0"},  {39, "MXFP4"}};
  auto it = names.find(t);
  return it != names.end() ? it->second : "type " + std::to_string(t);
}

// The DType of a ggml type this library reads (float or block-quantized: quant.hpp), and back.
inline std::optional<DType> dtype_of(uint32_t t) {
  switch (static_cast<TensorType>(t)) {
    case TensorType::F32:
      return DType::F32;
    case TensorType::F16:
      return DType::F16;
    case TensorType::BF16:
      return DType::BF16;
    case TensorType::Q8_0:
      return DType::Q8_0;
    case TensorType::Q4_0:
      return DType::Q4_0;
    case TensorType::Q4_1:
      return DType::Q4_1;
    case TensorType::Q5_0:
      return DType::Q5_0;
    case TensorType::Q5_1:
      return DType::Q5_1;
    case TensorType::Q4_K:
      return DType::Q4_K;
    case TensorType::Q5_K:
      return DType::Q5_K;
    case TensorType::Q6_K:
      return DType::Q6_K;
  }
  return std::nullopt;
}
inline TensorType tensor_type(DType d) {
  constexpr TensorType types[] = {TensorType::BF16, TensorType::F16,  TensorType::F32,
                                  TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_1,
                                  TensorType::Q5_0, TensorType::Q5_1, TensorType::Q4_K,
                                  TensorType::Q5_K, TensorType::Q6_K};
  return types[int(d)];
}

// Elements per block and bytes per block of the types read here.
struct BlockLayout {
  uint64_t elements, bytes;
};
inline std::optional<BlockLayout> block_layout(uint32_t t) {
  const auto d = dtype_of(t);
  if (!d) return std::nullopt;
  if (!is_quantized(*d)) return BlockLayout{1, dtype_size(*d)};
  const quant::Layout L = quant::layout(quant_type(*d));
  return BlockLayout{uint64_t(L.block_elements), uint64_t(L.block_bytes)};
}

// One tensor as the file describes it; `data` points into the mapping.
struct TensorInfo {
  std::string name;
  Shape shape;  // outermost first (ne reversed)
  uint32_t type = 0;
  uint64_t offset = 0;  // relative to the data section
  uint64_t nbytes = 0;
  const std::byte* data = nullptr;
};

// One .gguf file, mapped (or read into huge pages: Residency) and validated.
class File {
 public:
  explicit File(const std::filesystem::path& path, Residency residency = Residency::Mapped,
                const Progress& progress = {})
      : file_(path, residency, progress) {
    parse();
  }

  const std::filesystem::path& path() const { return file_.path(); }
  const MappedFile& mapped() const { return file_; }
  // Rewrites tensors' bytes in place in a copy in huge pages (MappedFile::edit): `edit` gets a
  // writable pointer for each const one this file hands out, e.g. a tensor's data.
  void edit(const std::function<void(const std::function<std::byte*(const std::byte*)>&)>& edit) {
    file_.edit([&](std::byte* base) {
      edit([&](const std::byte* p) { return base + (p - file_.data()); });
    });
  }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  // Metadata: scalars and strings as JSON values, short arrays as JSON arrays (see kMaxKeptArray).
  const nlohmann::json& metadata() const { return metadata_; }
  // Long arrays, summarised: key -> (element type, length).
  const std::map<std::string, std::pair<ValueType, uint64_t>>& long_arrays() const {
    return long_arrays_;
  }
  // Every metadata key, in file order (long arrays included).
  const std::vector<std::string>& keys() const { return keys_; }
  // The GGUF type of a metadata value (Array for arrays); nullopt when the file has no such key.
  std::optional<ValueType> type_of(const std::string& key) const {
    const auto it = types_.find(key);
    return it != types_.end() ? std::optional(it->second) : std::nullopt;
  }
  // An array's element type and length, whatever its length; nullopt when `key` is not an array.
  std::optional<std::pair<ValueType, uint64_t>> array_info(const std::string& key) const {
    const auto it = arrays_.find(key);
    if (it == arrays_.end()) return std::nullopt;
    return std::pair{it->second.element_type, it->second.length};
  }
  // Arrays of any length, read from the mapping when asked for (the tokenizer's 262144 pieces,
  // scores and token types): the element types llama.cpp writes them with. A missing key, another
  // type or a malformed element is a FormatError naming the file and the key.
  std::vector<std::string> string_array(const std::string& key) const {
    return read_array<std::string>(key, ValueType::String);
  }
  std::vector<float> f32_array(const std::string& key) const {
    return read_array<float>(key, ValueType::F32);
  }
  std::vector<int32_t> i32_array(const std::string& key) const {
    return read_array<int32_t>(key, ValueType::I32);
  }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const {
    for (const auto& t : tensors_)
      if (t.name == name) return &t;
    return nullptr;
  }

 private:
  // Bounds-checked little-endian reads from the mapping.
  struct Cursor {
    const std::byte* base;
    uint64_t size, pos = 0;
    const std::string& where;

    void need(uint64_t n, const std::string& what) const {
      if (n > size - pos)
        throw FormatError(where, "truncated: " + what + " at byte " + std::to_string(pos) +
                                     " needs " + std::to_string(n) + " bytes, the file has " +
                                     std::to_string(size - pos) + " left");
    }
    template <typename T>
    T read(const std::string& what) {
      need(sizeof(T), what);
      T v;
      std::memcpy(&v, base + pos, sizeof(T));
      pos += sizeof(T);
      return v;
    }
    std::string string(const std::string& what) {
      const auto n = read<uint64_t>(what + " length");
      need(n, what);
      std::string s(reinterpret_cast<const char*>(base + pos), n);
      pos += n;
      return s;
    }
  };

  // Where a top-level array's elements start in the mapping, for the typed readers above.
  struct ArrayEntry {
    ValueType element_type;
    uint64_t length, offset;
  };

  template <typename T>
  std::vector<T> read_array(const std::string& key, ValueType element_type) const {
    const auto it = arrays_.find(key);
    if (it == arrays_.end())
      throw FormatError(where_, types_.count(key)
                                    ? "metadata '" + key + "' is a " +
                                          value_type_name(types_.at(key)) + ", not an array"
                                    : "has no metadata '" + key + "'");
    const ArrayEntry& a = it->second;
    if (a.element_type != element_type)
      throw FormatError(where_, "metadata '" + key + "' is an array of " +
                                    value_type_name(a.element_type) + ", expected " +
                                    value_type_name(element_type));
    Cursor c{file_.data(), file_.size(), a.offset, where_};
    std::vector<T> values;
    values.reserve(std::size_t(a.length));  // parse() checked that the file holds this many
    for (uint64_t i = 0; i < a.length; ++i) {
      const std::string what = "metadata '" + key + "'[" + std::to_string(i) + "]";
      if constexpr (std::is_same_v<T, std::string>)
        values.push_back(c.string(what));
      else
        values.push_back(c.read<T>(what));
    }
    return values;
  }

  static uint64_t scalar_size(ValueType t) {
    switch (t) {
      case ValueType::U8:
      case ValueType::I8:
      case ValueType::Bool:
        return 1;
      case ValueType::U16:
      case ValueType::I16:
        return 2;
      case ValueType::U32:
      case ValueType::I32:
      case ValueType::F32:
        return 4;
      case ValueType::U64:
      case ValueType::I64:
      case ValueType::F64:
        return 8;
      case ValueType::String:
        return 8;  // at least its length
      case ValueType::Array:
        return 12;  // at least its type and length
    }
    return 0;
  }

  ValueType value_type(Cursor& c, const std::string& key) {
    const auto t = c.read<uint32_t>("type of '" + key + "'");
    if (t > uint32_t(ValueType::F64))
      throw FormatError(where_,
                        "metadata '" + key + "' has unknown value type " + std::to_string(t));
    return static_cast<ValueType>(t);
  }

  // Reads one value; arrays over kMaxKeptArray elements are skipped (validated) and return null.
  nlohmann::json value(Cursor& c, ValueType t, const std::string& key, int depth) {
    switch (t) {
      case ValueType::U8:
        return c.read<uint8_t>(key);
      case ValueType::I8:
        return c.read<int8_t>(key);
      case ValueType::U16:
        return c.read<uint16_t>(key);
      case ValueType::I16:
        return c.read<int16_t>(key);
      case ValueType::U32:
        return c.read<uint32_t>(key);
      case ValueType::I32:
        return c.read<int32_t>(key);
      case ValueType::U64:
        return c.read<uint64_t>(key);
      case ValueType::I64:
        return c.read<int64_t>(key);
      case ValueType::F32:
        return c.read<float>(key);
      case ValueType::F64:
        return c.read<double>(key);
      case ValueType::Bool: {
        const auto b = c.read<uint8_t>(key);
        if (b > 1)
          throw FormatError(where_, "metadata '" + key + "': bool value " + std::to_string(b));
        return b == 1;
      }
      case ValueType::String:
        return c.string("metadata '" + key + "'");
      case ValueType::Array: {
        if (depth >= kMaxArrayDepth)
          throw FormatError(where_, "metadata '" + key + "': arrays nested deeper than " +
                                        std::to_string(kMaxArrayDepth));
        const ValueType et = value_type(c, key);
        const auto n = c.read<uint64_t>("length of '" + key + "'");
        if (depth == 0) arrays_[key] = {et, n, c.pos};
        // Every element takes at least scalar_size bytes: a length the file cannot hold is refused
        // before anything is allocated or walked.
        if (n > (c.size - c.pos) / scalar_size(et))
          throw FormatError(where_, "metadata '" + key + "': array of " + std::to_string(n) +
                                        " elements does not fit in the " +
                                        std::to_string(c.size - c.pos) + " bytes left");
        const bool keep = n <= kMaxKeptArray;
        nlohmann::json a = nlohmann::json::array();
        for (uint64_t i = 0; i < n; ++i) {
          auto v = value(c, et, key, depth + 1);
          if (keep) a.push_back(std::move(v));
        }
        if (!keep) {
          if (depth == 0) long_arrays_[key] = {et, n};
          return nullptr;
        }
        return a;
      }
    }
    return nullptr;
  }

  void parse() {
    where_ = path().string();
    Cursor c{file_.data(), file_.size(), 0, where_};
    c.need(4, "magic");
    if (std::memcmp(file_.data(), kMagic, 4) != 0)
      throw FormatError(where_, "not a GGUF file (the first 4 bytes are not \"GGUF\")");
    c.pos = 4;
    version_ = c.read<uint32_t>("version");
    if (version_ == 1)
      throw FormatError(
          where_,
          "GGUF version 1 (32-bit counts) is not supported; re-save it with a current llama.cpp");
    if (version_ != 2 && version_ != 3)
      throw FormatError(where_, "GGUF version " + std::to_string(version_) +
                                    (version_ >= 0x01000000 ? " (a big-endian file?)" : "") +
                                    " is not supported (expected 2 or 3, little-endian)");
    const auto n_tensors = c.read<uint64_t>("tensor count");
    const auto n_kv = c.read<uint64_t>("metadata count");
    // A key-value pair takes at least 8 + 4 + 1 bytes, a tensor info 8 + 4 + 8 + 4 + 8.
    if (n_kv > (c.size - c.pos) / 13)
      throw FormatError(where_,
                        "metadata count " + std::to_string(n_kv) + " cannot fit in the file");
    if (n_tensors > (c.size - c.pos) / 32)
      throw FormatError(where_,
                        "tensor count " + std::to_string(n_tensors) + " cannot fit in the file");

    metadata_ = nlohmann::json::object();
    for (uint64_t i = 0; i < n_kv; ++i) {
      const std::string key = c.string("metadata key " + std::to_string(i));
      if (metadata_.contains(key) || long_arrays_.count(key))
        throw FormatError(where_, "duplicate metadata key '" + key + "'");
      const ValueType t = value_type(c, key);
      keys_.push_back(key);
      types_[key] = t;
      auto v = value(c, t, key, 0);
      if (!long_arrays_.count(key)) metadata_[key] = std::move(v);
    }
    if (metadata_.contains("general.alignment")) {
      const auto& a = metadata_["general.alignment"];
      if (!a.is_number_unsigned() || a.get<uint64_t>() == 0 || a.get<uint64_t>() > (1u << 30) ||
          (a.get<uint64_t>() & (a.get<uint64_t>() - 1)) != 0)
        throw FormatError(where_, "general.alignment must be a power of two, got " + a.dump());
      alignment_ = a.get<uint64_t>();
    }

    std::map<std::string, std::size_t> seen;
    tensors_.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) {
      TensorInfo t;
      t.name = c.string("tensor name " + std::to_string(i));
      const std::string what = "tensor '" + t.name + "'";
      if (!seen.emplace(t.name, i).second) throw FormatError(where_, "duplicate " + what);
      const auto n_dims = c.read<uint32_t>(what + " n_dims");
      if (n_dims == 0 || n_dims > kMaxDims)
        throw FormatError(where_, what + " has " + std::to_string(n_dims) +
                                      " dimensions (expected 1 to " + std::to_string(kMaxDims) +
                                      ")");
      std::array<uint64_t, kMaxDims> ne{};
      uint64_t numel = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        ne[d] = c.read<uint64_t>(what + " dimension");
        if (ne[d] == 0 || ne[d] > (uint64_t(1) << 62) / numel)
          throw FormatError(where_, what + " has a zero or overflowing dimension");
        numel *= ne[d];
      }
      for (uint32_t d = n_dims; d-- > 0;) t.shape.push_back(static_cast<int64_t>(ne[d]));
      t.type = c.read<uint32_t>(what + " type");
      const auto layout = block_layout(t.type);
      if (!layout)
        throw FormatError(
            where_, what + " is stored as " + type_name(t.type) +
                        ", which this loader does not read (supported: F32, F16, BF16, Q8_0, "
                        "Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K; llama.cpp's llama-quantize "
                        "writes these with Q8_0, Q4_0, Q4_K_M, Q5_K_M or Q6_K)");
      if (ne[0] % layout->elements != 0)
        throw FormatError(where_, what + ": rows of " + std::to_string(ne[0]) +
                                      " elements are not whole " + type_name(t.type) +
                                      " blocks of " + std::to_string(layout->elements));
      t.nbytes = numel / layout->elements * layout->bytes;
      t.offset = c.read<uint64_t>(what + " offset");
      if (t.offset % alignment_ != 0)
        throw FormatError(where_, what + " offset " + std::to_string(t.offset) +
                                      " is not a multiple of the " + std::to_string(alignment_) +
                                      "-byte alignment");
      tensors_.push_back(std::move(t));
    }

    // The data section starts at the next multiple of the alignment.
    const uint64_t data_start = (c.pos + alignment_ - 1) / alignment_ * alignment_;
    if (data_start > c.size && n_tensors > 0)
      throw FormatError(where_, "truncated: the data section would start at byte " +
                                    std::to_string(data_start) + " of a " + std::to_string(c.size) +
                                    "-byte file");
    const uint64_t data_size = data_start <= c.size ? c.size - data_start : 0;
    std::vector<const TensorInfo*> by_offset;
    for (auto& t : tensors_) {
      if (t.offset > data_size || t.nbytes > data_size - t.offset)
        throw FormatError(where_, "tensor '" + t.name + "' data [" + std::to_string(t.offset) +
                                      ", +" + std::to_string(t.nbytes) + ") lies outside the " +
                                      std::to_string(data_size) + "-byte data section");
      t.data = file_.data() + data_start + t.offset;
      by_offset.push_back(&t);
    }
    std::sort(by_offset.begin(), by_offset.end(),
              [](auto* a, auto* b) { return a->offset < b->offset; });
    for (std::size_t i = 1; i < by_offset.size(); ++i)
      if (by_offset[i]->offset < by_offset[i - 1]->offset + by_offset[i - 1]->nbytes)
        throw FormatError(where_, "data of tensors '" + by_offset[i - 1]->name + "' and '" +
                                      by_offset[i]->name + "' overlap");
  }

  MappedFile file_;
  std::string where_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  nlohmann::json metadata_;
  std::map<std::string, std::pair<ValueType, uint64_t>> long_arrays_;
  std::vector<std::string> keys_;
  std::map<std::string, ValueType> types_;
  std::map<std::string, ArrayEntry> arrays_;
  std::vector<TensorInfo> tensors_;
};

// Writes GGUF version 3 files: metadata from JSON values (with the GGUF type given where JSON's is
// ambiguous), then tensors as given, each aligned to 32 bytes. A tensor's bytes may be produced
// only when it is written, so a model is converted one tensor at a time.
class Writer {
 public:
  // A metadata entry: integers need their GGUF width, which JSON does not carry.
  void set(const std::string& key, ValueType type, nlohmann::json value) {
    metadata_.push_back({key, type, ValueType::U8, std::move(value)});
  }
  void set_array(const std::string& key, ValueType element_type, nlohmann::json values) {
    metadata_.push_back({key, ValueType::Array, element_type, std::move(values)});
  }
  using Producer = std::function<std::vector<std::byte>()>;
  // A tensor of `shape` (outermost first) whose bytes `produce` returns in `type`'s layout.
  void add(const std::string& name, const Shape& shape, TensorType type, Producer produce) {
    const auto layout = block_layout(uint32_t(type));
    if (!layout) throw InvalidArgument(name, "tensor type " + std::to_string(int(type)));
    const uint64_t n = uint64_t(num_elements(shape));
    if (shape.empty() || shape.back() % int64_t(layout->elements) != 0)
      throw InvalidArgument(name, "rows of " + shape_string(shape) + " are not whole blocks of " +
                                      std::to_string(layout->elements));
    tensors_.push_back(
        {name, shape, type, n / layout->elements * layout->bytes, std::move(produce)});
  }
  // A tensor whose bytes are already in `type`'s layout.
  void add(const std::string& name, const Shape& shape, TensorType type,
           std::vector<std::byte> bytes) {
    tensors_.push_back({name, shape, type, bytes.size(), [b = std::move(bytes)] { return b; }});
  }

  // Writes the file through an OutputFile (complete or not at all), reporting bytes to `progress`.
  void write(const std::filesystem::path& path, const Progress& progress = {}) const {
    auto aligned = [](uint64_t n) {
      return (n + kDefaultAlignment - 1) / kDefaultAlignment * kDefaultAlignment;
    };
    // The header (metadata and tensor infos) is assembled in memory; the data is streamed after it.
    std::vector<std::byte> buf;
    auto put_u32 = [&](uint32_t v) { append(buf, v); };
    auto put_u64 = [&](uint64_t v) { append(buf, v); };
    auto put_string = [&](const std::string& s) {
      put_u64(s.size());
      const auto* b = reinterpret_cast<const std::byte*>(s.data());
      buf.insert(buf.end(), b, b + s.size());
    };
    auto put_scalar = [&](ValueType t, const nlohmann::json& v) {
      switch (t) {
        case ValueType::U8:
          return append(buf, v.get<uint8_t>());
        case ValueType::I8:
          return append(buf, v.get<int8_t>());
        case ValueType::U16:
          return append(buf, v.get<uint16_t>());
        case ValueType::I16:
          return append(buf, v.get<int16_t>());
        case ValueType::U32:
          return append(buf, v.get<uint32_t>());
        case ValueType::I32:
          return append(buf, v.get<int32_t>());
        case ValueType::U64:
          return append(buf, v.get<uint64_t>());
        case ValueType::I64:
          return append(buf, v.get<int64_t>());
        case ValueType::F32:
          return append(buf, v.get<float>());
        case ValueType::F64:
          return append(buf, v.get<double>());
        case ValueType::Bool:
          return append(buf, uint8_t(v.get<bool>() ? 1 : 0));
        case ValueType::String:
          return put_string(v.get<std::string>());
        case ValueType::Array:
          throw InvalidArgument("gguf", "nested arrays are not written");
      }
    };
    buf.insert(buf.end(), reinterpret_cast<const std::byte*>(kMagic),
               reinterpret_cast<const std::byte*>(kMagic) + 4);
    put_u32(3);
    put_u64(tensors_.size());
    put_u64(metadata_.size());
    for (const auto& m : metadata_) {
      put_string(m.key);
      put_u32(uint32_t(m.type));
      if (m.type == ValueType::Array) {
        put_u32(uint32_t(m.element_type));
        put_u64(m.value.size());
        for (const auto& e : m.value) put_scalar(m.element_type, e);
      } else {
        put_scalar(m.type, m.value);
      }
    }
    uint64_t offset = 0;
    for (const auto& t : tensors_) {
      put_string(t.name);
      put_u32(uint32_t(t.shape.size()));
      for (auto d = t.shape.rbegin(); d != t.shape.rend(); ++d) put_u64(uint64_t(*d));
      put_u32(uint32_t(t.type));
      put_u64(offset);
      offset = aligned(offset + t.nbytes);
    }
    buf.resize(aligned(buf.size()));
    const uint64_t total = buf.size() + offset;
    OutputFile out(path);
    out.write(buf.data(), buf.size());
    const char zeros[kDefaultAlignment] = {};
    for (const auto& t : tensors_) {
      if (progress) progress(out.bytes_written(), total);
      const std::vector<std::byte> bytes = t.produce();
      if (bytes.size() != t.nbytes)
        throw InvalidArgument(t.name, "producer returned " + std::to_string(bytes.size()) +
                                          " bytes, " + std::to_string(t.nbytes) + " expected");
      out.write(bytes.data(), bytes.size());
      out.write(zeros, aligned(t.nbytes) - t.nbytes);
    }
    out.commit();
    if (progress) progress(total, total);
  }

 private:
  // Appends v's little-endian bytes (the machine's order: GGUF is read here on little-endian only).
  template <typename T>
  static void append(std::vector<std::byte>& buf, T v) {
    const auto* b = reinterpret_cast<const std::byte*>(&v);
    buf.insert(buf.end(), b, b + sizeof(T));
  }

  struct Entry {
    std::string key;
    ValueType type, element_type;
    nlohmann::json value;
  };
  struct Tensor {
    std::string name;
    Shape shape;
    TensorType type;
    uint64_t nbytes;
    Producer produce;
  };
  std::vector<Entry> metadata_;
  std::vector<Tensor> tensors_;
};

}  // namespace gemma3::inline GEMMA3_MODE::gguf
