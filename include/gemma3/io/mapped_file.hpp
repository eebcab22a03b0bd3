// A whole file, read-only: by default a memory mapping (checkpoints stay on disk and in the page
// cache, and tensors are views into the mapping: no copy at load), or on request a copy in 2 MiB
// pages (Residency::HugePages), which only edit() writes to (a GGUF's rows interleaved at load).
//
// A mapped file that changes underneath (another program truncates it or writes over it; gemma3's
// own writers never do, they rename a new file into place) is detected, not obeyed:
//   * check_unchanged() compares the open file's size and modification time with those at open,
//     and throws IoError naming the file when they differ. Callers check between steps (the CLI
//     after every token and every chat turn).
//   * A read past the end of a truncated file raises SIGBUS. The handler installed with the first
//     mapping turns that into zero pages over the lost part and a mark on the file, so the process
//     carries on to the next check_unchanged(), which reports it. Faults outside the mapped files
//     go to the handler that was there before (by default, the process ends as usual).
// Not guaranteed: results computed between a change and the next check are void; a file changed
// and restored to the same size and time within one timestamp tick is not noticed; after 256
// mappings at once, further ones are checked for changes but not guarded against SIGBUS.
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <utility>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gemma3/error.hpp"
#include "gemma3/io/files.hpp"

namespace gemma3::inline GEMMA3_MODE {

// How a checkpoint file's bytes are held while a model runs. Decode streams every weight once per
// token, so this sets its speed: on the development machine, weights read from anonymous 2 MiB
// pages decoded at 0.89-0.97 of the read-bandwidth roofline, the same weights mapped from the
// page cache at 0.60-0.69 (docs/performance.md).
enum class Residency {
  Mapped,     // mapped from the file, no copy: loads in milliseconds once the page cache is warm
  HugePages,  // read once into anonymous memory backed by 2 MiB pages (MADV_HUGEPAGE): loading
              // reads the whole file (seconds for 1B), decoding is faster; on an AVX512-VNNI CPU a
              // GGUF's Q8_0, Q4_0, Q5_0, Q4_K, Q5_K and Q6_K rows are then interleaved for the
              // int8 kernel
              // (gguf::Tensors, checkpoint.hpp's interleave_rows)
};

// Anonymous read-write memory of at least `bytes`, starting at a 2 MiB boundary and backed by 2 MiB
// pages where the kernel grants them (transparent huge pages are given only on request when
// /sys/kernel/mm/transparent_hugepage/enabled says "madvise"). Pages are zero until written.
class HugePageMemory {
 public:
  static constexpr std::size_t kPage = std::size_t(2) << 20;

  HugePageMemory() = default;
  explicit HugePageMemory(std::size_t bytes) {
    if (bytes == 0) return;
    size_ = (bytes + kPage - 1) / kPage * kPage;
    // Reserve one page more and trim both ends, so that the start is 2 MiB aligned.
    const std::size_t reserved = size_ + kPage;
    void* p = ::mmap(nullptr, reserved, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      throw IoError("memory", "cannot allocate " + std::to_string(size_ >> 20) +
                                  " MiB: " + std::strerror(errno));
    const auto base = reinterpret_cast<std::uintptr_t>(p);
    const std::uintptr_t aligned = (base + kPage - 1) / kPage * kPage;
    if (aligned > base) ::munmap(p, aligned - base);
    if (const std::size_t tail = base + reserved - (aligned + size_); tail > 0)
      ::munmap(reinterpret_cast<void*>(aligned + size_), tail);
    data_ = reinterpret_cast<std::byte*>(aligned);
#ifdef MADV_HUGEPAGE
    ::madvise(data_, size_, MADV_HUGEPAGE);  // a hint: without it, 4 KiB pages
#endif
  }
  HugePageMemory(const HugePageMemory&) = delete;
  HugePageMemory& operator=(const HugePageMemory&) = delete;
  HugePageMemory(HugePageMemory&& o) noexcept {
    swap(o);
  }
  HugePageMemory& operator=(HugePageMemory&& o) noexcept {
    swap(o);
    return *this;
  }
  ~HugePageMemory() {
    if (data_) ::munmap(data_, size_);
  }

  std::byte* data() const {
    return data_;
  }
  std::size_t size() const {
    return size_;
  }
  // Makes the memory read-only: a stray write then faults instead of changing the weights; unseal
  // makes it writable again. Both report whether the kernel did it.
  bool seal() const {
    return !data_ || ::mprotect(data_, size_, PROT_READ) == 0;
  }
  bool unseal() const {
    return !data_ || ::mprotect(data_, size_, PROT_READ | PROT_WRITE) == 0;
  }

 private:
  void swap(HugePageMemory& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
  }
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

namespace detail {

// The mapped files' address ranges, for the SIGBUS handler: lock-free, as a handler must be.
struct GuardedRange {
  std::atomic<uintptr_t> begin{0}, end{0};
  std::atomic<bool> faulted{false};
};
inline GuardedRange g_guarded[256];
inline struct sigaction g_previous_sigbus {};
inline uintptr_t g_page_size = 4096;

inline void on_sigbus(int sig, siginfo_t* info, void* context) {
  const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (auto& r : g_guarded) {
    const uintptr_t begin = r.begin.load(), end = r.end.load();
    if (begin == 0 || addr < begin || addr >= end) continue;
    // The file lost these pages: put zero pages in their place and mark the file, so the read
    // completes and the next check_unchanged() reports it.
    const uintptr_t page = addr & ~(g_page_size - 1);
    ::mmap(reinterpret_cast<void*>(page), end - page, PROT_READ,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    r.faulted.store(true);
    return;
  }
  // Not a mapped checkpoint: do what would have happened without this handler.
  if (g_previous_sigbus.sa_flags & SA_SIGINFO) {
    if (g_previous_sigbus.sa_sigaction) g_previous_sigbus.sa_sigaction(sig, info, context);
    return;
  }
  if (g_previous_sigbus.sa_handler != SIG_DFL && g_previous_sigbus.sa_handler != SIG_IGN) {
    g_previous_sigbus.sa_handler(sig);
    return;
  }
  ::signal(SIGBUS, SIG_DFL);  // the access runs again and the default action ends the process
}

// Registers [data, data + size) with the SIGBUS handler (installed on first use); returns its slot
// or -1 when all are taken.
inline int guard_mapping(const void* data, std::size_t size) {
  static std::once_flag installed;
  std::call_once(installed, [] {
    g_page_size = uintptr_t(::sysconf(_SC_PAGESIZE));
    struct sigaction sa {};
    sa.sa_sigaction = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    ::sigaction(SIGBUS, &sa, &g_previous_sigbus);
  });
  const auto begin = reinterpret_cast<uintptr_t>(data);
  const uintptr_t end = begin + (size + g_page_size - 1) / g_page_size * g_page_size;
  for (int i = 0; i < int(std::size(g_guarded)); ++i) {
    uintptr_t expected = 0;
    if (!g_guarded[i].begin.compare_exchange_strong(expected, begin)) continue;
    g_guarded[i].faulted.store(false);
    g_guarded[i].end.store(end);
    return i;
  }
  return -1;
}

inline void unguard_mapping(int slot) {
  if (slot < 0) return;
  g_guarded[slot].end.store(0);
  g_guarded[slot].begin.store(0);
}

}  // namespace detail

class MappedFile {
 public:
  MappedFile() = default;
  // `progress` hears of the bytes read into huge pages (a mapping reads nothing up front).
  explicit MappedFile(const std::filesystem::path& path, Residency residency = Residency::Mapped,
                      const Progress& progress = {})
      : path_(path) {
    const int fd = detail::open_regular_file(path, &opened_);
    size_ = static_cast<std::size_t>(opened_.st_size);
    try {
      if (size_ > 0 && residency == Residency::HugePages)
        read_into_huge_pages(fd, progress);
      else if (size_ > 0)
        map(fd);
    } catch (...) {
      ::close(fd);
      throw;
    }
    // A mapping keeps the descriptor, to notice changes to the file (check_unchanged).
    if (data_ && residency == Residency::Mapped)
      fd_ = fd;
    else
      ::close(fd);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& o) noexcept { swap(o); }
  MappedFile& operator=(MappedFile&& o) noexcept {
    swap(o);
    return *this;
  }
  ~MappedFile() {
    detail::unguard_mapping(guard_);
    if (data_ && copy_.data() == nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
  }

  // Throws IoError naming the file if a mapped file changed since it was opened (size or
  // modification time), or lost pages under a read (SIGBUS). A copy in huge pages never changes.
  void check_unchanged() const {
    if (fd_ < 0) return;
    if (guard_ >= 0 && detail::g_guarded[guard_].faulted.load())
      throw IoError(path_.string(),
                    "was truncated while mapped (a read past its new end raised SIGBUS): results "
                    "since then are void; load the model again");
    struct stat now {};
    if (::fstat(fd_, &now) != 0)
      throw IoError(path_.string(), "cannot stat: " + detail::errno_message(errno));
    if (now.st_size != opened_.st_size || now.st_mtim.tv_sec != opened_.st_mtim.tv_sec ||
        now.st_mtim.tv_nsec != opened_.st_mtim.tv_nsec)
      throw IoError(path_.string(),
                    "changed on disk while mapped (" + std::to_string(opened_.st_size) +
                        " bytes when opened, " + std::to_string(now.st_size) +
                        " now, modification time " +
                        (now.st_mtim.tv_sec == opened_.st_mtim.tv_sec &&
                                 now.st_mtim.tv_nsec == opened_.st_mtim.tv_nsec
                             ? "the same"
                             : "changed") +
                        "): its weights can no longer be trusted; load the model again");
  }

  const std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }
  // Lets `edit` change the bytes of a copy in huge pages in place (given where they begin), then
  // seals them again. A mapping of the file is never written: IoError.
  void edit(const std::function<void(std::byte*)>& edit) {
    if (!copy_.data())
      throw IoError(path_.string(), "is mapped, not copied into memory: its bytes are read-only");
    if (!copy_.unseal())
      throw IoError(path_.string(), std::string("cannot make its copy in memory writable: ") +
                                        std::strerror(errno));
    try {
      edit(copy_.data());
    } catch (...) {
      copy_.seal();
      throw;
    }
    copy_.seal();
  }
  Residency residency() const { return copy_.data() ? Residency::HugePages : Residency::Mapped; }

 private:
  void map(int fd) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
      throw IoError(path_.string(), std::string("cannot map: ") + std::strerror(errno));
    data_ = static_cast<const std::byte*>(p);
    guard_ = detail::guard_mapping(p, size_);
    // Checkpoints are read whole, again and again: ask for read-ahead, and for 2 MiB pages where
    // the kernel backs file mappings with them. Both are hints; a kernel that declines them
    // changes nothing.
    ::madvise(p, size_, MADV_WILLNEED);
#ifdef MADV_HUGEPAGE
    ::madvise(p, size_, MADV_HUGEPAGE);
#endif
  }

  void read_into_huge_pages(int fd, const Progress& progress) {
    copy_ = HugePageMemory(size_);
    constexpr std::size_t kChunk = std::size_t(64) << 20;  // progress is reported per chunk
    for (std::size_t done = 0; done < size_;) {
      if (progress) progress(done, size_);
      const ssize_t n =
          ::pread(fd, copy_.data() + done, std::min(kChunk, size_ - done), off_t(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        throw IoError(path_.string(),
                      "read " + std::to_string(done) + " of " + std::to_string(size_) +
                          " bytes: " + (n < 0 ? std::strerror(errno) : "unexpected end of file"));
      done += std::size_t(n);
    }
    copy_.seal();
    data_ = copy_.data();
    if (progress) progress(size_, size_);
  }

  void swap(MappedFile& o) noexcept {
    std::swap(path_, o.path_);
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(copy_, o.copy_);
    std::swap(fd_, o.fd_);
    std::swap(guard_, o.guard_);
    std::swap(opened_, o.opened_);
  }
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  HugePageMemory copy_;  // holds the bytes for Residency::HugePages
  int fd_ = -1;          // the mapped file, open while mapped
  int guard_ = -1;       // its slot with the SIGBUS handler
  struct stat opened_ {};
};

}  // namespace gemma3::inline GEMMA3_MODE
