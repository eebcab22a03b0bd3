// The operations the model calls, routed to the reference (plain Eigen) or the fast (SIMD + OpenMP)
// implementation. The reference is the definition; the fast path is tested against it.
#pragma once

#include <array>
#include <type_traits>

#include "gemma3/kernels/fast.hpp"
#include "gemma3/kernels/reference.hpp"

namespace gemma3 {

enum class Backend {
  Reference,  // plain Eigen, reads like the spec; the only path for T = double
  Fast,       // SIMD kernels with run-time instruction-set dispatch, OpenMP threads
};

inline const char* to_string(Backend b) {
  return b == Backend::Fast ? "fast" : "reference";
}

// y = x · Wᵀ for a published [out, in] weight.
template <typename T>
Mat<T> linear(const ConstMatRef<T>& x, const TensorView& w, Backend backend) {
  if constexpr (std::is_same_v<T, float>)
    if (backend == Backend::Fast) return fast::linear(x, w);
  return ref::linear<T>(x, w);
}

// y_m = x · W_mᵀ for several weights that read the same x (q/k/v, gate/up): the fast path runs
// them as one pass for a decode step; the reference is one linear each.
template <typename T, std::size_t N>
std::array<Mat<T>, N> linear(const ConstMatRef<T>& x, const std::array<const TensorView*, N>& ws,
                             Backend backend) {
  if constexpr (std::is_same_v<T, float>)
    if (backend == Backend::Fast) return fast::linear(x, ws);
  std::array<Mat<T>, N> ys;
  for (std::size_t m = 0; m < N; ++m) ys[m] = ref::linear<T>(x, *ws[m]);
  return ys;
}

}  // namespace gemma3
