// Tensors: dtypes of published checkpoints, zero-copy views over mapped weights, and the Eigen
// aliases every model header uses for activations.
#pragma once

#include "gemma3/build_mode.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "gemma3/error.hpp"
#include "gemma3/quant.hpp"

namespace gemma3::inline GEMMA3_MODE {

// Activations: contiguous row-major [rows, cols] (one row per token).
template <typename T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
template <typename T>
using MatRef = Eigen::Ref<Mat<T>>;
template <typename T>
using ConstMatRef = Eigen::Ref<const Mat<T>>;
template <typename T>
using MatMap = Eigen::Map<Mat<T>>;

// How a tensor's elements are stored: the float types of published checkpoints, and ggml's
// block-quantized types (quant.hpp), which GGUF files hold and which stay quantized in memory.
enum class DType { BF16, F16, F32, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K };

inline constexpr bool is_quantized(DType d) {
  return d != DType::BF16 && d != DType::F16 && d != DType::F32;
}
inline constexpr quant::Type quant_type(DType d) {
  return static_cast<quant::Type>(int(d) - int(DType::Q8_0));
}
inline constexpr DType dtype_of(quant::Type t) {
  return static_cast<DType>(int(t) + int(DType::Q8_0));
}

// Bytes per element of a float type (quantized types have none: see row_bytes).
inline std::size_t dtype_size(DType d) {
  return d == DType::F32 ? 4 : 2;
}

// Bytes of a row of `cols` elements: for a quantized type, whole blocks.
inline int64_t row_bytes(DType d, int64_t cols) {
  return is_quantized(d) ? quant::row_bytes(quant_type(d), cols) : cols * int64_t(dtype_size(d));
}

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::BF16:
      return "BF16";
    case DType::F16:
      return "F16";
    case DType::F32:
      return "F32";
    default:
      return quant::name(quant_type(d));
  }
}

using Shape = std::vector<int64_t>;

inline int64_t num_elements(const Shape& s) {
  return std::accumulate(s.begin(), s.end(), int64_t{1}, std::multiplies<>());
}

inline std::string shape_string(const Shape& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// bf16 is the top half of an IEEE f32. Rounding to nearest-even, as torch's .to(bfloat16) does.
inline float bf16_to_float(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
inline float round_to_bf16(float f) {
  return bf16_to_float(float_to_bf16(f));
}

// A read-only view of one checkpoint tensor: its name, dtype, shape and bytes (usually inside a
// memory-mapped file). Row-major, as safetensors stores PyTorch tensors; a quantized matrix copied
// into memory may have its rows interleaved in panels for the int8 kernels (quant::kPanelRows).
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  const std::byte* data = nullptr;
  bool interleaved = false;  // rows in panels (quant::interleave_panel), not in file order

  int64_t numel() const { return num_elements(shape); }
  std::size_t nbytes() const { return std::size_t(rows() * row_bytes(dtype, cols())); }
  // Rows and columns of a tensor seen as a matrix: the first dimension, and the product of the
  // others (a scalar or a 1-D tensor is a single row; a tensor with no rows still has its columns).
  int64_t rows() const { return shape.size() <= 1 ? 1 : shape.front(); }
  int64_t cols() const {
    if (shape.size() <= 1) return numel();
    return std::accumulate(shape.begin() + 1, shape.end(), int64_t(1), std::multiplies<>());
  }

  // Element i widened to T (of a quantized tensor: its block decoded; use rows_as for many).
  template <typename T>
  T at(int64_t i) const {
    if (is_quantized(dtype)) {
      const quant::Layout L = quant::layout(quant_type(dtype));
      const int64_t c = cols(), k = i % c;
      std::vector<std::byte> scratch;
      const std::byte* row = row_in_file_order(i / c, scratch);
      float block[256];
      quant::dequantize(quant_type(dtype), row + k / L.block_elements * L.block_bytes,
                        L.block_elements, block);
      return T(block[k % L.block_elements]);
    }
    switch (dtype) {
      case DType::BF16: {
        uint16_t b;
        std::memcpy(&b, data + 2 * i, 2);
        return T(bf16_to_float(b));
      }
      case DType::F16: {
        Eigen::half h;
        std::memcpy(&h, data + 2 * i, 2);
        return T(static_cast<float>(h));
      }
      case DType::F32: {
        float f;
        std::memcpy(&f, data + 4 * i, 4);
        return T(f);
      }
      default:
        return T(0);  // (quantized: above)
    }
  }

  // Rows [row0, row0 + n) of a 2-D tensor, widened to T: the plain path's way of reading weights.
  template <typename T>
  Mat<T> rows_as(int64_t row0, int64_t n) const {
    const int64_t c = cols();
    Mat<T> out(n, c);
    T* dst = out.data();
    if (is_quantized(dtype)) {  // decoded a row at a time (quant::dequantize)
      std::vector<float> row(static_cast<std::size_t>(c));
      std::vector<std::byte> scratch;
      for (int64_t r = 0; r < n; ++r) {
        quant::dequantize(quant_type(dtype), row_in_file_order(row0 + r, scratch), c, row.data());
        for (int64_t k = 0; k < c; ++k) dst[r * c + k] = T(row[std::size_t(k)]);
      }
      return out;
    }
    const int64_t begin = row0 * c, count = n * c;
    for (int64_t i = 0; i < count; ++i) dst[i] = at<T>(begin + i);
    return out;
  }
  // Row r of a quantized matrix in file order: in place, or (interleaved) gathered into `scratch`.
  const std::byte* row_in_file_order(int64_t r, std::vector<std::byte>& scratch) const {
    const int64_t stride = row_bytes(dtype, cols());
    if (!interleaved) return data + r * stride;
    scratch.resize(std::size_t(stride));
    return quant::interleaved_row(quant_type(dtype), data, rows(), cols(), r, scratch.data());
  }
  template <typename T>
  Mat<T> as() const {
    return rows_as<T>(0, rows());
  }
  // A 1-D tensor as a column vector.
  template <typename T>
  Vec<T> vec() const {
    Vec<T> v(numel());
    for (int64_t i = 0; i < numel(); ++i) v[i] = at<T>(i);
    return v;
  }
};

// Checks that a tensor has the expected shape; the error names the tensor and both shapes.
inline void expect_shape(const TensorView& t, const Shape& expected,
                         const std::string& where = {}) {
  if (t.shape != expected)
    throw TensorError(t.name, "expected shape " + shape_string(expected) + ", found " +
                                  shape_string(t.shape) +
                                  (where.empty() ? "" : " (in " + where + ")"));
}

}  // namespace gemma3::inline GEMMA3_MODE
