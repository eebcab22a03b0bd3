#!/usr/bin/env bash
# End-to-end tests of the `gemma3` command line on a synthesised checkpoint with the real tokenizer.
#   cli_test.sh GEMMA3_BIN TOKENIZER_MODEL
set -euo pipefail
gemma3=$1 tokenizer=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
json() { /usr/bin/python3 -c "import json,sys; d=[json.loads(l) for l in sys.stdin if l.strip()]; print($1)"; }

"$gemma3" synth --preset tiny --seed 5 --out "$work/tiny" --tokenizer "$tokenizer" >/dev/null
"$gemma3" inspect --model "$work/tiny" | grep -q "vocab 262144" || fail "inspect does not show the vocabulary"

# run: --seed makes runs reproducible; different seeds differ.
a=$("$gemma3" run --model "$work/tiny" --prompt "Why is the sky blue?" --max-new-tokens 12 --seed 7 --json)
b=$("$gemma3" run --model "$work/tiny" --prompt "Why is the sky blue?" --max-new-tokens 12 --seed 7 --json)
c=$("$gemma3" run --model "$work/tiny" --prompt "Why is the sky blue?" --max-new-tokens 12 --seed 8 --json)
[ "$(echo "$a" | json 'd[0]["ids"]')" = "$(echo "$b" | json 'd[0]["ids"]')" ] || fail "same seed, different tokens"
[ "$(echo "$a" | json 'd[0]["ids"]')" != "$(echo "$c" | json 'd[0]["ids"]')" ] || fail "different seeds, same tokens"
[ "$(echo "$a" | json 'd[0]["generated_tokens"]')" = 12 ] || fail "max-new-tokens not honoured"

# GGUF: the same model converted to a llama.cpp-style f32 GGUF greedily generates the same tokens.
"$gemma3" convert --model "$work/tiny" --out "$work/tiny.gguf" --type f32 >/dev/null
"$gemma3" inspect --model "$work/tiny.gguf" | grep -q "gguf         version 3" || fail "inspect of a GGUF"
st=$("$gemma3" run --model "$work/tiny" --tokenizer "$tokenizer" --prompt "Hi" --max-new-tokens 8 --temperature 0 --json)
gg=$("$gemma3" run --model "$work/tiny.gguf" --tokenizer "$tokenizer" --prompt "Hi" --max-new-tokens 8 --temperature 0 --json)
[ "$(echo "$st" | json 'd[0]["ids"]')" = "$(echo "$gg" | json 'd[0]["ids"]')" ] || fail "GGUF and safetensors disagree"
[ "$(echo "$st" | json 'd[0]["kv_cache_gib"] > 0')" = True ] || fail "no KV-cache size in --json"

# chat through a pipe: two turns; the second prefills only its new tokens (the cache is reused).
out=$(printf 'Hello!\nTell me more.\n' | "$gemma3" chat --model "$work/tiny" --max-new-tokens 6 --seed 1 --json)
turns=$(echo "$out" | json 'len(d)')
[ "$turns" = 2 ] || fail "expected 2 chat turns, got $turns"
used1=$(echo "$out" | json 'd[0]["context_used"]')
pre1=$(echo "$out" | json 'd[0]["prefill_tokens"]')
gen1=$(echo "$out" | json 'd[0]["generated_tokens"]')
pre2=$(echo "$out" | json 'd[1]["prefill_tokens"]')
gen2=$(echo "$out" | json 'd[1]["generated_tokens"]')
used2=$(echo "$out" | json 'd[1]["context_used"]')
[ "$used1" = $((pre1 + gen1)) ] || fail "turn 1: context $used1 != prefill $pre1 + generated $gen1"
[ "$used2" = $((used1 + pre2 + gen2)) ] || fail "turn 2 did not reuse the cache ($used2 != $used1 + $pre2 + $gen2)"
# The new tokens: <end_of_turn> \n <start_of_turn> user\nTell me more. <end_of_turn> \n <start_of_turn> model\n
expected2=$(echo '{"text": "\nuser\nTell me more.\nmodel\n"}' | "$gemma3" tokenize --tokenizer "$tokenizer" | json 'len(d[0]["ids"]) + 4')
[ "$pre2" = "$expected2" ] || fail "turn 2 prefilled $pre2 tokens, expected $expected2"

# An image through the whole multimodal path (a tiny 4b-like checkpoint: SigLIP, projector, merge).
image="$here/tests/data/reference/mm-tiny-a/image0.png"
"$gemma3" synth --preset tiny-mm --seed 2 --out "$work/mm" --tokenizer "$tokenizer" >/dev/null
"$gemma3" run --model "$work/mm" --image "$image" --prompt "Describe this image." --max-new-tokens 4 \
  --seed 1 >"$work/out" 2>"$work/err" || fail "run --image: $(cat "$work/err")"
grep -q "vision encoder" "$work/err" || fail "run --image printed no image timings"
prefill=$(grep -o "^\[[0-9]* prompt tokens" "$work/err" | grep -o "[0-9]*")
[ "$prefill" -gt 16 ] || fail "the image's 16 soft tokens are not in the prompt ($prefill tokens)"
set +e
"$gemma3" run --model "$work/tiny" --image "$image" --prompt x 2>"$work/err"; rc=$?
set -e
[ $rc != 0 ] && grep -q "no vision tower" "$work/err" || fail "image on a text-only model: rc $rc"

# Bad flags: a useful message and exit code 2; bad files: exit code 1.
set +e
"$gemma3" run --model "$work/tiny" --prompt x --top-p 2 2>"$work/err"; rc=$?
[ $rc = 2 ] && grep -q -- "--top-p" "$work/err" || fail "bad --top-p: rc $rc, $(cat "$work/err")"
"$gemma3" run --prompt x 2>"$work/err"; rc=$?
[ $rc = 2 ] && grep -q -- "--model" "$work/err" || fail "missing --model: rc $rc"
"$gemma3" frobnicate 2>/dev/null; [ $? = 2 ] || fail "unknown subcommand"
"$gemma3" inspect --model "$work/nowhere" 2>"$work/err"; rc=$?
[ $rc = 1 ] && grep -q "nowhere" "$work/err" || fail "missing model dir: rc $rc"
[ "$(wc -l < "$work/err")" = 1 ] || fail "errors must be one line"
set -e

# dump reproduces the reference fixtures.
fixture="$here/tests/data/reference/text-tiny-b"
"$gemma3" dump --model "$fixture" --ids-npy "$fixture/p2_input_ids.npy" --prefill 4 --out "$work/dump" >/dev/null
"$here/scripts/compare_npy.py" "$work/dump" "$fixture" --ref-prefix p2_ --atol 1e-4 >/dev/null
echo "cli tests passed"
