#!/usr/bin/env bash
# Sets up what is missing, builds everything (tests, CLI, examples, benchmarks) and runs the tests.
#   scripts/test.sh            # the README's test command; CI runs exactly this
# Environment: BUILD_DIR (default build), GEMMA3_JOBS (default 2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
tokenizer=$(scripts/get_tokenizer.sh | tail -n 1)

build=${BUILD_DIR:-build}
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" \
  -DGEMMA3_BUILD_TESTS=ON -DGEMMA3_BUILD_EXAMPLES=ON -DGEMMA3_BUILD_BENCHMARKS=ON \
  -DGEMMA3_TOKENIZER_MODEL="$tokenizer"
cmake --build "$build" -j "${GEMMA3_JOBS:-2}"
cd "$build"
ctest --output-on-failure -j 1
