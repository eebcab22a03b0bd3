// The bf16 dot-product kernels (kernels/bf16dot.hpp), built into gemma3::kernels with -mavx512bf16
// and called only on CPUs that report AVX512-BF16 (fast::bf16_dot_available).
#include "gemma3/kernels/bf16dot.hpp"

#if !GEMMA3_BF16DOT_BODIES
#error "kernels/arch/avx512bf16.cpp must be compiled with -mavx512f -mavx512bf16"
#endif
