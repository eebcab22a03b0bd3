// The SIMD kernels compiled for xsimd::avx512bw (built into gemma3::kernels with the matching -m
// flags).
#include "instantiate.hpp"

GEMMA3_INSTANTIATE_KERNELS(xsimd::avx512bw)
