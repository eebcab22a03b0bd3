// Files in and out, safely.
//
// Reading: only regular files are read, and opening never blocks (a FIFO given as config.json
// would otherwise wait for a writer forever).
//
// Writing: nothing the project writes appears under its final name until it is complete and on
// disk. An OutputFile writes a temporary file in the target's directory, checks every write,
// fsyncs and closes it, then renames it over the target. A process that has the old file mapped
// keeps reading the old inode, so it never sees a half-written or truncated file (no SIGBUS). An
// OutputDirectory does the same for a set of files (a checkpoint, a dump): they are written into a
// temporary sibling directory, a completion stamp listing each file and its size is written last,
// and the directory then replaces the target in one rename. Readers check the stamp where one is
// present (`check_completion_stamp`).
#pragma once

#include "gemma3/build_mode.hpp"
#include "gemma3/error.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>

namespace gemma3::inline GEMMA3_MODE {

// Progress of a long step: `done` of `total` units (bytes, unless the step says otherwise). A
// callback may throw to abandon the step (the CLI does on Ctrl-C); outputs are then left untouched.
using Progress = std::function<void(uint64_t done, uint64_t total)>;

namespace detail {

inline std::string errno_message(int error) {
  return std::error_code(error, std::generic_category()).message();
}

inline const char* file_kind(mode_t mode) {
  return S_ISDIR(mode)    ? "a directory"
         : S_ISFIFO(mode) ? "a FIFO"
         : S_ISCHR(mode)  ? "a character device"
         : S_ISBLK(mode)  ? "a block device"
         : S_ISSOCK(mode) ? "a socket"
                          : "not a regular file";
}

// A descriptor of `path` opened for reading, if it is a regular file (`st` gets its status).
// O_NONBLOCK makes opening a FIFO return at once, so it can be refused.
inline int open_regular_file(const std::filesystem::path& path, struct stat* st) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw IoError(path.string(), "cannot open: " + errno_message(errno));
  if (::fstat(fd, st) != 0) {
    const int error = errno;
    ::close(fd);
    throw IoError(path.string(), std::string("cannot stat: ") + errno_message(error));
  }
  if (!S_ISREG(st->st_mode)) {
    ::close(fd);
    throw IoError(path.string(),
                  std::string("is ") + file_kind(st->st_mode) + ", not a regular file");
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

// A name for a temporary sibling of `target` that no other writer uses.
inline std::filesystem::path temporary_sibling(const std::filesystem::path& target) {
  static std::atomic<uint64_t> counter{0};
  const uint64_t tag =
      (uint64_t(::getpid()) << 32) ^ counter.fetch_add(1) ^
      uint64_t(std::chrono::steady_clock::now().time_since_epoch().count() & 0xffffffff);
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, ".tmp-%016llx", static_cast<unsigned long long>(tag));
  const std::filesystem::path dir = target.parent_path().empty() ? "." : target.parent_path();
  std::string name = target.filename().string();
  name.insert(0, 1, '.');  // (not "." + name: GCC 12 warns wrongly about that concatenation)
  name += suffix;
  return dir / name;
}

inline void fsync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // the rename happened; only its durability across a crash is at stake
  const int rc = ::fsync(fd), error = errno;
  ::close(fd);
  // Some filesystems cannot fsync a directory (EINVAL); their renames are as durable as they get.
  if (rc != 0 && error != EINVAL && error != EROFS)
    throw IoError(dir.string(), "cannot sync the directory: " + errno_message(error));
}

}  // namespace detail

// Throws IoError naming `path` unless it is a regular file that can be opened for reading, without
// blocking on a FIFO (for inputs that another library opens itself).
inline void check_regular_file(const std::filesystem::path& path) {
  struct stat st {};
  ::close(detail::open_regular_file(path, &st));
}

// The whole of a regular file, at most `max_bytes` of it. `what` names the expected content in
// errors ("config file", "image file").
inline std::string read_file(const std::filesystem::path& path, const char* what = "file",
                             uint64_t max_bytes = uint64_t(1) << 40) {
  struct stat st {};
  const int fd = detail::open_regular_file(path, &st);
  if (uint64_t(st.st_size) > max_bytes) {
    ::close(fd);
    throw IoError(path.string(), std::to_string(st.st_size) + "-byte " + what + " exceeds the " +
                                     std::to_string(max_bytes) + "-byte limit");
  }
  std::string text(std::size_t(st.st_size), '\0');
  for (std::size_t done = 0; done < text.size();) {
    const ssize_t n = ::read(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = errno;
      ::close(fd);
      throw IoError(path.string(),
                    "read " + std::to_string(done) + " of " + std::to_string(text.size()) +
                        " bytes: " + (n < 0 ? detail::errno_message(error) : "file shrank"));
    }
    done += std::size_t(n);
  }
  ::close(fd);
  return text;
}

// One output file, written in full or not at all (see the top of this file). Until commit(), the
// bytes go to a temporary file beside the target; destroying an uncommitted OutputFile removes it.
class OutputFile {
 public:
  explicit OutputFile(std::filesystem::path target) : target_(std::move(target)) {
    for (int attempt = 0; fd_ < 0; ++attempt) {
      temporary_ = detail::temporary_sibling(target_);
      // 0666 before the umask, as any other program's new file.
      fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ < 0 && (errno != EEXIST || attempt == 100))
        throw IoError(target_.string(), "cannot create (a temporary file in " +
                                            temporary_.parent_path().string() +
                                            "): " + detail::errno_message(errno));
    }
  }
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temporary_.c_str());
  }

  void write(const void* data, std::size_t n) {
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0)
        throw IoError(target_.string(),
                      "write failed after " + std::to_string(written_) +
                          " bytes: " + detail::errno_message(w < 0 ? errno : EIO));
      p += w, n -= std::size_t(w), written_ += uint64_t(w);
    }
  }
  void write(std::string_view s) { write(s.data(), s.size()); }
  uint64_t bytes_written() const { return written_; }

  // Flushes the file to disk, closes it and renames it over the target.
  void commit() {
    if (::fsync(fd_) != 0)
      throw IoError(target_.string(), "cannot sync to disk: " + detail::errno_message(errno));
    const int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) throw IoError(target_.string(), "close failed: " + detail::errno_message(errno));
    if (::rename(temporary_.c_str(), target_.c_str()) != 0)
      throw IoError(target_.string(), "cannot replace: " + detail::errno_message(errno));
    committed_ = true;
    detail::fsync_directory(target_.parent_path());
  }

 private:
  std::filesystem::path target_, temporary_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
};

// Writes `text` to `path` through an OutputFile.
inline void write_file(const std::filesystem::path& path, std::string_view text) {
  OutputFile out(path);
  out.write(text);
  out.commit();
}

// The completion stamp of an OutputDirectory: {"files": {name: size, ...}, ...}.
inline constexpr const char* kCompletionStamp = "gemma3-complete.json";

// Whether `dir` carries a completion stamp; if it does, every file it lists must be there with its
// size, or IoError names the first that is not (the directory was changed after it was written).
inline bool check_completion_stamp(const std::filesystem::path& dir) {
  const std::filesystem::path stamp = dir / kCompletionStamp;
  std::error_code ec;
  if (!std::filesystem::exists(stamp, ec)) return false;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(stamp, "completion stamp", 16 << 20));
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(stamp.string(), std::string("invalid JSON: ") + e.what());
  }
  if (!j.is_object() || !j.contains("files") || !j["files"].is_object())
    throw FormatError(stamp.string(), "expected an object with a \"files\" object");
  for (const auto& [name, size] : j["files"].items()) {
    if (!size.is_number_unsigned())
      throw FormatError(stamp.string(), "size of \"" + name + "\" is not a byte count");
    const auto path = dir / name;
    const uint64_t actual = std::filesystem::file_size(path, ec);
    if (ec)
      throw IoError(path.string(), "listed in " + std::string(kCompletionStamp) +
                                       " but cannot be read: " + ec.message() + " (remove " +
                                       kCompletionStamp + " to accept the change)");
    if (actual != size.get<uint64_t>())
      throw IoError(path.string(), "is " + std::to_string(actual) + " bytes, " + kCompletionStamp +
                                       " says " + std::to_string(size.get<uint64_t>()) +
                                       ": the directory was changed after it was written (remove " +
                                       kCompletionStamp + " to accept the change)");
  }
  return true;
}

// A directory of outputs, written in full or not at all (see the top of this file). Files are
// written into path() (a temporary sibling of the target); commit() stamps them and puts the
// directory in place of the target, which must be absent, empty, or a directory gemma3 wrote (one
// with a completion stamp): other directories are not replaced.
class OutputDirectory {
 public:
  explicit OutputDirectory(std::filesystem::path target) : target_(std::move(target)) {
    std::error_code ec;
    const auto status = std::filesystem::symlink_status(target_, ec);
    if (std::filesystem::exists(status)) {
      if (!std::filesystem::is_directory(status))
        throw IoError(target_.string(), "exists and is not a directory");
      if (!std::filesystem::is_empty(target_, ec) &&
          !std::filesystem::exists(target_ / kCompletionStamp, ec))
        throw IoError(target_.string(),
                      std::string("exists and holds files that gemma3 did not write (no ") +
                          kCompletionStamp + "); choose a new directory or remove it");
    }
    const std::filesystem::path parent =
        target_.parent_path().empty() ? "." : target_.parent_path();
    std::filesystem::create_directories(parent, ec);
    if (ec) throw IoError(parent.string(), "cannot create the directory: " + ec.message());
    for (int attempt = 0;; ++attempt) {
      temporary_ = detail::temporary_sibling(target_);
      if (::mkdir(temporary_.c_str(), 0777) == 0) break;
      if (errno != EEXIST || attempt == 100)
        throw IoError(target_.string(), "cannot create (a temporary directory in " +
                                            parent.string() + "): " + detail::errno_message(errno));
    }
  }
  OutputDirectory(const OutputDirectory&) = delete;
  OutputDirectory& operator=(const OutputDirectory&) = delete;
  ~OutputDirectory() {
    std::error_code ec;
    if (!committed_) std::filesystem::remove_all(temporary_, ec);
  }

  // Where the files go until commit().
  const std::filesystem::path& path() const { return temporary_; }
  const std::filesystem::path& target() const { return target_; }

  // Writes the completion stamp (each file and its size, plus `about`) and replaces the target.
  void commit(nlohmann::json about = nlohmann::json::object()) {
    nlohmann::json files = nlohmann::json::object();
    for (const auto& entry : std::filesystem::directory_iterator(temporary_))
      if (entry.is_regular_file()) files[entry.path().filename().string()] = entry.file_size();
    about["files"] = std::move(files);
    write_file(temporary_ / kCompletionStamp, about.dump(2) + "\n");
    detail::fsync_directory(temporary_);
    std::error_code ec;
    if (std::filesystem::exists(std::filesystem::symlink_status(target_, ec)) &&
        !std::filesystem::is_empty(target_, ec)) {
      // Swap the two directories in one step, then remove the old one (now at the temporary name).
      // Filesystems without RENAME_EXCHANGE get two renames: the target is briefly absent, never
      // incomplete.
      std::filesystem::path old = temporary_;
      if (::renameat2(AT_FDCWD, temporary_.c_str(), AT_FDCWD, target_.c_str(), RENAME_EXCHANGE) !=
          0) {
        if (errno != EINVAL && errno != ENOSYS)
          throw IoError(target_.string(), "cannot replace: " + detail::errno_message(errno));
        old = detail::temporary_sibling(target_);
        if (::rename(target_.c_str(), old.c_str()) != 0)
          throw IoError(target_.string(), "cannot move aside: " + detail::errno_message(errno));
        if (::rename(temporary_.c_str(), target_.c_str()) != 0) {
          const int error = errno;
          ::rename(old.c_str(), target_.c_str());
          throw IoError(target_.string(), "cannot replace: " + detail::errno_message(error));
        }
      }
      committed_ = true;
      std::filesystem::remove_all(old, ec);
    } else {
      if (::rename(temporary_.c_str(), target_.c_str()) != 0)
        throw IoError(target_.string(), "cannot create: " + detail::errno_message(errno));
      committed_ = true;
    }
    detail::fsync_directory(target_.parent_path());
  }

 private:
  std::filesystem::path target_, temporary_;
  bool committed_ = false;
};

}  // namespace gemma3::inline GEMMA3_MODE
