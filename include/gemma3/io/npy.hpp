// NumPy .npy files (format versions 1-3, C order, little-endian): the format of the reference
// fixtures and of `gemma3 dump`. Element types: float32, float64, int32, int64, uint8.
#pragma once

#include "gemma3/build_mode.hpp"

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "gemma3/error.hpp"
#include "gemma3/io/files.hpp"
#include "gemma3/tensor.hpp"

namespace gemma3::inline GEMMA3_MODE {

namespace detail {
template <typename T>
constexpr const char* npy_descr() {
  if constexpr (std::is_same_v<T, float>)
    return "<f4";
  else if constexpr (std::is_same_v<T, double>)
    return "<f8";
  else if constexpr (std::is_same_v<T, int32_t>)
    return "<i4";
  else if constexpr (std::is_same_v<T, int64_t>)
    return "<i8";
  else if constexpr (std::is_same_v<T, uint8_t>)
    return "|u1";
  else
    static_assert(sizeof(T) == 0, "unsupported .npy element type");
}

inline std::size_t npy_item_size(const std::string& descr) {
  if (descr == "<f4" || descr == "<i4") return 4;
  if (descr == "<f8" || descr == "<i8") return 8;
  if (descr == "|u1" || descr == "<u1") return 1;
  return 0;
}

// The value of `key` in the header's Python dict literal, as raw text up to the next top-level
// comma.
inline std::string npy_header_value(const std::string& header, const std::string& key,
                                    const std::string& where) {
  const std::string quoted = "'" + key + "'";
  auto k = header.find(quoted);
  if (k == std::string::npos) throw FormatError(where, "header has no " + quoted);
  auto colon = header.find(':', k + quoted.size());
  if (colon == std::string::npos)
    throw FormatError(where, "header entry " + quoted + " has no value");
  std::size_t i = colon + 1;
  while (i < header.size() && header[i] == ' ') ++i;
  std::size_t j = i;
  if (j < header.size() && header[j] == '(') {
    j = header.find(')', j);
    if (j == std::string::npos) throw FormatError(where, "unterminated shape tuple");
    return header.substr(i, j - i + 1);
  }
  while (j < header.size() && header[j] != ',' && header[j] != '}') ++j;
  return header.substr(i, j - i);
}
}  // namespace detail

// A loaded .npy array: shape, element type and raw little-endian bytes.
struct NpyArray {
  Shape shape;
  std::string descr;  // "<f4", "<f8", "<i4", "<i8", "|u1"
  std::vector<std::byte> bytes;

  int64_t numel() const { return num_elements(shape); }

  // All elements converted to T. Integer T (token ids) takes only values it holds exactly: a
  // fraction, an infinity, a NaN or a value out of T's range is an InvalidArgument, not a silently
  // different id.
  template <typename T>
  std::vector<T> values() const {
    std::vector<T> out(static_cast<std::size_t>(numel()));
    auto read = [&]<typename S>(S) {
      for (std::size_t i = 0; i < out.size(); ++i) {
        S s;
        std::memcpy(&s, bytes.data() + i * sizeof(S), sizeof(S));
        if constexpr (std::is_integral_v<T>) {
          bool exact;
          if constexpr (std::is_floating_point_v<S>) {
            // [min, max + 1): both bounds are powers of two (or 0), exact in S; NaN fails both.
            const S lo = S(std::numeric_limits<T>::min()),
                    hi = S(2) * S(std::numeric_limits<T>::max() / 2 + 1);
            exact = s >= lo && s < hi && S(static_cast<T>(s)) == s;
          } else {
            exact = std::in_range<T>(s);
          }
          if (!exact)
            throw InvalidArgument("npy", "element " + std::to_string(i) + " of a " + descr +
                                             " array (" + std::to_string(s) +
                                             ") is not a value of the requested integer type");
        }
        out[i] = static_cast<T>(s);
      }
    };
    if (descr == "<f4")
      read(float{});
    else if (descr == "<f8")
      read(double{});
    else if (descr == "<i4")
      read(int32_t{});
    else if (descr == "<i8")
      read(int64_t{});
    else
      read(uint8_t{});
    return out;
  }

  // A 2-D array (or a 1-D one as one row; 3-D+ flattened to [shape[0] * ..., last]) as a matrix.
  template <typename T>
  Mat<T> matrix() const {
    const int64_t cols = shape.empty() ? 1 : shape.back();
    const int64_t rows = cols == 0 ? 0 : numel() / cols;
    auto v = values<T>();
    return Eigen::Map<Mat<T>>(v.data(), rows, cols);
  }
};

inline NpyArray read_npy(const std::filesystem::path& path) {
  const std::string where = path.string();
  check_regular_file(path);  // a FIFO or a directory is refused here, without blocking
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(where, "cannot open: " + detail::errno_message(errno));
  in.seekg(0, std::ios::end);
  const auto file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  char magic[8] = {};
  if (file_size < 10 || !in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    throw FormatError(where, "not a .npy file (bad magic)");
  const int major = static_cast<unsigned char>(magic[6]);
  uint64_t header_len = 0;
  if (major == 1) {
    unsigned char b[2];
    in.read(reinterpret_cast<char*>(b), 2);
    header_len = b[0] | (b[1] << 8);
  } else if (major == 2 || major == 3) {
    unsigned char b[4];
    in.read(reinterpret_cast<char*>(b), 4);
    header_len = uint64_t(b[0]) | uint64_t(b[1]) << 8 | uint64_t(b[2]) << 16 | uint64_t(b[3]) << 24;
  } else {
    throw FormatError(where, "unsupported .npy version " + std::to_string(major));
  }
  const uint64_t prefix = major == 1 ? 10 : 12;
  if (!in || header_len > file_size - std::min(file_size, prefix))
    throw FormatError(where, "header length runs past the end of the file");
  std::string header(header_len, '\0');
  in.read(header.data(), std::streamsize(header_len));

  NpyArray a;
  std::string descr = detail::npy_header_value(header, "descr", where);
  if (descr.size() < 2 || (descr.front() != '\'' && descr.front() != '"'))
    throw FormatError(where, "bad descr " + descr);
  a.descr = descr.substr(1, descr.size() - 2);
  if (a.descr == "<u1") a.descr = "|u1";
  const std::size_t item = detail::npy_item_size(a.descr);
  if (item == 0)
    throw FormatError(where,
                      "unsupported dtype '" + a.descr + "' (expected <f4, <f8, <i4, <i8 or |u1)");
  if (detail::npy_header_value(header, "fortran_order", where) != "False")
    throw FormatError(where, "Fortran-order arrays are not supported");
  const std::string shape = detail::npy_header_value(header, "shape", where);
  if (shape.size() < 2 || shape.front() != '(') throw FormatError(where, "bad shape " + shape);
  uint64_t numel = 1;
  for (std::size_t i = 1; i + 1 < shape.size();) {
    while (i + 1 < shape.size() && (shape[i] == ' ' || shape[i] == ',')) ++i;
    if (i + 1 >= shape.size()) break;
    std::size_t j = i;
    uint64_t d = 0;
    while (j + 1 < shape.size() && shape[j] >= '0' && shape[j] <= '9') {
      if (d > (uint64_t(1) << 40)) throw FormatError(where, "shape dimension too large");
      d = d * 10 + uint64_t(shape[j] - '0');
      ++j;
    }
    if (j == i) throw FormatError(where, "bad shape " + shape);
    if (d != 0 && numel > (uint64_t(1) << 50) / d) throw FormatError(where, "shape overflows");
    numel *= d;
    a.shape.push_back(int64_t(d));
    i = j;
  }
  const uint64_t data_bytes = numel * item;
  if (data_bytes != file_size - prefix - header_len)
    throw FormatError(where, "shape " + shape_string(a.shape) + " x " + a.descr + " needs " +
                                 std::to_string(data_bytes) + " data bytes, the file holds " +
                                 std::to_string(file_size - prefix - header_len));
  a.bytes.resize(data_bytes);
  in.read(reinterpret_cast<char*>(a.bytes.data()), std::streamsize(data_bytes));
  if (!in) throw IoError(where, "read failed");
  return a;
}

// Writes a C-order array of `shape` from `data` (numel(shape) elements) as .npy version 1.0,
// through an OutputFile: the file is complete or absent.
template <typename T>
void write_npy(const std::filesystem::path& path, const Shape& shape, const T* data) {
  std::string header =
      std::string("{'descr': '") + detail::npy_descr<T>() + "', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < shape.size(); ++i)
    header += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) header += ",";  // a 1-tuple, as Python writes it
  header += "), }";
  // Pad with spaces so that magic + length + header + '\n' is a multiple of 64 (NumPy's alignment).
  header.append(63 - (10 + header.size()) % 64, ' ');
  header += '\n';
  OutputFile out(path);
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  const char len_bytes[2] = {char(len & 0xff), char(len >> 8)};
  out.write(len_bytes, 2);
  out.write(header);
  out.write(data, std::size_t(num_elements(shape)) * sizeof(T));
  out.commit();
}

}  // namespace gemma3::inline GEMMA3_MODE
