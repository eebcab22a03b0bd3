// What the command line shares about its console: progress bars, Ctrl-C, and checked output.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

#include <gemma3/error.hpp>
#include <gemma3/io/files.hpp>

namespace gemma3::cli {

// "1.50 GiB".
std::string human_bytes(double bytes);

// A long step was stopped by Ctrl-C.
class Interrupted : public Error {
 public:
  Interrupted() : Error("", "interrupted") {}
};

// Ctrl-C and SIGTERM: the first sets a flag that long steps poll (generation stops cleanly,
// writers abandon their temporary files); the second ends the process at once (exit 130).
// SIGPIPE and SIGXFSZ are ignored, so a closed pipe or a file-size limit is a write error that
// names what failed, not a silent death.
void install_signal_handlers();
bool interrupted();
// Forgets a Ctrl-C that has been handled (chat goes back to its prompt).
void clear_interrupt();
// Throws Interrupted after a Ctrl-C.
void throw_if_interrupted();

// A long step's progress on stderr: on a terminal, one line redrawn at most 10 times a second with
// the fraction done and an ETA; elsewhere (CI logs) a plain line at each tenth. Calling it also
// polls Ctrl-C.
class ProgressBar {
 public:
  explicit ProgressBar(std::string label, bool bytes = true);
  void operator()(uint64_t done, uint64_t total);
  // As a library Progress callback (which must outlive no ProgressBar).
  Progress callback() {
    return [this](uint64_t done, uint64_t total) { (*this)(done, total); };
  }

 private:
  std::string label_;
  bool bytes_, terminal_;
  double start_, last_draw_ = -1;
  int last_tenth_ = -1;
};

// Validators for numeric options. CLI11's own print a limit such as DBL_MAX with all its 309
// digits and let a plain conversion wrap (-1 as a uint64 seed) or round (1e23 as an integer); these
// print numbers as %g and refuse anything that is not exactly a value of the option's kind.
CLI::Validator real_in(double lo, double hi,
                       bool above_lo = false);    // finite; (lo, hi] if above_lo
CLI::Validator whole_in(int64_t lo, int64_t hi);  // digits only, no 1e3 or 2.5
CLI::Validator any_uint64();                      // 0 to 2^64 - 1, digits only

// Writes to stdout and flushes; a failed write (a full disk, a closed pipe) throws IoError naming
// stdout, so a command never reports success for output that was lost.
void write_stdout(std::string_view text);
// Flushes stdout and throws IoError if any earlier write to it failed.
void check_stdout();

}  // namespace gemma3::cli
