#!/usr/bin/env bash
# Builds and runs the test suite under sanitizers (docs/robustness.md):
#   1. AddressSanitizer + UndefinedBehaviorSanitizer, GCC, in build-asan: every test but those labelled
#      consumer (they configure and build separate projects, without sanitizers);
#   2. ThreadSanitizer, clang with LLVM's libomp and its Archer tool (libarcher.so, which tells TSan
#      about OpenMP's barriers and fork/join), in build-tsan: the tests that run the OpenMP paths
#      (kernels, the text decoder, the vision tower, the multimodal model) with 4 threads.
# Any report fails the run (-fno-sanitize-recover, halt_on_error).
#
#   scripts/sanitize.sh            # both
#   scripts/sanitize.sh asan|tsan  # one of them
# Environment: GEMMA3_JOBS (default 2), ASAN_BUILD_DIR (build-asan), TSAN_BUILD_DIR (build-tsan).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

what=${1:-all}
case "$what" in all | asan | tsan) ;; *) echo "usage: $0 [all|asan|tsan]" >&2; exit 2 ;; esac

source scripts/prelude.sh

# -O1 keeps the tests fast enough; a Debug build type keeps Eigen's and the library's assertions on.
common=(-DCMAKE_BUILD_TYPE=Debug -DGEMMA3_BUILD_TESTS=ON -DGEMMA3_BUILD_BENCHMARKS=OFF -DGEMMA3_INSTALL=OFF -DGEMMA3_BUILD_PYTHON=OFF
        -DGEMMA3_TOKENIZER_MODEL="$tokenizer" "${launcher[@]}")

if [ "$what" != tsan ]; then
  build=${ASAN_BUILD_DIR:-build-asan}
  # (-Wno-maybe-uninitialized: GCC 12 warns falsely in the standard library under ASan.)
  flags="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all -Wno-maybe-uninitialized"
  cmake -S . -B "$build" "${common[@]}" -DGEMMA3_BUILD_EXAMPLES=ON \
    -DCMAKE_CXX_COMPILER=g++ -DCMAKE_CXX_FLAGS_DEBUG="$flags" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined"
  cmake --build "$build" -j "$jobs"
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer (GCC): ctest -LE consumer"
  (cd "$build" &&
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -j 1 -LE consumer)
fi

if [ "$what" != asan ]; then
  build=${TSAN_BUILD_DIR:-build-tsan}
  # libomp-dev puts Archer beside libomp.so, in LLVM's lib directory: <resource dir>/../../libarcher.so.
  archer=$(readlink -f "$(clang++ -print-resource-dir)/../../libarcher.so")
  [ -f "$archer" ] || { echo "sanitize: $archer (Archer, from libomp-dev) not found" >&2; exit 1; }
  flags="-O1 -g -fno-omit-frame-pointer -fsanitize=thread"
  cmake -S . -B "$build" "${common[@]}" -DGEMMA3_BUILD_EXAMPLES=OFF \
    -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_FLAGS_DEBUG="$flags" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread"
  cmake --build "$build" -j "$jobs" --target gemma3_tests
  echo "== ThreadSanitizer (clang, libomp + Archer $archer): OpenMP paths, 4 threads"
  # libomp itself is not instrumented: Archer supplies its synchronisation, and TSan ignores
  # the races it cannot see inside the runtime.
  OMP_NUM_THREADS=4 OMP_TOOL_LIBRARIES="$archer" ARCHER_OPTIONS=verbose=1 \
    TSAN_OPTIONS=ignore_noninstrumented_modules=1:halt_on_error=1:second_deadlock_stack=1 \
    "$build/tests/gemma3_tests" "[kernels],[text],[multimodal],[vision]"
fi
