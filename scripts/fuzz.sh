#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang (AddressSanitizer + UndefinedBehaviorSanitizer)
# in build-fuzz, then runs each for SECONDS from its seed corpus. Exits non-zero when any target
# crashes (a sanitizer report, an escaped exception, a violated property, a timeout or an
# out-of-memory); the input that did it is saved as build-fuzz/artifacts/<target>-crash-*.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     # default 20 s each, every target
#   scripts/fuzz.sh 0                         # build and replay the seed corpora only
#
# New inputs libFuzzer finds go to build-fuzz/corpus/<target>/, not into the repository; to keep
# one as a seed, copy it into tests/fuzz/corpus/<target>/ (docs/robustness.md).
# Environment: GEMMA3_JOBS (default 2), FUZZ_BUILD_DIR (build-fuzz), FUZZ_FLAGS (extra libFuzzer flags).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:-20}
shift || true
source scripts/prelude.sh
build=${FUZZ_BUILD_DIR:-build-fuzz}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors checkpoint gguf spm config npy image tokenizer chat tool_call tool_json cli)

# -O1 with assertions on (Eigen's, stb_image's, the library's): a failed assertion is a finding too.
cmake -S . -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" \
  -DGEMMA3_BUILD_TESTS=ON -DGEMMA3_BUILD_FUZZERS=ON -DGEMMA3_BUILD_EXAMPLES=OFF -DGEMMA3_BUILD_BENCHMARKS=OFF \
  -DGEMMA3_INSTALL=OFF -DGEMMA3_BUILD_PYTHON=OFF -DGEMMA3_TOKENIZER_MODEL="$tokenizer" "${launcher[@]}" >/dev/null
cmake --build "$build" -j "$jobs" --target "${targets[@]/#/fuzz_}"

export GEMMA3_TOKENIZER=$tokenizer
mkdir -p "$build/artifacts"
failed=()
summary=()
for t in "${targets[@]}"; do
  seeds=tests/fuzz/corpus/$t
  work=$build/corpus/$t
  log=$build/fuzz_$t.log
  mkdir -p "$work"
  if [ "$seconds" -gt 0 ]; then
    args=(-max_total_time="$seconds" -print_final_stats=1 "$work" "$seeds")
  else
    args=(-runs=0 "$seeds")
  fi
  echo "== fuzz_$t (${seconds}s)"
  # -timeout: one input may take at most 10 s; -rss_limit_mb: 2 GiB (malloc_limit_mb follows it).
  if "$build/tests/fuzz/fuzz_$t" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$build/artifacts/$t-" \
      ${FUZZ_FLAGS:-} "${args[@]}" >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed+=("$t")
    tail -n 60 "$log"
  fi
  stats=$(grep -E '^#[0-9]+.*(DONE|INITED|pulse|NEW|REDUCE)' "$log" | tail -n 1 | sed -E 's/^#([0-9]+)\s+\S+\s+/\1 execs, /' || true)
  summary+=("$(printf '%-12s %-6s %s' "$t" "$status" "$stats")")
done

echo "== fuzz summary (${seconds}s each; logs in $build/fuzz_<target>.log)"
printf '%s\n' "${summary[@]}"
echo "fuzz: $((${#targets[@]} - ${#failed[@]})) passed, ${#failed[@]} failed"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]} (inputs in $build/artifacts/)" >&2
  exit 1
fi
