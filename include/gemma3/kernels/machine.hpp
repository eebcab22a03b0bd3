// What this machine can do, measured in the same run as a benchmark: the memory bandwidth (a
// STREAM-like triad, and a pure read sweep, which is what decode does to the weights) and the f32
// FMA peak. Decode is judged against bytes-per-token ÷ read bandwidth, prefill against the peak.
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>

#include <omp.h>

#include "gemma3/io/mapped_file.hpp"
#include "gemma3/kernels/dispatch.hpp"
#include "gemma3/kernels/fast.hpp"

namespace gemma3::inline GEMMA3_MODE {

struct MachineBandwidth {
  double triad_gb_s = 0;  // a[i] = b[i] + s·c[i]: 3 × 4 bytes per element (STREAM's count)
  double read_gb_s = 0;   // Σ a[i]: 4 bytes per element
};

// Best of `repeats` sweeps over arrays of `bytes_per_array` (much larger than the last-level
// cache), all OpenMP threads, static schedule (each thread touches the pages it first wrote).
inline MachineBandwidth measure_bandwidth(std::size_t bytes_per_array = std::size_t(256) << 20,
                                          int repeats = 5) {
  const int64_t n = int64_t(bytes_per_array / sizeof(float));
  // In 2 MiB pages, the best this machine streams: weights read with Residency::HugePages are
  // judged against that, and mapped weights too.
  const HugePageMemory memory[3] = {HugePageMemory(bytes_per_array),
                                    HugePageMemory(bytes_per_array),
                                    HugePageMemory(bytes_per_array)};
  float* a = reinterpret_cast<float*>(memory[0].data());
  float* b = reinterpret_cast<float*>(memory[1].data());
  float* c = reinterpret_cast<float*>(memory[2].data());
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) a[i] = 0.f, b[i] = 1.f, c[i] = 2.f;
  using clock = std::chrono::steady_clock;
  MachineBandwidth best;
  volatile float sink = 0;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = clock::now();
    const float s = 0.5f + float(r);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
    auto t1 = clock::now();
    float sum = 0.f;
#pragma omp parallel reduction(+ : sum)
    {
      // The same static split as the triad, so each thread reads the pages it wrote.
      const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t begin = n * t / threads, end = n * (t + 1) / threads;
      sum += kernels::call(kernels::simd::SumF32{}, a + begin, end - begin);
    }
    auto t2 = clock::now();
    sink = sink + sum;
    best.triad_gb_s =
        std::max(best.triad_gb_s,
                 3.0 * double(n) * 4 / std::chrono::duration<double>(t1 - t0).count() / 1e9);
    best.read_gb_s = std::max(best.read_gb_s,
                              double(n) * 4 / std::chrono::duration<double>(t2 - t1).count() / 1e9);
  }
  return best;
}

namespace detail {
// GFLOP/s of `chains(iterations, &sink)` (a peak kernel: returns the floating-point operations it
// did) run on every OpenMP thread: the best of rounds of it, run again and again for `seconds`.
// The best, as the bandwidth's: on a shared machine a round in which the host ran something else
// on one of the cores measures that, not the cores (an average over the rounds moved by 1.8× from
// run to run on the virtual machine of docs/performance.md, two threads).
template <class Chains>
double measure_peak_gflops(double seconds, Chains chains) {
  using clock = std::chrono::steady_clock;
  const int64_t iterations = 1 << 20;
  double best = 0;
  float sink = 0;
  const auto t0 = clock::now();
  do {
    double flops = 0;
    const auto r0 = clock::now();
#pragma omp parallel reduction(+ : flops)
    {
      float s = 0;
      flops += chains(iterations, &s);
#pragma omp atomic
      sink += s;
    }
    best = std::max(best, flops / std::chrono::duration<double>(clock::now() - r0).count() / 1e9);
  } while (std::chrono::duration<double>(clock::now() - t0).count() < seconds);
  return best + 0 * sink;
}
}  // namespace detail

// The f32 FMA peak in GFLOP/s over all OpenMP threads, on the instruction set the kernels use.
inline double measure_fma_peak_gflops(double seconds = 0.3) {
  return detail::measure_peak_gflops(seconds, [](int64_t iterations, float* sink) {
    return kernels::call(kernels::simd::FmaPeak{}, iterations, sink);
  });
}

// The bf16 dot-product (vdpbf16ps) peak in GFLOP/s over all OpenMP threads, or 0 where the CPU
// lacks AVX512-BF16 (or this build lacks the kernel).
inline double measure_bf16_dot_peak_gflops(double seconds = 0.3) {
  if constexpr (kernels::bf16dot::kBuilt) {
    if (!fast::bf16_dot_available()) return 0;
    return detail::measure_peak_gflops(seconds, [](int64_t iterations, float* sink) {
      return kernels::bf16dot::peak(iterations, sink);
    });
  }
  return 0;
}

// The int8 dot-product (vpdpbusd) peak in giga-operations/s (a multiply and an add per byte pair)
// over all OpenMP threads, or 0 where the CPU lacks AVX512-VNNI (or this build lacks the kernel):
// the instruction the products with quantized weights run on.
inline double measure_int8_dot_peak_gops(double seconds = 0.3) {
  if constexpr (kernels::quantdot::kBuilt) {
    if (!fast::vnni_available()) return 0;
    return detail::measure_peak_gflops(seconds, [](int64_t iterations, float* sink) {
      return kernels::quantdot::peak(iterations, sink);
    });
  }
  return 0;
}

}  // namespace gemma3::inline GEMMA3_MODE
