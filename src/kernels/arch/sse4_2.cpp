// The SIMD kernels compiled for xsimd::sse4_2 (built into gemma3::kernels with the matching -m
// flags).
#include "instantiate.hpp"

GEMMA3_INSTANTIATE_KERNELS(xsimd::sse4_2)
