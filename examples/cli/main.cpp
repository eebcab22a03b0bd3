// gemma3 — run, inspect and check Gemma 3 checkpoints on the CPU.
//
// Exit codes: 0 success, 1 runtime error (bad file, bad input), 2 usage error (bad arguments).
// Every error is one line on stderr.
#include <cstdio>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <exception>

#include <CLI/CLI.hpp>

#include <gemma3/error.hpp>

#include "commands.hpp"
#include "console.hpp"

int main(int argc, char** argv) {
#ifdef __GLIBC__
  // The forward pass allocates its activations per step. glibc serves blocks above 128 KiB with a
  // fresh mmap and unmaps them on free, so every step would fault its pages in again (15-20% of a
  // prefill here); keep them in the heap for reuse instead.
  mallopt(M_MMAP_THRESHOLD, 512 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
  gemma3::cli::install_signal_handlers();
  CLI::App app{"gemma3: a CPU research implementation of Gemma 3"};
  gemma3::cli::add_commands(app);
  try {
    gemma3::cli::set_threads(0);  // the environment's thread settings, checked before any work
    app.parse(argc, argv);
    gemma3::cli::check_stdout();  // output that could not be written is an error, not success
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const gemma3::cli::Interrupted&) {
    std::fprintf(stderr, "gemma3: interrupted\n");
    return 130;
  } catch (const gemma3::InvalidArgument& e) {
    std::fprintf(stderr, "gemma3: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gemma3: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
