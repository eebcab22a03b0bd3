// How much memory is left to allocate: what the loaders and the KV cache check before they
// allocate, so that a model or a context that does not fit is refused with the sizes, not ended by
// std::bad_alloc or the OOM killer.
#pragma once

#include "gemma3/build_mode.hpp"

#include <sys/resource.h>
#include <unistd.h>

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

}  // namespace gemma3::inline GEMMA3_MODE
