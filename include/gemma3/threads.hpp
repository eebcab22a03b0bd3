// How many OpenMP threads a setting names (GEMMA3_NUM_THREADS, OMP_NUM_THREADS, --threads),
// checked once for every tool that reads one: the CLI and the benchmarks.
#pragma once

#include "gemma3/build_mode.hpp"

#include <omp.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <string_view>

#include "gemma3/error.hpp"

namespace gemma3::inline GEMMA3_MODE {

// Up to four threads per core: more only adds switching, and tens of thousands crash libgomp.
inline int max_threads() {
  return 4 * omp_get_num_procs();
}

// The thread count in `text`, from the setting `where` (named in the error); OMP_NUM_THREADS may be
// a list, whose first entry is the outer level's.
inline int parse_threads(std::string text, std::string_view where) {
  if (where == "OMP_NUM_THREADS") text = text.substr(0, text.find(','));
  char* end = nullptr;
  errno = 0;
  const long long n = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || n < 1)
    throw InvalidArgument(std::string(where), "'" + text +
                                                  "' is not a whole number of threads from 1 to " +
                                                  std::to_string(max_threads()));
  if (n > max_threads())
    throw InvalidArgument(std::string(where),
                          std::to_string(n) + " threads exceed " + std::to_string(max_threads()) +
                              ", four times the " + std::to_string(omp_get_num_procs()) +
                              " cores of this machine");
  return int(n);
}

}  // namespace gemma3::inline GEMMA3_MODE
