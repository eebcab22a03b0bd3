// The SIMD kernels compiled for xsimd::fma3<xsimd::avx2> (built into gemma3::kernels with the
// matching -m flags).
#include "instantiate.hpp"

GEMMA3_INSTANTIATE_KERNELS(xsimd::fma3<xsimd::avx2>)
