// ggml's block-quantized weight formats (the ones llama.cpp's Q4_0, Q8_0, Q4_K_M, Q5_K_M and Q6_K
// presets write), defined here once as plain code: how a block is laid out, how it decodes to
// floats, how floats encode to it, and how the activations a quantized matrix multiplies are
// themselves quantized. The fused kernels (kernels/quantdot.hpp, kernels/simd.hpp) are tested
// against these.
//
// One form for every type. Each block decodes, group by group, as
//
//     w_j = a_g · q_j + b_g        q_j an unsigned 8-bit integer, a_g and b_g floats,
//
// with groups of 32 elements (16 for Q6_K, whose scales are per 16). unpack() produces that form;
// dequantize() is a·q + b (the values ggml's dequantize_row_* give, bit for bit but for the sign
// of a zero: d·(q - 8) is -0 where d < 0, a·q + b is +0); the fused kernels multiply the integers q
// by quantized activations and apply a and b once per group. The layouts are ggml's (ggml-common.h,
// block_q4_0 ... block_q6_K; decoding as ggml-quants.c dequantize_row_*), little-endian, f16
// scales:
//
//   type  elements bytes  layout                                    w
//   Q8_0     32     34    d, qs[32] int8                             d·q
//   Q4_0     32     18    d, qs[16] (low nibbles 0-15, high 16-31)   d·(q - 8)
//   Q4_1     32     20    d, m, qs[16]                               d·q + m
//   Q5_0     32     22    d, qh[4] (bit j: 5th bit of element j), qs d·(q - 16)
//   Q5_1     32     24    d, m, qh[4], qs[16]                        d·q + m
//   Q4_K    256    144    d, dmin, scales[12] (8 × 6-bit scale and   d·sc_s·q - dmin·m_s
//                         6-bit min), qs[128]: per 64 elements, low
//                         nibbles of 32 bytes then their high nibbles
//   Q5_K    256    176    as Q4_K plus qh[32]: bit 2i / 2i+1 of byte  d·sc_s·q - dmin·m_s
//                         l is the 5th bit of element l of the i-th
//                         64's first / second half
//   Q6_K    256    210    ql[128], qh[64], scales[16] int8, d: per   d·sc_s·(q - 32)
//                         128 elements, 4 bits from ql and 2 from qh
//
// The activations: a quantized matrix multiplies int8 activations, as llama.cpp's CPU backend does
// (its vec_dot types Q8_0 and Q8_K). Here every type uses the same scheme: x in blocks of 32, each
// scaled by d = max|x|/127 (f32) and rounded to the nearest integer, ties to even
// (quantize_activations). That is part of the definition of a product with quantized weights: the
// plain path computes it too (plain::linear), so fast and plain agree to the rounding of their
// sums.
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace gemma3::inline GEMMA3_MODE::quant {

enum class Type { Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K };
inline constexpr Type kAllTypes[] = {Type::Q8_0, Type::Q4_0, Type::Q4_1, Type::Q5_0,
                                     Type::Q5_1, Type::Q4_K, Type::Q5_K, Type::Q6_K};

struct Layout {
  int64_t block_elements;  // elements per block (a row is whole blocks)
  int64_t block_bytes;
  int64_t group;  // elements sharing one (a, b)
};

inline constexpr Layout layout(Type t) {
  switch (t) {
    case Type::Q8_0:
      return {32, 34, 32};
    case Type::Q4_0:
      return {32, 18, 32};
    case Type::Q4_1:
      return {32, 20, 32};
    case Type::Q5_0:
      return {32, 22, 32};
    case Type::Q5_1:
      return {32, 24, 32};
    case Type::Q4_K:
      return {256, 144, 32};
    case Type::Q5_K:
      return {256, 176, 32};
    case Type::Q6_K:
      return {256, 210, 16};
  }
  return {1, 1, 1};
}

inline const char* name(Type t) {
  constexpr const char* names[] = {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"};
  return names[int(t)];
}

// Bytes of a row of `cols` elements (cols a multiple of the block).
inline constexpr int64_t row_bytes(Type t, int64_t cols) {
  return cols / layout(t).block_elements * layout(t).block_bytes;
}

// The unpacking below is compiled into the kernels of each instruction set, so everything it calls
// is a template on the kernel's tag (`Tag`): an inline function compiled in an AVX-512 translation
// unit must not be the copy that the linker hands to generic code. Hence also no Eigen::half here
// (one copy for all): the f16 → f32 conversion is F16C's instruction where this copy's flags have
// it, else its definition (both exact).
template <class Tag = void>
inline float f16(const std::byte* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
#if defined(__F16C__)
  return _cvtsh_ss(h);  // the same exact conversion, in one instruction
#else
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1Fu,
                 mantissa = h & 0x3FFu;
  if (exponent == 0) {  // zero or subnormal: mantissa · 2^-24, exact in f32
    const float v = float(mantissa) * 0x1p-24f;
    return sign ? -v : v;
  }
  const uint32_t bits = exponent == 31 ? sign | 0x7F800000u | (mantissa << 13)
                                       : sign | ((exponent + 112) << 23) | (mantissa << 13);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
#endif
}
inline void put_f16(std::byte* p, float v) {
  const Eigen::half h(v);
  std::memcpy(p, &h, 2);
}

// Q4_K and Q5_K's scale and min of sub-block s (0-7), 6 bits each, packed in 12 bytes: s < 4 in the
// low 6 bits of bytes s and s + 4; s >= 4 in the nibbles of byte s + 4 with their top 2 bits in the
// top bits of bytes s - 4 and s (ggml's get_scale_min_k4).
template <class Tag = void>
inline void scale_min_k4(int s, const uint8_t* q, int& scale, int& min) {
  if (s < 4) {
    scale = q[s] & 63;
    min = q[s + 4] & 63;
  } else {
    scale = (q[s + 4] & 0xF) | ((q[s - 4] >> 6) << 4);
    min = (q[s + 4] >> 4) | ((q[s] >> 6) << 4);
  }
}

// The types whose offset is b = -Z·a, w = a·(q - Z): their zero point Z; 0 for the types with a
// free minimum (Q4_1, Q5_1, Q4_K, Q5_K).
inline constexpr int zero_point(Type t) {
  return t == Type::Q8_0   ? 128
         : t == Type::Q4_0 ? 8
         : t == Type::Q5_0 ? 16
         : t == Type::Q6_K ? 32
                           : 0;
}

// One block's (a, b) per group, a[groups] and b[groups]: the scales alone, for kernels that
// decode q in registers (kernels/quantdot.hpp) as well as for unpack_block.
template <Type T, class Tag = void>
inline void unpack_scales(const std::byte* block, float* a, float* b) {
  constexpr Type t = T;
  constexpr float z = float(zero_point(T));
  const auto* u = reinterpret_cast<const uint8_t*>(block);
  switch (t) {
    case Type::Q8_0:
    case Type::Q4_0:
    case Type::Q5_0:  // w = d·(q - Z)
      a[0] = f16<Tag>(block), b[0] = -z * a[0];
      return;
    case Type::Q4_1:
    case Type::Q5_1:  // w = d·q + m
      a[0] = f16<Tag>(block), b[0] = f16<Tag>(block + 2);
      return;
    case Type::Q4_K:
    case Type::Q5_K: {
      const float d = f16<Tag>(block), dmin = f16<Tag>(block + 2);
      int scale[8], m[8];
      for (int s = 0; s < 8; ++s) scale_min_k4<Tag>(s, u + 4, scale[s], m[s]);
      for (int s = 0; s < 8; ++s)  // (apart: a loop the compiler vectorises)
        a[s] = d * float(scale[s]), b[s] = -dmin * float(m[s]);
      return;
    }
    case Type::Q6_K: {
      const auto* scales = reinterpret_cast<const int8_t*>(u + 192);
      const float d = f16<Tag>(block + 208);
      for (int g = 0; g < 16; ++g) a[g] = d * float(scales[g]), b[g] = -z * a[g];
      return;
    }
  }
}

// (`omp simd` below asks for vectorisation that an -O1 build does not do; clang would warn of it.)
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

// One block in the common form: q[block_elements], a[groups], b[groups]. `Tag` only keeps the
// copies that the kernels compile for each instruction set apart (one symbol per instruction set:
// an inline function compiled with AVX-512 flags must not be what a generic caller links to).
template <Type T, class Tag = void>
inline void unpack_block(const std::byte* __restrict block, uint8_t* __restrict q,
                         float* __restrict a, float* __restrict b) {
  // (__restrict: q is bytes, which may alias anything; without it nothing here vectorises.)
  constexpr Type t = T;  // (the switch below folds to one case)
  const auto* u = reinterpret_cast<const uint8_t*>(block);
  switch (t) {
    case Type::Q8_0:  // int8 as unsigned q + 128
#pragma omp simd
      for (int j = 0; j < 32; ++j) q[j] = uint8_t(u[2 + j] ^ 0x80);
      break;
    case Type::Q4_0:
    case Type::Q4_1: {
      const bool min = t == Type::Q4_1;
      const uint8_t* qs = u + (min ? 4 : 2);
// (One loop per half: a loop the compiler vectorises, where one loop writing both halves
// was assembled byte by byte; measured 7× slower.)
#pragma omp simd
      for (int j = 0; j < 16; ++j) q[j] = qs[j] & 0xF;
#pragma omp simd
      for (int j = 0; j < 16; ++j) q[j + 16] = qs[j] >> 4;
      break;
    }
    case Type::Q5_0:
    case Type::Q5_1: {
      const bool min = t == Type::Q5_1;
      uint32_t qh;
      std::memcpy(&qh, u + (min ? 4 : 2), 4);
      const uint8_t* qs = u + (min ? 8 : 6);
#pragma omp simd
      for (int j = 0; j < 16; ++j) q[j] = uint8_t((qs[j] & 0xF) | (((qh >> j) & 1) << 4));
#pragma omp simd
      for (int j = 0; j < 16; ++j)
        q[j + 16] = uint8_t((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
      break;
    }
    case Type::Q4_K:
    case Type::Q5_K: {
      const bool five = t == Type::Q5_K;
      const uint8_t* qh = u + 16;
      const uint8_t* qs = u + (five ? 48 : 16);
      for (int s = 0; s < 8; ++s) {
        const uint8_t* bytes = qs + 32 * (s / 2);
        const int shift = 4 * (s % 2);
#pragma omp simd
        for (int l = 0; l < 32; ++l) {
          uint8_t v = uint8_t((bytes[l] >> shift) & 0xF);
          if (five) v |= uint8_t(((qh[l] >> s) & 1) << 4);
          q[32 * s + l] = v;
        }
      }
      break;
    }
    case Type::Q6_K: {
      const uint8_t* ql = u;
      const uint8_t* qh = u + 128;
      for (int half = 0; half < 2; ++half) {  // 128 elements each
        const uint8_t* l4 = ql + 64 * half;
        const uint8_t* h2 = qh + 32 * half;
        uint8_t* out = q + 128 * half;
#pragma omp simd
        for (int l = 0; l < 32; ++l) out[l] = uint8_t((l4[l] & 0xF) | ((h2[l] & 3) << 4));
#pragma omp simd
        for (int l = 0; l < 32; ++l)
          out[l + 32] = uint8_t((l4[l + 32] & 0xF) | (((h2[l] >> 2) & 3) << 4));
#pragma omp simd
        for (int l = 0; l < 32; ++l)
          out[l + 64] = uint8_t((l4[l] >> 4) | (((h2[l] >> 4) & 3) << 4));
#pragma omp simd
        for (int l = 0; l < 32; ++l)
          out[l + 96] = uint8_t((l4[l + 32] >> 4) | (((h2[l] >> 6) & 3) << 4));
      }
      break;
    }
  }
  unpack_scales<T, Tag>(block, a, b);
}

#if defined(__clang__)
#pragma clang diagnostic pop
#endif

// Calls f(std::integral_constant<Type, t>{}): code written once for a compile-time type.
template <class F>
inline decltype(auto) with_type(Type t, F&& f) {
  switch (t) {
    case Type::Q8_0:
      return f(std::integral_constant<Type, Type::Q8_0>{});
    case Type::Q4_0:
      return f(std::integral_constant<Type, Type::Q4_0>{});
    case Type::Q4_1:
      return f(std::integral_constant<Type, Type::Q4_1>{});
    case Type::Q5_0:
      return f(std::integral_constant<Type, Type::Q5_0>{});
    case Type::Q5_1:
      return f(std::integral_constant<Type, Type::Q5_1>{});
    case Type::Q4_K:
      return f(std::integral_constant<Type, Type::Q4_K>{});
    case Type::Q5_K:
      return f(std::integral_constant<Type, Type::Q5_K>{});
    case Type::Q6_K:
      break;
  }
  return f(std::integral_constant<Type, Type::Q6_K>{});
}

// A row of `in` elements (whole blocks) unpacked: q[in], a and b [in / group].
template <Type T, class Tag = void>
inline void unpack_row(const std::byte* __restrict row, int64_t in, uint8_t* __restrict q,
                       float* __restrict a, float* __restrict b) {
  constexpr Layout L = layout(T);
  constexpr int64_t groups = L.block_elements / L.group;
  for (int64_t blk = 0; blk < in / L.block_elements; ++blk)
    unpack_block<T, Tag>(row + blk * L.block_bytes, q + blk * L.block_elements, a + blk * groups,
                         b + blk * groups);
}

// One block of any type.
template <class Tag = void>
inline void unpack(Type t, const std::byte* block, uint8_t* q, float* a, float* b) {
  with_type(t, [&](auto type) { unpack_block<type.value, Tag>(block, q, a, b); });
}

// Decodes `n` elements (whole blocks) starting at the block at `data`: the readable definition.
inline void dequantize(Type t, const std::byte* data, int64_t n, float* out) {
  const Layout L = layout(t);
  const int64_t groups = L.block_elements / L.group;
  uint8_t q[256];
  float a[16], b[16];
  for (int64_t i = 0; i < n; i += L.block_elements, data += L.block_bytes) {
    unpack(t, data, q, a, b);
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t j = 0; j < L.group; ++j)
        out[i + g * L.group + j] = a[g] * float(q[g * L.group + j]) + b[g];
  }
}

// Rows interleaved in panels: the same bytes as the file's, in another order, made for the int8
// decode kernel (kernels/quantdot.hpp, panels()). In file order a row's blocks follow each other,
// so a kernel reading one row at a time decodes one block's scale and q per 32 weights and
// reduces each row across a register at the end. In a panel of kPanelRows rows, block c of all
// 16 rows is stored unit by unit: the rows' f16 words (d, and m or dmin where the type has them)
// side by side, word by word, and the rest of the block in 4-byte units, the rows' first 4 bytes
// side by side, then their next 4 bytes, and so on. One 512-bit load then holds the same 4 bytes
// of 16 rows, one row per 32-bit lane, so one vpdpbusd adds 4 products to each of 16 rows' sums,
// and one conversion and one FMA per group serve 16 rows (a K-quant's 6-bit scales are decoded
// once per lane for 16 rows, not once per row). Only the types with a panel kernel are
// interleaved; rows after the last whole panel stay in file order.
inline constexpr int64_t kPanelRows = 16;
inline constexpr bool interleavable(Type t) {
  return t == Type::Q8_0 || t == Type::Q4_0 || t == Type::Q5_0 || t == Type::Q4_K ||
         t == Type::Q5_K || t == Type::Q6_K;
}
// Where a block's f16 words lie, [begin, end) bytes: 2-byte units there, 4-byte units elsewhere
// (every other byte range of a block is a multiple of 4 bytes long). Q6_K's d is its last word.
struct HalfWords {
  int64_t begin, end;
};
inline constexpr HalfWords half_words(Type t) {
  switch (t) {
    case Type::Q4_1:
    case Type::Q5_1:
    case Type::Q4_K:
    case Type::Q5_K:
      return {0, 4};  // d, m (dmin)
    case Type::Q6_K:
      return {208, 210};
    default:
      return {0, 2};  // d
  }
}
// The rows of a [rows, cols] tensor of type t that are interleaved: the whole panels'.
inline constexpr int64_t interleaved_rows(int64_t rows) {
  return rows / kPanelRows * kPanelRows;
}
// Calls move(size, offset in the rows, offset in the panel) for each unit of the panel's rows: a
// panel of kPanelRows rows, row_bytes(t, cols) apart. Row l's copy of the unit of `size` bytes at
// byte `first` of a block lies at kPanelRows·first + size·l of the panel's block.
template <class Move>
inline void for_each_unit(Type t, int64_t cols, int64_t first_row, int64_t rows, Move&& move) {
  if (!interleavable(t))
    throw std::invalid_argument(std::string("quant: ") + name(t) + " rows are not interleaved");
  const Layout L = layout(t);
  const HalfWords words = half_words(t);
  const int64_t stride = row_bytes(t, cols);
  for (int64_t c = 0; c < cols / L.block_elements; ++c)
    for (int64_t l = first_row; l < first_row + rows; ++l) {
      const int64_t in_rows = l * stride + c * L.block_bytes,
                    in_panel = c * kPanelRows * L.block_bytes;
      for (int64_t k = 0; k < L.block_bytes;) {
        if (k >= words.begin && k < words.end) {
          move(std::integral_constant<int, 2>{}, in_rows + k, in_panel + kPanelRows * k + 2 * l);
          k += 2;
        } else {
          move(std::integral_constant<int, 4>{}, in_rows + k, in_panel + kPanelRows * k + 4 * l);
          k += 4;
        }
      }
    }
}

// One panel, from file order at `rows` into interleaved order at `panel`, and back.
inline void interleave_panel(Type t, const std::byte* rows, int64_t cols, std::byte* panel) {
  for_each_unit(t, cols, 0, kPanelRows, [&](auto size, int64_t in_rows, int64_t in_panel) {
    std::memcpy(panel + in_panel, rows + in_rows, size);
  });
}
inline void deinterleave_panel(Type t, const std::byte* panel, int64_t cols, std::byte* rows) {
  for_each_unit(t, cols, 0, kPanelRows, [&](auto size, int64_t in_rows, int64_t in_panel) {
    std::memcpy(rows + in_rows, panel + in_panel, size);
  });
}
// Row r of an interleaved [rows, cols] tensor at `data`, in file order: in place after the last
// whole panel, else gathered into `out` (row_bytes(t, cols) bytes). Returns where the row is.
inline const std::byte* interleaved_row(Type t, const std::byte* data, int64_t rows, int64_t cols,
                                        int64_t r, std::byte* out) {
  const int64_t stride = row_bytes(t, cols), l = r % kPanelRows;
  if (r >= interleaved_rows(rows)) return data + r * stride;
  const std::byte* panel = data + (r - l) * stride;
  for_each_unit(t, cols, l, 1, [&](auto size, int64_t in_rows, int64_t in_panel) {
    std::memcpy(out + in_rows - l * stride, panel + in_panel, size);
  });
  return out;
}

namespace detail {
// The product rounded to f32 before the next addition, as ggml's reference quantizers compute it:
// a compiler allowed to fuse x·id + 8.5 into one FMA (GCC's default, -ffp-contract=fast) rounds
// once instead, and a value within an ulp of a level's edge then lands on the other level
// (measured: 2 of 200000 Q5_0 blocks in a -march=native build). The volatile store forbids it.
inline float rounded(float product) {
  volatile float stored = product;
  return stored;
}

// Encodes 32 values with `levels` levels (16 or 32), with a minimum (Q4_1, Q5_1: w = d·q + m) or
// symmetric about the value of largest magnitude, which maps to the lowest level (Q4_0, Q5_0: the
// full range is used), as ggml's quantize_row_*_ref do. Writes d (and m) and the levels.
inline void quantize_levels(const float* x, int levels, bool with_min, float& d, float& m,
                            uint8_t* q) {
  if (with_min) {
    float lo = x[0], hi = x[0];
    for (int j = 1; j < 32; ++j) lo = std::min(lo, x[j]), hi = std::max(hi, x[j]);
    d = (hi - lo) / float(levels - 1);
    m = lo;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; ++j)
      q[j] = uint8_t(std::min(levels - 1, int(rounded((x[j] - lo) * id) + 0.5f)));
  } else {
    float amax = 0, max = 0;
    for (int j = 0; j < 32; ++j)
      if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), max = x[j];
    d = max / -float(levels / 2);
    m = 0;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; ++j)
      q[j] = uint8_t(std::min(levels - 1, int(rounded(x[j] * id) + float(levels / 2) + 0.5f)));
  }
}

// A K-quant super-block's sub-block scales (and mins) as 6-bit multiples of one f16 scale each:
// the codes that best reproduce `values` (all >= 0), and the scale.
inline float quantize_6bit(const float* values, int n, int* codes) {
  float max = 0;
  for (int i = 0; i < n; ++i) max = std::max(max, values[i]);
  const float d = float(Eigen::half(max / 63.f));
  for (int i = 0; i < n; ++i) codes[i] = d > 0 ? std::min(63, int(std::lround(values[i] / d))) : 0;
  return d;
}
}  // namespace detail

// Encodes `n` floats (whole blocks) into `t`'s blocks at `out`. Q8_0 and Q4_0 are ggml's reference
// quantizers (quantize_row_q8_0_ref, _q4_0_ref): their output is byte-identical to llama.cpp's.
// Q4_1, Q5_0, Q5_1 follow ggml's reference rules too. The K-quants are encoded by the plain rule
// (each sub-block's scale and minimum from its range, then the scales as 6-bit or 8-bit multiples
// of a super-block scale); llama.cpp's own K-quant encoder searches for better scales, so its
// error is smaller, but any valid block decodes the same way.
inline void quantize(Type t, const float* x, int64_t n, std::byte* out) {
  const Layout L = layout(t);
  for (int64_t i = 0; i < n; i += L.block_elements, x += L.block_elements, out += L.block_bytes) {
    auto* u = reinterpret_cast<uint8_t*>(out);
    std::memset(out, 0, std::size_t(L.block_bytes));
    switch (t) {
      case Type::Q8_0: {
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        for (int j = 0; j < 32; ++j)
          u[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(x[j] * id)));
        put_f16(out, d);
        break;
      }
      case Type::Q4_0:
      case Type::Q4_1:
      case Type::Q5_0:
      case Type::Q5_1: {
        const bool with_min = t == Type::Q4_1 || t == Type::Q5_1;
        const bool five = t == Type::Q5_0 || t == Type::Q5_1;
        float d, m;
        uint8_t q[32];
        detail::quantize_levels(x, five ? 32 : 16, with_min, d, m, q);
        put_f16(out, d);
        if (with_min) put_f16(out + 2, m);
        uint8_t* qs = u + (with_min ? 4 : 2) + (five ? 4 : 0);
        uint32_t qh = 0;
        for (int j = 0; j < 16; ++j) {
          qs[j] = uint8_t((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
          qh |= uint32_t(q[j] >> 4) << j | uint32_t(q[j + 16] >> 4) << (j + 16);
        }
        if (five) std::memcpy(u + (with_min ? 4 : 2), &qh, 4);
        break;
      }
      case Type::Q4_K:
      case Type::Q5_K: {
        const bool five = t == Type::Q5_K;
        const int levels = five ? 31 : 15;
        float scale[8], min[8];  // w ≈ scale·q - min, min >= 0
        for (int s = 0; s < 8; ++s) {
          float lo = 0, hi = x[32 * s];  // the minimum is at most 0 (ggml's rule too)
          for (int l = 0; l < 32; ++l)
            lo = std::min(lo, x[32 * s + l]), hi = std::max(hi, x[32 * s + l]);
          scale[s] = (hi - lo) / float(levels);
          min[s] = -lo;
        }
        int sc[8], mn[8];
        const float d = detail::quantize_6bit(scale, 8, sc),
                    dmin = detail::quantize_6bit(min, 8, mn);
        put_f16(out, d);
        put_f16(out + 2, dmin);
        uint8_t* scales = u + 4;
        for (int s = 0; s < 8; ++s) {
          if (s < 4) {
            scales[s] = uint8_t(sc[s]), scales[s + 4] = uint8_t(mn[s]);
          } else {
            scales[s + 4] = uint8_t((sc[s] & 0xF) | ((mn[s] & 0xF) << 4));
            scales[s - 4] |= uint8_t((sc[s] >> 4) << 6);
            scales[s] |= uint8_t((mn[s] >> 4) << 6);
          }
        }
        uint8_t* qh = u + 16;
        uint8_t* qs = u + (five ? 48 : 16);
        for (int s = 0; s < 8; ++s) {
          const float a = d * float(sc[s]), b = dmin * float(mn[s]);
          const float ia = a != 0 ? 1.0f / a : 0.0f;
          for (int l = 0; l < 32; ++l) {
            const int v = std::clamp(int(std::lround((x[32 * s + l] + b) * ia)), 0, levels);
            qs[32 * (s / 2) + l] |= uint8_t((v & 0xF) << (4 * (s % 2)));
            if (five) qh[l] |= uint8_t((v >> 4) << s);
          }
        }
        break;
      }
      case Type::Q6_K: {
        float scale[16], magnitude[16];  // w ≈ scale·(q - 32), the largest magnitude at -32
        for (int g = 0; g < 16; ++g) {
          float amax = 0, max = 0;
          for (int l = 0; l < 16; ++l)
            if (std::fabs(x[16 * g + l]) > amax)
              amax = std::fabs(x[16 * g + l]), max = x[16 * g + l];
          scale[g] = max / -32.f;
          magnitude[g] = std::fabs(scale[g]);
        }
        float dmax = 0;
        for (float s : magnitude) dmax = std::max(dmax, s);
        const float d = float(Eigen::half(dmax / 127.f));
        auto* scales = reinterpret_cast<int8_t*>(u + 192);
        for (int g = 0; g < 16; ++g)
          scales[g] = d > 0 ? int8_t(std::clamp(int(std::lround(scale[g] / d)), -127, 127)) : 0;
        put_f16(out + 208, d);
        uint8_t* ql = u;
        uint8_t* qh = u + 128;
        for (int e = 0; e < 256; ++e) {
          const float a = d * float(scales[e / 16]);
          const int v = a != 0 ? std::clamp(int(std::lround(x[e] / a)) + 32, 0, 63) : 32;
          // Element e of half h = e / 128, position p = e % 128: quarter c = p / 32, lane l.
          const int h = e / 128, p = e % 128, c = p / 32, l = p % 32;
          ql[64 * h + l + 32 * (c % 2)] |= uint8_t((v & 0xF) << (4 * (c / 2)));
          qh[32 * h + l] |= uint8_t((v >> 4) << (2 * c));
        }
        break;
      }
    }
  }
}

// Activations quantized for products with quantized weights: `tokens` rows of `in` values (in a
// multiple of 32), each block of 32 as d·q with q = round(x/d) in [-127, 127], d = max|x|/127; and
// the sums of q per 16, which the kernels need for the b_g terms.
struct Activations {
  int64_t tokens = 0, in = 0;
  std::vector<int8_t> q;   // [tokens, in]
  std::vector<float> d;    // [tokens, in / 32]
  std::vector<int32_t> s;  // [tokens, in / 16]: Σ q over each 16
  // d·Σq per 16 and per 32 (what a group's offset b multiplies), [tokens, in / 16] and in / 32.
  std::vector<float> e16, e32;

  const int8_t* q_row(int64_t t) const { return q.data() + t * in; }
  const float* d_row(int64_t t) const { return d.data() + t * (in / 32); }
  const int32_t* s_row(int64_t t) const { return s.data() + t * (in / 16); }
  const float* e16_row(int64_t t) const { return e16.data() + t * (in / 16); }
  const float* e32_row(int64_t t) const { return e32.data() + t * (in / 32); }
};

// Rounds to the nearest integer, ties to even, as llama.cpp's x86 activation quantizer does
// (_mm256_round_ps in quantize_row_q8_0): adding and subtracting 1.5·2^23 leaves the integer in
// f32's last place. Exact for |v| <= 2^22 (here |v| <= 127), and a loop of it vectorises on every
// instruction set, where std::lround is a library call per element.
inline float round_to_even(float v) {
  constexpr float kShifter = 12582912.0f;  // 1.5·2^23
  return (v + kShifter) - kShifter;
}

// What a block's values are multiplied by, x·scale·id, to give q: id = 127/amax, and scale = 1.
// Below amax ≈ 3.7e-37, 127/amax overflows to ∞ (and x·id, an integer conversion of ±∞, would be
// undefined): there the values are scaled by 2^64 first, exactly (they are that small), and id
// taken for the scaled amax.
struct ActivationScale {
  float scale, id;
};
inline ActivationScale activation_scale(float amax) {
  if (amax == 0) return {1.0f, 0.0f};
  if (const float id = 127.0f / amax; id <= std::numeric_limits<float>::max()) return {1.0f, id};
  constexpr float kUp = 18446744073709551616.0f;  // 2^64
  return {kUp, 127.0f / (amax * kUp)};
}

// Where a row's quantized blocks go, each array at the row's first block: q (32 bytes a block), d
// (one a block), s (Σq of each 16: two a block), e16 = d·s (two a block) and e32 = d·Σq (one a
// block). The offsets e16 and e32 are what a weight group's free minimum b multiplies. They are
// written with the block, from d and s still in registers: a loop after the quantizer, reading
// back the d and s it had just stored, held ~10% of a 128-token GEMM's samples (on its loads).
struct QuantizedRow {
  int8_t* q;
  float* d;
  int32_t* s;
  float* e16;
  float* e32;
};

// A block's offsets from its d and the sums of its halves (the non-finite block's too: NaN).
inline void block_offsets(float d, int32_t s0, int32_t s1, float* e16, float* e32) {
  e16[0] = d * float(s0), e16[1] = d * float(s1);
  *e32 = d * float(s0 + s1);
}

// A block with a NaN or an infinity gets d = NaN and q = 0: its products are NaN, as the
// unquantized product would be, rather than an integer conversion of NaN (undefined) or a finite
// value that hides it.
//
// amax = max |x| is taken on the bit patterns: with the sign bit cleared, a float's bits order as
// the integers they spell (NaN and ∞ above every finite value), so one integer maximum gives both
// amax and whether the block is finite. The same value as std::max over std::fabs, but a loop that
// vectorises: a float maximum or a running sum as the NaN test is one long dependency chain unless
// the compiler may reorder floating point (~1.4 ns per element, 10% of a prefill).
inline void quantize_activation_row(const float* x, int64_t in, const QuantizedRow& out) {
  constexpr uint32_t kMagnitude = 0x7fffffffu, kInfinity = 0x7f800000u;
  for (int64_t blk = 0; blk < in / 32; ++blk) {
    const float* xb = x + 32 * blk;
    int8_t* q = out.q + 32 * blk;
    uint32_t amax_bits = 0;
    for (int j = 0; j < 32; ++j) {
      uint32_t bits;
      std::memcpy(&bits, xb + j, 4);
      amax_bits = std::max(amax_bits, bits & kMagnitude);
    }
    float d = std::numeric_limits<float>::quiet_NaN();
    int32_t s[2] = {0, 0};
    if (amax_bits >= kInfinity) {  // not finite
      std::fill_n(q, 32, int8_t(0));
    } else {
      float amax;
      std::memcpy(&amax, &amax_bits, 4);
      d = amax / 127.0f;
      const auto [scale, id] = activation_scale(amax);
      for (int half = 0; half < 2; ++half) {
        int32_t sum = 0;
        for (int j = 16 * half; j < 16 * half + 16; ++j) {
          const int8_t v = int8_t(round_to_even(xb[j] * scale * id));  // within ±127
          q[j] = v;
          sum += v;
        }
        s[half] = sum;
      }
    }
    out.d[blk] = d, out.s[2 * blk] = s[0], out.s[2 * blk + 1] = s[1];
    block_offsets(d, s[0], s[1], out.e16 + 2 * blk, out.e32 + blk);
  }
}

using RowQuantizer = void (*)(const float* x, int64_t in, const QuantizedRow& out);

// Blocks [b0, b1) of token t's row of `a`, from those blocks' values x_t (x_t[i] is element 32·b0
// + i of the row): each block's q, d, s, e16 and e32 depend on its own 32 values alone, so any
// split of a row's blocks gives the same activations. `row` quantizes whole blocks:
// quantize_activation_row, or a SIMD twin that gives the same values
// (kernels::quantdot::quantize_row).
inline void quantize_activation_blocks(const float* x_t, int64_t t, int64_t b0, int64_t b1,
                                       Activations& a, RowQuantizer row = quantize_activation_row) {
  const int64_t blocks = a.in / 32, first = t * blocks + b0;  // the first block, counted in a
  row(x_t, 32 * (b1 - b0),
      {a.q.data() + 32 * first, a.d.data() + first, a.s.data() + 2 * first,
       a.e16.data() + 2 * first, a.e32.data() + first});
}

// Sizes a's arrays for `tokens` rows of `in` values (in a multiple of 32), keeping their memory
// when it is large enough: the values are left for quantize_activation_blocks to write.
inline void resize_activations(Activations& a, int64_t tokens, int64_t in) {
  a.tokens = tokens, a.in = in;
  a.q.resize(std::size_t(tokens * in));
  a.d.resize(std::size_t(tokens * in / 32));
  a.s.resize(std::size_t(tokens * in / 16));
  a.e16.resize(std::size_t(tokens * in / 16));
  a.e32.resize(std::size_t(tokens * in / 32));
}

// x [tokens, in] row-major (rows `ld` floats apart); the tokens split over threads (each token's
// values are the same for any split).
inline Activations quantize_activations(const float* x, int64_t tokens, int64_t in, int64_t ld,
                                        RowQuantizer row = quantize_activation_row) {
  Activations a;
  resize_activations(a, tokens, in);
#pragma omp parallel for schedule(static) if (tokens > 1)
  for (int64_t t = 0; t < tokens; ++t)
    quantize_activation_blocks(x + t * ld, t, 0, in / 32, a, row);
  return a;
}

// The values the activations stand for, d·q: what the plain path multiplies quantized weights by.
inline void dequantize_activation_row(const int8_t* q, const float* d, int64_t in, float* x) {
  for (int64_t i = 0; i < in; ++i) x[i] = d[i / 32] * float(q[i]);
}

}  // namespace gemma3::inline GEMMA3_MODE::quant
