// The `gemma3` command line: each command group registers its subcommands on the CLI11 app.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include <gemma3/checkpoint.hpp>

namespace gemma3::cli {

void add_checkpoint_commands(CLI::App& app);  // synth, inspect, convert
void add_dump_command(CLI::App& app);         // dump
void add_tokenize_commands(CLI::App& app);    // tokenize, detokenize
void add_run_commands(CLI::App& app);         // run, chat
void add_bench_command(CLI::App& app);        // bench
void add_score_commands(CLI::App& app);       // score, perplexity

// The tokenizer to use (a tokenizer.model, or a .gguf that holds one: load_tokenizer reads both):
// `given`, else the model directory's tokenizer.model, else a .gguf model itself when its metadata
// has a tokenizer, else $GEMMA3_TOKENIZER, else the one scripts/setup.sh built (cmd_run.cpp).
std::string default_tokenizer_path(const std::string& given, const std::string& model_dir);
// Adds --mmproj FILE: the vision tower and projector of a .gguf --model, in llama.cpp's separate
// mmproj GGUF (as llama.cpp's own --mmproj). open_model opens the two together (cmd_run.cpp).
void add_mmproj_option(CLI::App* cmd, std::string& mmproj);
// Opens --model (a checkpoint directory or a .gguf file), with `mmproj` when not empty.
Checkpoint open_model(const std::string& model, const std::string& mmproj,
                      Residency residency = Residency::Mapped, const Progress& progress = {});
// The process's peak resident memory so far, in KiB (getrusage's ru_maxrss; cmd_run.cpp).
long peak_rss_kib();
// Sets the OpenMP threads: `threads` (a --threads option; 0 if not given), else
// $GEMMA3_NUM_THREADS, else $OMP_NUM_THREADS, else all cores. Each must be a whole number from 1 to
// four times the cores; anything else is an InvalidArgument naming where it came from
// (console.cpp). main() calls it with 0 before any command runs.
void set_threads(int threads);

// The whole command line: what main.cpp runs and tests/fuzz/fuzz_cli.cpp parses.
inline void add_commands(CLI::App& app) {
  app.require_subcommand(1);
  add_checkpoint_commands(app);
  add_dump_command(app);
  add_tokenize_commands(app);
  add_run_commands(app);
  add_bench_command(app);
  add_score_commands(app);
}

}  // namespace gemma3::cli
