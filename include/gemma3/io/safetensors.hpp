// safetensors: a validating, zero-copy reader (single file and sharded checkpoints) and a writer.
//
// Format (huggingface/safetensors): u64 little-endian header length N, N bytes of JSON
//   {"__metadata__": {str: str}, "<name>": {"dtype": "BF16", "shape": [...], "data_offsets": [b,
//   e]}}
// then the data; offsets are relative to the end of the header. The reader checks everything before
// any tensor is used: the header length against the file, the JSON, every dtype, shape and byte
// range, duplicate names and overlapping ranges. A file from a stranger can fail to load, never
// crash.
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gemma3/error.hpp"
#include "gemma3/io/files.hpp"
#include "gemma3/io/mapped_file.hpp"
#include "gemma3/tensor.hpp"

namespace gemma3::inline GEMMA3_MODE {

namespace detail {
// A header larger than this is not a checkpoint header (the reference implementation caps it at
// 100 MB too); refusing it bounds what a hostile file can make us parse.
inline constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

inline std::optional<DType> parse_dtype(const std::string& s) {
  if (s == "BF16") return DType::BF16;
  if (s == "F16") return DType::F16;
  if (s == "F32") return DType::F32;
  return std::nullopt;
}

// Parses JSON and rejects duplicate keys in the top-level object (nlohmann keeps the last one
// silently, which would hide a malformed checkpoint).
inline nlohmann::json parse_json_no_duplicates(const char* begin, const char* end,
                                               const std::string& what) {
  std::set<std::string> seen;
  std::string duplicate;
  auto cb = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1 &&
        !seen.insert(parsed.get<std::string>()).second && duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(begin, end, cb);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(what, std::string("invalid JSON header: ") + e.what());
  }
  if (!duplicate.empty()) throw FormatError(what, "duplicate tensor name '" + duplicate + "'");
  return j;
}
}  // namespace detail

// One .safetensors file, mapped (or read into huge pages: Residency) and validated.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path,
                           Residency residency = Residency::Mapped, const Progress& progress = {})
      : file_(path, residency, progress) {
    parse();
  }

  const std::filesystem::path& path() const { return file_.path(); }
  const MappedFile& mapped() const { return file_; }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return tensors_.count(name) > 0; }
  const TensorView& at(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) throw TensorError(name, "not in " + path().string());
    return it->second;
  }

 private:
  void parse() {
    const std::string where = path().string();
    const std::size_t size = file_.size();
    if (size < 8)
      throw FormatError(where,
                        "truncated: " + std::to_string(size) +
                            " bytes, a safetensors file starts with an 8-byte header length");
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | uint64_t(std::to_integer<uint8_t>(file_.data()[i]));
    if (n > detail::kMaxSafetensorsHeader)
      throw FormatError(where, "header length " + std::to_string(n) + " exceeds the " +
                                   std::to_string(detail::kMaxSafetensorsHeader) + "-byte limit");
    if (n > size - 8)
      throw FormatError(where, "header length " + std::to_string(n) + " runs past the end of the " +
                                   std::to_string(size) + "-byte file");
    const char* json_begin = reinterpret_cast<const char*>(file_.data() + 8);
    const nlohmann::json header =
        detail::parse_json_no_duplicates(json_begin, json_begin + n, where);
    if (!header.is_object()) throw FormatError(where, "header is not a JSON object");

    const std::byte* data = file_.data() + 8 + n;
    const uint64_t data_size = size - 8 - n;
    std::vector<std::pair<uint64_t, const TensorView*>>
        ranges;  // (begin, tensor) for overlap check
    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") {
        if (!entry.is_object()) throw FormatError(where, "__metadata__ is not an object");
        for (const auto& [k, v] : entry.items()) {
          if (!v.is_string()) throw FormatError(where, "__metadata__." + k + " is not a string");
          metadata_[k] = v.get<std::string>();
        }
        continue;
      }
      const std::string what = where + ": tensor '" + name + "'";
      if (!entry.is_object()) throw FormatError(what, "entry is not an object");
      if (!entry.contains("dtype") || !entry["dtype"].is_string())
        throw FormatError(what, "missing or non-string \"dtype\"");
      const auto dtype = detail::parse_dtype(entry["dtype"].get<std::string>());
      if (!dtype)
        throw FormatError(
            what, "unsupported dtype " + entry["dtype"].dump() + " (expected BF16, F16 or F32)");
      if (!entry.contains("shape") || !entry["shape"].is_array())
        throw FormatError(what, "missing or non-list \"shape\"");
      Shape shape;
      uint64_t numel = 1;
      // At most 2^62 bytes, so that neither the element count nor the byte count can wrap.
      const uint64_t max_numel = (uint64_t(1) << 62) / dtype_size(*dtype);
      for (const auto& d : entry["shape"]) {
        if (!d.is_number_unsigned())
          throw FormatError(what, "shape has a non-integer or negative dimension");
        const uint64_t v = d.get<uint64_t>();
        if (v != 0 && numel > max_numel / v) throw FormatError(what, "shape overflows");
        numel *= v;
        shape.push_back(static_cast<int64_t>(v));
      }
      const auto& offsets = entry.value("data_offsets", nlohmann::json());
      if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
          !offsets[1].is_number_unsigned())
        throw FormatError(what, "\"data_offsets\" must be two non-negative integers [begin, end]");
      const uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
      if (begin > end) throw FormatError(what, "data_offsets begin > end");
      if (end > data_size)
        throw FormatError(what, "data range [" + std::to_string(begin) + ", " +
                                    std::to_string(end) + ") lies outside the " +
                                    std::to_string(data_size) + "-byte data section");
      const uint64_t expected = numel * dtype_size(*dtype);
      if (end - begin != expected)
        throw FormatError(what, "shape " + shape_string(shape) + " x " + dtype_name(*dtype) +
                                    " needs " + std::to_string(expected) +
                                    " bytes, data_offsets span " + std::to_string(end - begin));
      auto [it, inserted] = tensors_.emplace(
          name, TensorView{.name = name, .dtype = *dtype, .shape = shape, .data = data + begin});
      ranges.emplace_back(begin, &it->second);
    }
    // Ranges must not overlap: sort by begin and check each against the previous end.
    std::sort(ranges.begin(), ranges.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (std::size_t i = 1; i < ranges.size(); ++i) {
      const auto& [prev_begin, prev] = ranges[i - 1];
      if (prev->nbytes() > 0 && ranges[i].second->nbytes() > 0 &&
          ranges[i].first < prev_begin + prev->nbytes())
        throw FormatError(where, "data ranges of tensors '" + prev->name + "' and '" +
                                     ranges[i].second->name + "' overlap");
    }
  }

  MappedFile file_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint directory: `model.safetensors`, or the shards listed by
// `model.safetensors.index.json`. Views stay valid while the TensorStore lives.
class TensorStore {
 public:
  static constexpr const char* kSingleFile = "model.safetensors";
  static constexpr const char* kIndexFile = "model.safetensors.index.json";

  // `progress` hears of the bytes read into huge pages, over all files.
  static TensorStore open(const std::filesystem::path& dir, Residency residency = Residency::Mapped,
                          const Progress& progress = {}) {
    TensorStore store;
    if (std::filesystem::exists(dir / kIndexFile))
      store.open_sharded(dir, residency, progress);
    else if (std::filesystem::exists(dir / kSingleFile))
      store.add_file(dir / kSingleFile, residency, progress);
    else
      throw IoError(dir.string(), std::string("no ") + kSingleFile + " or " + kIndexFile + " here");
    return store;
  }

  // Adds every tensor of one file; names must be unique across files.
  void add_file(const std::filesystem::path& path, Residency residency = Residency::Mapped,
                const Progress& progress = {}) {
    auto file = std::make_shared<const SafetensorsFile>(path, residency, progress);
    add(file->path(), file, file->tensors(), &file->mapped());
  }

  // Adds tensors from another source (a GGUF file, say): `owner` keeps their bytes alive, and
  // `mapped` (owned by `owner`) is the file they are read from, if any.
  void add(const std::filesystem::path& path, std::shared_ptr<const void> owner,
           const std::map<std::string, TensorView>& tensors, const MappedFile* mapped = nullptr) {
    if (mapped) mapped_.push_back(mapped);
    for (const auto& [name, view] : tensors) {
      if (!tensors_.emplace(name, view).second)
        throw FormatError(path.string(), "tensor '" + name + "' also appears in another shard");
      file_of_[name] = path.string();
    }
    files_.push_back(path);
    owners_.push_back(std::move(owner));
  }

  bool contains(const std::string& name) const { return tensors_.count(name) > 0; }
  const TensorView& at(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) throw TensorError(name, "missing from the checkpoint");
    return it->second;
  }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::vector<std::filesystem::path>& files() const { return files_; }
  // The file tensor `name` is read from (empty if there is no such tensor).
  std::string tensor_file(const std::string& name) const {
    auto it = file_of_.find(name);
    return it == file_of_.end() ? std::string() : it->second;
  }

  // MappedFile::check_unchanged on every file the tensors are read from.
  void check_unchanged() const {
    for (const MappedFile* f : mapped_) f->check_unchanged();
  }

 private:
  void open_sharded(const std::filesystem::path& dir, Residency residency,
                    const Progress& progress) {
    const auto index_path = dir / kIndexFile;
    const std::string text = read_file(index_path, "safetensors index", 256 << 20);
    const auto index = detail::parse_json_no_duplicates(text.data(), text.data() + text.size(),
                                                        index_path.string());
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      throw FormatError(index_path.string(), "expected an object with a \"weight_map\" object");
    std::map<std::string, std::string> weight_map;
    std::set<std::string> shards;
    for (const auto& [name, file] : index["weight_map"].items()) {
      if (!file.is_string())
        throw FormatError(index_path.string(), "weight_map['" + name + "'] is not a string");
      const std::string shard = file.get<std::string>();
      // Shards live beside the index: refuse paths that leave the directory.
      if (shard.empty() || shard.find('/') != std::string::npos ||
          shard.find('\\') != std::string::npos || shard == "." || shard == "..")
        throw FormatError(index_path.string(),
                          "weight_map['" + name + "'] = '" + shard +
                              "' is not a file name in the checkpoint directory");
      weight_map[name] = shard;
      shards.insert(shard);
    }
    // Progress over all shards: each file's bytes after those of the files before it.
    uint64_t total = 0, before = 0;
    std::error_code ec;
    for (const auto& shard : shards) total += std::filesystem::file_size(dir / shard, ec);
    for (const auto& shard : shards) {
      uint64_t size = 0;
      add_file(dir / shard, residency, [&](uint64_t done, uint64_t file_size) {
        size = file_size;
        if (progress) progress(std::min(before + done, total), total);
      });
      before += size;
    }
    for (const auto& [name, shard] : weight_map) {
      if (!contains(name))
        throw TensorError(name, "listed in " + index_path.string() + " but missing from " + shard);
      if (std::filesystem::path(tensor_file(name)).filename() != shard)
        throw TensorError(name, "listed in " + index_path.string() + " under " + shard +
                                    " but stored in " + tensor_file(name));
    }
    for (const auto& [name, view] : tensors_)
      if (!weight_map.count(name))
        throw TensorError(
            name, "stored in " + tensor_file(name) + " but not listed in " + index_path.string());
  }

  std::vector<std::filesystem::path> files_;
  std::vector<std::shared_ptr<const void>> owners_;
  std::vector<const MappedFile*> mapped_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> file_of_;
};

// Writes safetensors files as `save_pretrained` does: tensors sorted by name, header padded with
// spaces to a multiple of 8, `__metadata__ = {"format": "pt"}`.
class SafetensorsWriter {
 public:
  // Bytes produced on demand when the file is written, so that a writer of a multi-GB checkpoint
  // never holds more than one tensor in memory.
  using Producer = std::function<std::vector<std::byte>()>;

  void add(const std::string& name, DType dtype, const Shape& shape, Producer produce) {
    if (!entries_.emplace(name, Entry{dtype, shape, std::move(produce)}).second)
      throw InvalidArgument(name, "added twice");
  }
  void add(const std::string& name, DType dtype, const Shape& shape, std::vector<std::byte> bytes) {
    if (bytes.size() != std::size_t(num_elements(shape)) * dtype_size(dtype))
      throw InvalidArgument(name, "byte size does not match shape " + shape_string(shape));
    auto shared = std::make_shared<std::vector<std::byte>>(std::move(bytes));
    add(name, dtype, shape, [shared] { return *shared; });
  }
  std::size_t total_bytes() const {
    std::size_t n = 0;
    for (const auto& [name, e] : entries_) n += e.nbytes();
    return n;
  }
  bool empty() const { return entries_.empty(); }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [name, e] : entries_) out.push_back(name);
    return out;
  }

  // Writes the file through an OutputFile (complete or not at all), reporting bytes to `progress`.
  void write(const std::filesystem::path& path, const Progress& progress = {}) const {
    nlohmann::json header;
    header["__metadata__"] = {{"format", "pt"}};
    uint64_t offset = 0;
    for (const auto& [name, e] : entries_) {
      header[name] = {{"dtype", dtype_name(e.dtype)},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + e.nbytes()}}};
      offset += e.nbytes();
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    OutputFile out(path);
    const uint64_t n = text.size(), total = 8 + n + offset;
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
    out.write(len, 8);
    out.write(text);
    for (const auto& [name, e] : entries_) {
      if (progress) progress(out.bytes_written(), total);
      const std::vector<std::byte> bytes = e.produce();
      if (bytes.size() != e.nbytes())
        throw InvalidArgument(name, "producer returned " + std::to_string(bytes.size()) +
                                        " bytes, shape " + shape_string(e.shape) + " needs " +
                                        std::to_string(e.nbytes()));
      out.write(bytes.data(), bytes.size());
    }
    out.commit();
    if (progress) progress(total, total);
  }

 private:
  struct Entry {
    DType dtype;
    Shape shape;
    Producer produce;
    std::size_t nbytes() const { return std::size_t(num_elements(shape)) * dtype_size(dtype); }
  };
  std::map<std::string, Entry> entries_;
};

}  // namespace gemma3::inline GEMMA3_MODE
