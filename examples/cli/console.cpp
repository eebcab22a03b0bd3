#include "console.hpp"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>

#include <omp.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <gemma3/threads.hpp>

#include "commands.hpp"

namespace gemma3::cli {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, ++u;
  char s[32];
  std::snprintf(s, sizeof s, u ? "%.2f %s" : "%.0f %s", b, units[u]);
  return s;
}

namespace {

volatile std::sig_atomic_t g_interrupts = 0;

void on_interrupt(int) {
  g_interrupts = g_interrupts + 1;
  if (g_interrupts >= 2) {
    static const char message[] = "\ngemma3: interrupted twice, exiting\n";
    (void)!::write(2, message, sizeof message - 1);
    ::_exit(130);
  }
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string minutes_seconds(double s) {
  char text[32];
  std::snprintf(text, sizeof text, "%dm%02ds", int(s) / 60, int(s) % 60);
  return text;
}

}  // namespace

void set_threads(int threads) {
  int n = omp_get_num_procs();
  if (threads != 0)
    n = parse_threads(std::to_string(threads), "--threads");
  else if (const char* env = std::getenv("GEMMA3_NUM_THREADS"))
    n = parse_threads(env, "GEMMA3_NUM_THREADS");
  else if (const char* omp = std::getenv("OMP_NUM_THREADS"))
    n = parse_threads(omp, "OMP_NUM_THREADS");
  // Checked even when another setting wins: libgomp would still read it for nested regions.
  if (const char* omp = std::getenv("OMP_NUM_THREADS")) parse_threads(omp, "OMP_NUM_THREADS");
  omp_set_num_threads(n);
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking read (chat's prompt) returns EINTR
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGXFSZ, SIG_IGN);
}

bool interrupted() {
  return g_interrupts > 0;
}
void clear_interrupt() {
  g_interrupts = 0;
}
void throw_if_interrupted() {
  if (interrupted()) throw Interrupted();
}

ProgressBar::ProgressBar(std::string label, bool bytes)
    : label_(std::move(label)), bytes_(bytes), terminal_(::isatty(2)), start_(now_seconds()) {}

void ProgressBar::operator()(uint64_t done, uint64_t total) {
  throw_if_interrupted();
  if (total == 0) return;
  const double now = now_seconds(), elapsed = now - start_, fraction = double(done) / double(total);
  const bool finished = done >= total;
  const std::string amount = bytes_
                                 ? human_bytes(double(done)) + " of " + human_bytes(double(total))
                                 : std::to_string(done) + " of " + std::to_string(total);
  const std::string eta =
      finished   ? "in " + minutes_seconds(elapsed)
      : done > 0 ? "ETA " + minutes_seconds(elapsed * double(total - done) / double(done))
                 : "ETA --";
  if (terminal_) {
    if (!finished && now - last_draw_ < 0.1) return;
    last_draw_ = now;
    const int width = 30, filled = int(width * fraction);
    std::fprintf(stderr, "\r%s [%s%s] %3d%% %s, %s\033[K", label_.c_str(),
                 std::string(std::size_t(filled), '=').c_str(),
                 std::string(std::size_t(width - filled), ' ').c_str(), int(100 * fraction),
                 amount.c_str(), eta.c_str());
    if (finished) std::fputc('\n', stderr);
  } else {
    const int tenth = int(10 * fraction);
    if (tenth == last_tenth_) return;
    last_tenth_ = tenth;
    std::fprintf(stderr, "%s: %3d%% (%s), %s\n", label_.c_str(), tenth * 10, amount.c_str(),
                 eta.c_str());
  }
  std::fflush(stderr);
}

namespace {

std::string g(double x) {
  char s[32];
  std::snprintf(s, sizeof s, "%g", x);
  return s;
}

bool all_digits(const std::string& s, std::size_t from = 0) {
  if (s.size() <= from) return false;
  for (std::size_t i = from; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

}  // namespace

CLI::Validator real_in(double lo, double hi, bool above_lo) {
  const std::string range = (above_lo ? "(" : "[") + g(lo) + ", " + g(hi) + "]";
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        char* end = nullptr;
        errno = 0;
        const double x = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0') return "'" + text + "' is not a number";
        if (!std::isfinite(x) || errno == ERANGE) return text + " is not a finite number";
        if (x < lo || x > hi || (above_lo && x == lo)) return text + " is not in " + range;
        return {};
      },
      "NUMBER in " + range);
}

CLI::Validator whole_in(int64_t lo, int64_t hi) {
  const std::string range = "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        if (!all_digits(text, text.rfind('-', 0) == 0 ? 1 : 0))
          return "'" + text + "' is not a whole number";
        errno = 0;
        const long long x = std::strtoll(text.c_str(), nullptr, 10);
        if (errno == ERANGE || x < lo || x > hi) return text + " is not in " + range;
        return {};
      },
      "INTEGER in " + range);
}

CLI::Validator any_uint64() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        errno = 0;
        if (!all_digits(text) || (std::strtoull(text.c_str(), nullptr, 10), errno == ERANGE))
          return "'" + text + "' is not a whole number from 0 to 18446744073709551615";
        return {};
      },
      "INTEGER in [0, 2^64 - 1]");
}

void check_stdout() {
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    const int error = errno;
    std::clearerr(stdout);
    throw IoError("stdout",
                  std::string("write failed: ") + (error ? std::strerror(error) : "unknown error"));
  }
}

void write_stdout(std::string_view text) {
  if (!text.empty() && std::fwrite(text.data(), 1, text.size(), stdout) != text.size())
    check_stdout();
  check_stdout();
}

}  // namespace gemma3::cli
