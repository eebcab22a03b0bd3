// The `gemma3` command line: each command group registers its subcommands on the CLI11 app.
#pragma once

#include <CLI/CLI.hpp>

namespace gemma3::cli {

void add_checkpoint_commands(CLI::App& app);  // synth, inspect
void add_dump_command(CLI::App& app);         // dump
void add_tokenize_commands(CLI::App& app);    // tokenize, detokenize
void add_run_commands(CLI::App& app);         // run, chat
void add_bench_command(CLI::App& app);        // bench

}  // namespace gemma3::cli
