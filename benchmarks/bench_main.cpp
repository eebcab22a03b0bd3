#include <benchmark/benchmark.h>

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
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
