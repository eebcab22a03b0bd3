// The int8 dot-product kernels for quantized weights (kernels/quantdot.hpp), built into
// gemma3::kernels with -mavx512vnni and called only on CPUs that report AVX512-VNNI
// (fast::vnni_available).
#include "gemma3/kernels/quantdot.hpp"

#if !GEMMA3_QUANTDOT_BODIES
#error \
    "kernels/arch/avx512vnni.cpp must be compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni"
#endif
