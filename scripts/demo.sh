#!/usr/bin/env bash
# The main job, on a default that needs no download:
#   1. set up and build the `gemma3` command line (Release);
#   2. synthesise a tiny checkpoint with the real 262144-token vocabulary and inspect it;
#   3. validate the implementation against the bundled reference fixtures (HF transformers logits).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
build=${BUILD_DIR:-build}
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" >/dev/null
cmake --build "$build" -j "${GEMMA3_JOBS:-2}" --target gemma3_cli
gemma3="$build/examples/gemma3"

model="$build/demo/tiny"
[ -f "$model/model.safetensors" ] || "$gemma3" synth --preset tiny --seed 0 --out "$model"
echo
"$gemma3" inspect --model "$model"

echo
echo "== validation against the reference fixtures (HF transformers 4.51.3, float32) =="
for case in text-tiny-a text-tiny-b; do
  fixture=tests/data/reference/$case
  last=$(ls "$fixture"/p*_input_ids.npy | sort -V | tail -n 1)
  prefix=$(basename "$last" input_ids.npy)
  out="$build/demo/dump-$case"
  "$gemma3" dump --model "$fixture" --ids-npy "$last" --out "$out" >/dev/null
  echo "-- $case, prompt ${prefix%_}"
  scripts/compare_npy.py "$out" "$fixture" --ref-prefix "$prefix" --atol 1e-4
done
