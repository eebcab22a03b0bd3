// gemma3 — run, inspect and check Gemma 3 checkpoints on the CPU.
//
// Exit codes: 0 success, 1 runtime error (bad file, bad input), 2 usage error (bad arguments).
// Every error is one line on stderr.
#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include <CLI/CLI.hpp>

#include <gemma3/error.hpp>
#include <gemma3/memory.hpp>

#include "commands.hpp"
#include "console.hpp"

namespace {

bool has_command(const CLI::App& app, const std::string& name) {
  for (const auto* sub : app.get_subcommands({}))
    if (sub->check_name(name)) return true;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  gemma3::keep_freed_memory();  // every step's activations reused, not faulted in again
  gemma3::cli::install_signal_handlers();
  CLI::App app{"gemma3: a CPU research implementation of Gemma 3"};
  gemma3::cli::add_commands(app);
  // An unknown command is named (CLI11 alone would say that a subcommand is required).
  if (argc > 1 && argv[1][0] != '-' && !has_command(app, argv[1])) {
    std::string names;
    for (const auto* sub : app.get_subcommands({}))
      names += (names.empty() ? "" : ", ") + sub->get_name();
    std::fprintf(stderr, "gemma3: error: unknown command '%s' (the commands: %s)\n", argv[1],
                 names.c_str());
    return 2;
  }
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
  } catch (const std::bad_alloc&) {
    // The loaders and the KV cache check their sizes first; this is whatever else did not fit.
    std::fprintf(stderr,
                 "gemma3: error: out of memory: an allocation failed (a smaller --context or "
                 "--prompt-tokens, or more memory, is needed)\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gemma3: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
