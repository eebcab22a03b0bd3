// Fuzz target: the `gemma3` command line's argument parsing — the real CLI11 app of examples/cli
// (every subcommand and option, with their validators: IsMember, ExistingFile, ranges, positive
// numbers), parsed but never run.
//
// The app is built as examples/cli/main.cpp builds it, by gemma3::cli::add_commands (the command
// groups are linked from examples/cli). The root app's parse-complete
// callback, which CLI11 runs after every check and before any subcommand's callback, throws: a
// parse that succeeds loads, writes and reads nothing. (Removing the subcommands' callbacks instead
// would free the option variables some of them own.) Input: the arguments after argv[0], separated
// by NUL bytes. Oracles: parsing succeeds or throws a CLI::ParseError, which app.exit() turns into
// a message and an exit code (help text included) as the CLI does; nothing else escapes.
#include <sstream>

#include <CLI/CLI.hpp>

#include "../../examples/cli/commands.hpp"
#include "fuzz_common.hpp"

namespace {
struct Parsed {};  // thrown once the command line has passed every check

void build_app(CLI::App& app) {
  gemma3::cli::add_commands(app);
  app.parse_complete_callback([] { throw Parsed{}; });
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  std::vector<std::string> args{"gemma3"};
  for (const std::string_view a : fuzz::split(
           std::string_view(reinterpret_cast<const char*>(data), size), std::string_view("\0", 1)))
    args.emplace_back(a);
  if (args.size() > 64) return 0;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  CLI::App app{"gemma3: a CPU research implementation of Gemma 3"};
  build_app(app);
  try {
    app.parse(int(argv.size()), argv.data());
    fuzz::fail("the parse-complete callback did not run: a subcommand callback may have");
  } catch (const Parsed&) {
  } catch (const CLI::ParseError& e) {
    std::ostringstream out, err;
    fuzz::sink(app.exit(e, out, err));
    fuzz::sink(out.str().size() + err.str().size());
  }
  return 0;
}
