// Tensors: dtypes of published checkpoints, zero-copy views over mapped weights, and the Eigen
// aliases every model header uses for activations.
#pragma once

#include "gemma3/build_mode.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "gemma3/error.hpp"

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

enum class DType { BF16, F16, F32 };

inline std::size_t dtype_size(DType d) {
  return d == DType::F32 ? 4 : 2;
}

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::BF16:
      return "BF16";
    case DType::F16:
      return "F16";
    case DType::F32:
      return "F32";
  }
  return "?";
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
// memory-mapped file). Row-major, as safetensors stores PyTorch tensors.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  const std::byte* data = nullptr;

  int64_t numel() const { return num_elements(shape); }
  std::size_t nbytes() const { return std::size_t(numel()) * dtype_size(dtype); }
  // Rows and columns of a 2-D tensor seen as a matrix (1-D tensors are a single row).
  int64_t rows() const { return shape.size() == 1 ? 1 : shape.front(); }
  int64_t cols() const { return shape.empty() ? 1 : numel() / rows(); }

  // Element i widened to T.
  template <typename T>
  T at(int64_t i) const {
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
    }
    return T(0);
  }

  // Rows [row0, row0 + n) of a 2-D tensor, widened to T: the plain path's way of reading weights.
  template <typename T>
  Mat<T> rows_as(int64_t row0, int64_t n) const {
    const int64_t c = cols();
    Mat<T> out(n, c);
    T* dst = out.data();
    const int64_t begin = row0 * c, count = n * c;
    for (int64_t i = 0; i < count; ++i) dst[i] = at<T>(begin + i);
    return out;
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
