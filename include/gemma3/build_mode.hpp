// The two ways to build with gemma3 (README, "Header-only or compiled"):
//
//   * header-only (the default): every translation unit compiles what it uses from the headers;
//   * compiled (GEMMA3_COMPILED_MODELS, which the CMake target gemma3::kernels sets for its users):
//     the model templates for float and double and the checkpoint loader are compiled once, into
//     gemma3::kernels (src/gemma3.cpp), and the headers only declare them: a research program
//     parses the headers but compiles none of the model code.
//
// src/gemma3.cpp defines GEMMA3_BUILDING_LIBRARY: it is the one translation unit that compiles the
// definitions the compiled mode declares.
#pragma once

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
