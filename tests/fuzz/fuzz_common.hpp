// Shared pieces of the fuzz targets (tests/fuzz/README.md; docs/robustness.md).
//
// The contract every target checks: on any input the library either succeeds or throws a
// gemma3::Error. Any other exception escapes LLVMFuzzerTestOneInput and libFuzzer reports it as a
// crash (std::terminate → abort), like a sanitizer report, a timeout or running out of memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

namespace fuzz {

// The input as a file without touching the disk: an anonymous memory file (memfd) whose
// /proc/self/fd/N path the library opens like any other path.
class MemFile {
 public:
  MemFile(const uint8_t* data, std::size_t size) {
    fd_ = ::memfd_create("gemma3-fuzz", MFD_CLOEXEC);
    if (fd_ < 0) std::abort();
    for (std::size_t done = 0; done < size;) {
      const ssize_t n = ::write(fd_, data + done, size - done);
      if (n <= 0) std::abort();
      done += std::size_t(n);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  ~MemFile() { ::close(fd_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  int fd_ = -1;
  std::filesystem::path path_;
};

// A scratch directory for targets whose input is several files (removed at exit), in memory
// (/dev/shm) where there is one.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    std::error_code ec;
    const std::filesystem::path base = std::filesystem::is_directory("/dev/shm", ec)
                                           ? "/dev/shm"
                                           : std::filesystem::temp_directory_path();
    std::string tmpl = (base / "gemma3-fuzz-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) std::abort();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return std::filesystem::path(tmpl);
  }();
  return dir;
}

// Splits `data` at every occurrence of `separator` (a multi-file input: see the targets).
inline std::vector<std::string_view> split(std::string_view data, std::string_view separator) {
  std::vector<std::string_view> parts;
  for (std::size_t from = 0;;) {
    const std::size_t at = data.find(separator, from);
    if (at == std::string_view::npos) {
      parts.push_back(data.substr(from));
      return parts;
    }
    parts.push_back(data.substr(from, at - from));
    from = at + separator.size();
  }
}

// Keeps a computed value alive so that the reads producing it are not optimised away.
template <typename T>
inline void sink(const T& v) {
  asm volatile("" : : "r,m"(v) : "memory");
}

// A failed property: print what and abort, which libFuzzer reports as a crash with the input.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz property violated: %s\n", what.c_str());
  std::abort();
}
#define FUZZ_CHECK(cond, what)                                   \
  do {                                                           \
    if (!(cond)) ::fuzz::fail(std::string(#cond ": ") + (what)); \
  } while (0)

// The tokenizer.model the tokenizer and chat targets load: $GEMMA3_TOKENIZER, else the path CMake
// compiled in (GEMMA3_TOKENIZER_MODEL, what scripts/get_tokenizer.sh built). Empty when neither.
inline std::string tokenizer_model_path() {
  if (const char* env = std::getenv("GEMMA3_TOKENIZER"); env && *env) return env;
#ifdef GEMMA3_FUZZ_TOKENIZER_MODEL
  return GEMMA3_FUZZ_TOKENIZER_MODEL;
#else
  return {};
#endif
}

// The tokenizer of the tokenizer and chat targets, loaded once from LLVMFuzzerInitialize. (A
// template, so that targets without a tokenizer do not include SentencePiece.)
template <typename Tokenizer>
std::unique_ptr<Tokenizer> load_tokenizer() {
  const std::string path = tokenizer_model_path();
  if (path.empty())
    fail("no tokenizer.model: set GEMMA3_TOKENIZER (scripts/get_tokenizer.sh builds one)");
  return std::make_unique<Tokenizer>(path);
}

}  // namespace fuzz
