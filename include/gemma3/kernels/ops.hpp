// The operations the model calls, routed to the plain (Eigen) or the fast (SIMD + OpenMP)
// implementation. The plain path is the definition; the fast path is tested against it.
#pragma once

#include "gemma3/build_mode.hpp"

#include <array>
#include <string>
#include <type_traits>

#include "gemma3/error.hpp"
#include "gemma3/kernels/fast.hpp"
#include "gemma3/kernels/plain.hpp"

namespace gemma3::inline GEMMA3_MODE {

enum class Backend {
  Plain,     // plain Eigen, the readable definition; the only path for T = double
  Fast,      // SIMD kernels with run-time instruction-set dispatch, OpenMP threads
  FastBf16,  // Fast, with the inputs of products with bf16 weights rounded to bf16 (as PyTorch
             // and llama.cpp run a bf16 checkpoint): vdpbf16ps prefill where the CPU has it
};

inline const char* to_string(Backend b) {
  return b == Backend::Fast ? "fast" : b == Backend::FastBf16 ? "fast-bf16" : "plain";
}

// The inverse of to_string, for command lines and configs.
inline Backend backend_from_string(const std::string& name) {
  for (const Backend b : {Backend::Plain, Backend::Fast, Backend::FastBf16})
    if (name == to_string(b)) return b;
  throw InvalidArgument("backend", "'" + name + "' is not one of plain, fast, fast-bf16");
}

// The MatmulInputs of a fast backend.
inline fast::MatmulInputs matmul_inputs(Backend b) {
  return b == Backend::FastBf16 ? fast::MatmulInputs::Bf16 : fast::MatmulInputs::F32;
}

// y = x · Wᵀ for a published [out, in] weight.
template <typename T>
Mat<T> linear(const ConstMatRef<T>& x, const TensorView& w, Backend backend) {
  if constexpr (std::is_same_v<T, float>)
    if (backend != Backend::Plain) return fast::linear(x, w, matmul_inputs(backend));
  return plain::linear<T>(x, w);
}

// y_m = x · W_mᵀ for several weights that read the same x (q/k/v, gate/up): the fast path runs
// them as one pass for a decode step; the plain path is one linear each.
template <typename T, std::size_t N>
std::array<Mat<T>, N> linear(const ConstMatRef<T>& x, const std::array<const TensorView*, N>& ws,
                             Backend backend) {
  if constexpr (std::is_same_v<T, float>)
    if (backend != Backend::Plain) return fast::linear(x, ws, matmul_inputs(backend));
  std::array<Mat<T>, N> ys;
  for (std::size_t m = 0; m < N; ++m) ys[m] = plain::linear<T>(x, *ws[m]);
  return ys;
}

// y_m = x · W_mᵀ + b_m for nn.Linear layers with bias (SigLIP's) that read the same x: on the fast
// path the biases are added as the GEMM stores its tiles.
template <typename T, std::size_t N>
std::array<Mat<T>, N> linear(const ConstMatRef<T>& x, const std::array<const TensorView*, N>& ws,
                             const std::array<const Vec<T>*, N>& biases, Backend backend) {
  if constexpr (std::is_same_v<T, float>)
    if (backend != Backend::Plain) {
      std::array<const float*, N> b;
      for (std::size_t m = 0; m < N; ++m) b[m] = biases[m]->data();
      return fast::linear(x, ws, matmul_inputs(backend), b);
    }
  std::array<Mat<T>, N> ys;
  for (std::size_t m = 0; m < N; ++m) {
    ys[m] = plain::linear<T>(x, *ws[m]);
    ys[m].rowwise() += biases[m]->transpose();
  }
  return ys;
}
template <typename T>
Mat<T> linear(const ConstMatRef<T>& x, const TensorView& w, const Vec<T>& bias, Backend backend) {
  return std::move(linear<T, 1>(x, std::array{&w}, std::array{&bias}, backend)[0]);
}

}  // namespace gemma3::inline GEMMA3_MODE
