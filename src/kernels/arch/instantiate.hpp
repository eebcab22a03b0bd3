// Explicit instantiation of every SIMD kernel for one instruction set; each src/kernels/arch/*.cpp
// includes this with its Arch, compiled with that instruction set's flags.
#pragma once

#include "gemma3/build_mode.hpp"

#include "gemma3/kernels/simd.hpp"

#define GEMMA3_INSTANTIATE_KERNELS(...)                                                            \
  namespace gemma3::inline GEMMA3_MODE::kernels::simd {                                            \
  template void GemvBf16::operator()<__VA_ARGS__>(__VA_ARGS__, const uint16_t*, int64_t, int64_t,  \
                                                  const GemvX&, float*) const;                     \
  template void GemvF32::operator()<__VA_ARGS__>(__VA_ARGS__, const float*, int64_t, int64_t,      \
                                                 const GemvX&, float*) const;                      \
  template GemmLayout GemmTokenLayout::operator()<__VA_ARGS__>(__VA_ARGS__) const;                 \
  template void Gemm<uint16_t>::operator()<__VA_ARGS__>(__VA_ARGS__, const uint16_t*, int64_t,     \
                                                        int64_t, const float*, int64_t, int64_t,   \
                                                        float*, const GemmY&) const;               \
  template void Gemm<float>::operator()<__VA_ARGS__>(__VA_ARGS__, const float*, int64_t, int64_t,  \
                                                     const float*, int64_t, int64_t, float*,       \
                                                     const GemmY&) const;                          \
  template void GeluTanhMul::operator()<__VA_ARGS__>(__VA_ARGS__, const float*, const float*,      \
                                                     float*, int64_t) const;                       \
  template void AttendQuery::operator()<__VA_ARGS__>(__VA_ARGS__, const float*, int64_t, int64_t,  \
                                                     const KeySegment*, int64_t, float, float,     \
                                                     float*, float*) const;                        \
  template void AttendPanel::operator()<__VA_ARGS__>(__VA_ARGS__, const float*, int64_t, int64_t,  \
                                                     const float*, int64_t, const float*, int64_t, \
                                                     float, float*, float*, float*, int64_t,       \
                                                     int64_t) const;                               \
  template void LayerNormRows::operator()<__VA_ARGS__>(__VA_ARGS__, const float*, int64_t,         \
                                                       int64_t, int64_t, const float*,             \
                                                       const float*, float, float*) const;         \
  template void QuantRows::operator()<__VA_ARGS__>(__VA_ARGS__, quant::Type, const std::byte*,     \
                                                   int64_t, int64_t, const QuantX&, int64_t,       \
                                                   float*, int64_t, uint8_t*, float*) const;       \
  template double FmaPeak::operator()<__VA_ARGS__>(__VA_ARGS__, int64_t, float*) const;            \
  template float SumF32::operator()<__VA_ARGS__>(__VA_ARGS__, const float*, int64_t) const;        \
  }
