#!/usr/bin/env bash
# Differential test: gemma3's Hugging Face encode mode against the JavaScript reference tokenizer on
# strings generated from a seed (real pieces, random code points from many scripts, whitespace runs,
# special-token literals, digits, code).  Usage: tokenizer_differential.sh GEMMA3_BIN TOKENIZER_MODEL
set -euo pipefail
gemma3=$1 model=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
js_dir=$("$here/scripts/get_js_tokenizer.sh" | tail -n 1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for seed in 1 2 3; do
  node "$here/scripts/js_tokenize.mjs" "$js_dir" --generate 700 --seed "$seed" > "$work/js.jsonl"
  "$gemma3" tokenize --tokenizer "$model" --parse-special < "$work/js.jsonl" > "$work/ours.jsonl"
  node "$here/scripts/js_tokenize.mjs" "$js_dir" --compare < "$work/ours.jsonl"
done
