// The `gemma3` command line: each command group registers its subcommands on the CLI11 app.
#pragma once

#include <CLI/CLI.hpp>

namespace gemma3::cli {

void add_checkpoint_commands(CLI::App& app);  // synth, inspect, convert
void add_dump_command(CLI::App& app);         // dump
void add_tokenize_commands(CLI::App& app);    // tokenize, detokenize
void add_run_commands(CLI::App& app);         // run, chat
void add_bench_command(CLI::App& app);        // bench

// The whole command line: what main.cpp runs and tests/fuzz/fuzz_cli.cpp parses.
inline void add_commands(CLI::App& app) {
  app.require_subcommand(1);
  add_checkpoint_commands(app);
  add_dump_command(app);
  add_tokenize_commands(app);
  add_run_commands(app);
  add_bench_command(app);
}

}  // namespace gemma3::cli
