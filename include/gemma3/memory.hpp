// How much memory is left to allocate: what the loaders and the KV cache check before they
// allocate, so that a model or a context that does not fit is refused with the sizes, not ended by
// std::bad_alloc or the OOM killer. And the heap setting that repeated forward passes want.
#pragma once

#include "gemma3/build_mode.hpp"

#include <sys/resource.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>

namespace gemma3::inline GEMMA3_MODE {

namespace detail {
// Bytes of memory this process can still get, or -1 when unknown: the smaller of the kernel's
// estimate of what can be allocated without swapping (MemAvailable in /proc/meminfo, Linux >= 3.14;
// else free pages from sysconf), what the cgroup v2 memory limit leaves (containers) and what the
// address-space limit (ulimit -v) leaves.
inline int64_t available_memory_bytes() {
  int64_t avail = -1;
  if (std::ifstream meminfo("/proc/meminfo"); meminfo) {
    std::string key;
    int64_t kib = 0;
    while (meminfo >> key >> kib) {
      if (key == "MemAvailable:") {
        avail = kib * 1024;
        break;
      }
      meminfo.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
    }
  }
#ifdef _SC_AVPHYS_PAGES
  if (avail < 0) {
    const long pages = ::sysconf(_SC_AVPHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) avail = int64_t(pages) * page;
  }
#endif
  int64_t limit = 0, used = 0;
  std::ifstream max_file("/sys/fs/cgroup/memory.max"),
      current_file("/sys/fs/cgroup/memory.current");
  if (max_file >> limit && current_file >> used && limit > used)  // "max" (no limit) does not parse
    avail = avail < 0 ? limit - used : std::min(avail, limit - used);
  if (rlimit as{}; ::getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) {
    long pages = 0;  // the process's virtual size now (/proc/self/statm's first field)
    if (std::ifstream statm("/proc/self/statm"); statm >> pages) {
      const int64_t left = int64_t(as.rlim_cur) - int64_t(pages) * ::sysconf(_SC_PAGESIZE);
      avail = avail < 0 ? std::max<int64_t>(left, 0) : std::min(avail, std::max<int64_t>(left, 0));
    }
  }
  return avail;
}

inline std::string gib(int64_t bytes) {
  char s[32];
  std::snprintf(s, sizeof s, "%.2f GiB", double(bytes) / double(int64_t(1) << 30));
  return s;
}
}  // namespace detail

// Keeps freed heap blocks up to 512 MiB for reuse (glibc's mallopt). A forward pass allocates its
// activations per call; glibc serves every block above 128 KiB with a fresh mmap and unmaps it on
// free, so each call would fault those pages in again (15-20% of a prefill; five 128-token 270m
// prefills from Python: 0.83 s against 0.27 s). It sets the allocation of the whole process, so
// the program chooses it: the CLI at start, Python by gemma3.keep_freed_memory(). True where
// applied; false where the C library is not glibc.
inline bool keep_freed_memory() {
#ifdef __GLIBC__
  const bool mmap_set = mallopt(M_MMAP_THRESHOLD, 512 << 20) == 1;
  const bool trim_set = mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
  return mmap_set && trim_set;
#else
  return false;
#endif
}

}  // namespace gemma3::inline GEMMA3_MODE
