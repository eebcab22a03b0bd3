#include <benchmark/benchmark.h>
#include <omp.h>

#include <gemma3/threads.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

// Freed memory stays in the process, as it does inside a model run (where other live buffers keep
// the heap from shrinking): otherwise glibc hands a large freed block back to the kernel, the next
// iteration's buffer is mapped afresh, and a benchmark of a kernel that allocates its output
// measures page faults (~5 µs each on a virtual machine; BM_FastMlp ran at half speed).
int main(int argc, char** argv) {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
  // GEMMA3_NUM_THREADS as the CLI reads it (OMP_NUM_THREADS otherwise, by OpenMP itself), so that
  // the kernels here and `gemma3 bench` run on the same threads; recorded in the report's context.
  if (const char* env = std::getenv("GEMMA3_NUM_THREADS")) {
    try {
      omp_set_num_threads(gemma3::parse_threads(env, "GEMMA3_NUM_THREADS"));
    } catch (const gemma3::Error& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 2;
    }
  }
  benchmark::AddCustomContext("threads", std::to_string(omp_get_max_threads()));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
