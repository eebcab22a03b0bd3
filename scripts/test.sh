#!/usr/bin/env bash
# Sets up what is missing, builds everything (tests, CLI, examples, benchmarks) and runs the tests.
#   scripts/test.sh            # the README's test command; CI (.ci/run) runs it first
# Environment: BUILD_DIR (default build), GEMMA3_JOBS (default 2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/prelude.sh
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" \
  -DGEMMA3_BUILD_TESTS=ON -DGEMMA3_BUILD_EXAMPLES=ON -DGEMMA3_BUILD_BENCHMARKS=ON \
  -DGEMMA3_TOKENIZER_MODEL="$tokenizer" -DPython3_EXECUTABLE="$python"
cmake --build "$build" -j "$jobs"
# From here on `python3 -c "import gemma3"` works: the build's module directory goes into the
# user's site-packages as a .pth file (docs/python.md; `pip install .` is the other way).
if [ -d "$build/python/gemma3" ]; then
  site=$("$python" -m site --user-site)
  mkdir -p "$site" && echo "$PWD/$build/python" >"$site/gemma3-build.pth"
fi
cd "$build"
ctest --output-on-failure -j 1
