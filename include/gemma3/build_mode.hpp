// The two ways to build with gemma3 (README, "Header-only or compiled"), as fmt has its compiled
// library and its FMT_HEADER_ONLY mode:
//
//   * header-only (the CMake target gemma3::gemma3 alone): every translation unit compiles what it
//     uses from the headers, the SIMD kernels included, for the instruction sets the compiler flags
//     enable (xsimd::default_arch: SSE2 on a stock x86-64 build; build with -march=native for the
//     machine's best, AVX512-BF16 included where the CPU has it);
//   * compiled (link gemma3::kernels, which sets GEMMA3_COMPILED_MODELS and GEMMA3_KERNEL_DISPATCH
//     for its users): the kernels are compiled once per instruction set and chosen at run time
//     (src/kernels/arch/), and the model templates for float and double and the checkpoint loader
//     once (src/gemma3.cpp); the headers only declare them, so a research program parses the
//     headers but compiles none of the model code.
//
// Every name of the library lives in an inline namespace named after the mode,
// gemma3::header_only or gemma3::compiled (GEMMA3_MODE), which user code never spells: `gemma3::X`
// finds it either way. So translation units built in different modes can be linked into one
// program without breaking the one-definition rule: each mode's functions are distinct symbols
// (two copies of the library, each consistent), and passing a library object from one mode's code
// to the other's is a compile or link error rather than a silent mismatch.
//
// src/gemma3.cpp defines GEMMA3_BUILDING_LIBRARY: it is the one translation unit that compiles the
// definitions the compiled mode declares.
#pragma once

#if defined(GEMMA3_BUILDING_LIBRARY) || GEMMA3_COMPILED_MODELS
#if !GEMMA3_KERNEL_DISPATCH
#error \
    "gemma3: the compiled mode needs GEMMA3_KERNEL_DISPATCH too: link the CMake target gemma3::kernels"
#endif
#define GEMMA3_MODE compiled
#else
#if GEMMA3_KERNEL_DISPATCH
#error \
    "gemma3: GEMMA3_KERNEL_DISPATCH without GEMMA3_COMPILED_MODELS: link the CMake target gemma3::kernels, which sets both"
#endif
#define GEMMA3_MODE header_only
#endif

#if defined(GEMMA3_BUILDING_LIBRARY)
#define GEMMA3_DEFINE_COMPILED 1  // the compiled definitions, not inline: this TU emits them
#define GEMMA3_COMPILED_INLINE
#define GEMMA3_EXTERN_TEMPLATES 0
#elif GEMMA3_COMPILED_MODELS
#define GEMMA3_DEFINE_COMPILED 0  // declared here, defined in gemma3::kernels
#define GEMMA3_EXTERN_TEMPLATES 1
#else
#define GEMMA3_DEFINE_COMPILED 1  // header-only: inline definitions
#define GEMMA3_COMPILED_INLINE inline
#define GEMMA3_EXTERN_TEMPLATES 0
#endif
