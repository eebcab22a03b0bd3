// The SIMD kernels compiled for xsimd::neon64 (built into gemma3::kernels with the matching -m
// flags).
#include "instantiate.hpp"

GEMMA3_INSTANTIATE_KERNELS(xsimd::neon64)
