#include <benchmark/benchmark.h>
#include <omp.h>

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
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (*env == '\0' || *end != '\0' || n < 1 || n > 4 * omp_get_num_procs()) {
      std::fprintf(stderr,
                   "GEMMA3_NUM_THREADS: '%s' is not a whole number of threads from 1 to %d\n", env,
                   4 * omp_get_num_procs());
      return 2;
    }
    omp_set_num_threads(int(n));
  }
  benchmark::AddCustomContext("threads", std::to_string(omp_get_max_threads()));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
