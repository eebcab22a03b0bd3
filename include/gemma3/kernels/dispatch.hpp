// Chooses the instruction set the SIMD kernels run with.
//
//   * Header-only (just gemma3::gemma3): the kernels compile inline for xsimd::default_arch, the
//   best
//     instruction set the compiler flags enable (SSE2 on a plain x86-64 build, NEON on ARM64; build
//     with -march=native for the machine's best).
//   * With gemma3::kernels linked (the project's own binaries do): GEMMA3_KERNEL_DISPATCH is
//   defined,
//     the bodies are compiled once per instruction set in src/kernels/arch/*.cpp, and every call
//     picks the best one the CPU supports at run time (AVX-512BW, AVX2+FMA, SSE4.2, SSE2 on
//     x86-64), so one binary runs on any x86-64 machine and uses AVX-512 where present.
#pragma once

#include "gemma3/build_mode.hpp"

#include <utility>

#include <xsimd/xsimd.hpp>

#if GEMMA3_KERNEL_DISPATCH
#include "gemma3/kernels/simd_decl.hpp"
#else
#include "gemma3/kernels/simd.hpp"
#endif

namespace gemma3::inline GEMMA3_MODE::kernels {

#if GEMMA3_KERNEL_DISPATCH
#if defined(__x86_64__) || defined(_M_X64)
using dispatch_archs =
    xsimd::arch_list<xsimd::avx512bw, xsimd::fma3<xsimd::avx2>, xsimd::sse4_2, xsimd::sse2>;
#elif defined(__aarch64__)
using dispatch_archs = xsimd::arch_list<xsimd::neon64>;
#else
#error "GEMMA3_KERNEL_DISPATCH: no instruction-set list for this CPU; use the header-only mode"
#endif

namespace detail {
// xsimd's answer, out of line: its CPUID is an asm statement without `volatile`, which GCC takes
// for a pure computation and, once the question is inlined into a caller, hoists out of the
// static's one-time initialisation to the caller's entry. It then ran on every call of the
// functions that dispatch (perf: right after a CPUID at the entry of decode's parallel region,
// 2.4% of a two-thread 270m decode step). Cold: it runs once, so it is laid out away from the hot
// code.
[[gnu::noinline, gnu::cold]] inline unsigned ask_best_arch_version() {
  return xsimd::available_architectures().best;
}
}  // namespace detail

// The best instruction set this CPU supports (xsimd's version number), asked once: finding out
// executes CPUID, which a virtual machine traps (microseconds), and xsimd::dispatch asks on every
// call; a decode step makes thousands of kernel calls (measured: 10% of a 270m decode step).
inline unsigned best_arch_version() {
  static const unsigned best = detail::ask_best_arch_version();
  return best;
}

namespace detail {
template <class F, class Arch, class... Rest, class... Args>
inline auto call_first_supported(F f, xsimd::arch_list<Arch, Rest...>, Args&&... args) {
  if constexpr (sizeof...(Rest) == 0) {
    return f(Arch{}, std::forward<Args>(args)...);
  } else {
    if (Arch::version() <= best_arch_version()) return f(Arch{}, std::forward<Args>(args)...);
    return call_first_supported(f, xsimd::arch_list<Rest...>{}, std::forward<Args>(args)...);
  }
}
}  // namespace detail

// Calls f(Arch{}, args...) with the best Arch of dispatch_archs that this CPU supports (the first
// of the list, best first, that it supports; as xsimd::dispatch does, with the CPU asked once).
template <class F, class... Args>
inline auto call(F f, Args&&... args) {
  return detail::call_first_supported(f, dispatch_archs{}, std::forward<Args>(args)...);
}
#else
template <class F, class... Args>
inline auto call(F f, Args&&... args) {
  return f(xsimd::default_arch{}, std::forward<Args>(args)...);
}
#endif

// The name of the instruction set the kernels run with on this machine, for logs and benchmarks.
inline const char* active_isa() {
#if GEMMA3_KERNEL_DISPATCH
  const unsigned best = best_arch_version();
  if (best >= xsimd::avx512bw::version()) return "avx512bw";
  if (best >= xsimd::fma3<xsimd::avx2>::version()) return "avx2+fma";
  if (best >= xsimd::sse4_2::version()) return "sse4.2";
#if defined(__aarch64__)
  return "neon64";
#else
  return "sse2";
#endif
#else
  return xsimd::default_arch::name();
#endif
}

}  // namespace gemma3::inline GEMMA3_MODE::kernels
