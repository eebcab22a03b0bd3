// A whole file, read-only: by default a memory mapping (checkpoints stay on disk and in the page
// cache, and tensors are views into the mapping: no copy at load), or on request a copy in 2 MiB
// pages (Residency::HugePages).
#pragma once

#include "gemma3/build_mode.hpp"

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gemma3/error.hpp"

namespace gemma3::inline GEMMA3_MODE {

// How a checkpoint file's bytes are held while a model runs. Decode streams every weight once per
// token, so this sets its speed: on the development machine, weights read from anonymous 2 MiB
// pages decoded at 0.89-0.97 of the read-bandwidth roofline, the same weights mapped from the
// page cache at 0.60-0.69 (docs/performance.md).
enum class Residency {
  Mapped,     // mapped from the file, no copy: loads in milliseconds once the page cache is warm
  HugePages,  // read once into anonymous memory backed by 2 MiB pages (MADV_HUGEPAGE): loading
              // reads the whole file (seconds for 1B), decoding is faster
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
  // Makes the memory read-only: a stray write then faults instead of changing the weights.
  void seal() const {
    if (data_) ::mprotect(data_, size_, PROT_READ);
  }

 private:
  void swap(HugePageMemory& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
  }
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::filesystem::path& path, Residency residency = Residency::Mapped)
      : path_(path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw IoError(path.string(), std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      throw IoError(path.string(), "not a regular file");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    try {
      if (size_ > 0 && residency == Residency::HugePages)
        read_into_huge_pages(fd);
      else if (size_ > 0)
        map(fd);
    } catch (...) {
      ::close(fd);
      throw;
    }
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
    if (data_ && copy_.data() == nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
  }

  const std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }
  Residency residency() const { return copy_.data() ? Residency::HugePages : Residency::Mapped; }

 private:
  void map(int fd) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
      throw IoError(path_.string(), std::string("cannot map: ") + std::strerror(errno));
    data_ = static_cast<const std::byte*>(p);
    // Checkpoints are read whole, again and again: ask for read-ahead, and for 2 MiB pages where
    // the kernel backs file mappings with them. Both are hints; a kernel that declines them
    // changes nothing.
    ::madvise(p, size_, MADV_WILLNEED);
#ifdef MADV_HUGEPAGE
    ::madvise(p, size_, MADV_HUGEPAGE);
#endif
  }

  void read_into_huge_pages(int fd) {
    copy_ = HugePageMemory(size_);
    for (std::size_t done = 0; done < size_;) {
      const ssize_t n = ::pread(fd, copy_.data() + done, size_ - done, off_t(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        throw IoError(path_.string(),
                      "read " + std::to_string(done) + " of " + std::to_string(size_) +
                          " bytes: " + (n < 0 ? std::strerror(errno) : "unexpected end of file"));
      done += std::size_t(n);
    }
    copy_.seal();
    data_ = copy_.data();
  }

  void swap(MappedFile& o) noexcept {
    std::swap(path_, o.path_);
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(copy_, o.copy_);
  }
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  HugePageMemory copy_;  // holds the bytes for Residency::HugePages
};

}  // namespace gemma3::inline GEMMA3_MODE
