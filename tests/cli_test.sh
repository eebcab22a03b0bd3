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
# Per-token log-probs: one per sampled token, greedy picks the top alternative.
g=$("$gemma3" run --model "$work/tiny" --prompt "Why is the sky blue?" --max-new-tokens 5 --temperature 0 --top-logprobs 3 --json)
[ "$(echo "$g" | json 'all(t["logprob"] <= 0 and len(t["top"]) == 3 and t["top"][0]["id"] == t["id"] for t in d[0]["tokens"]) and [t["id"] for t in d[0]["tokens"]][:len(d[0]["ids"])] == d[0]["ids"]')" = True ] ||
  fail "run --json: per-token log-probs ($g)"

# GGUF: the same model converted to a llama.cpp-style f32 GGUF greedily generates the same tokens.
"$gemma3" convert --model "$work/tiny" --out "$work/tiny.gguf" --type f32 >/dev/null
"$gemma3" inspect --model "$work/tiny.gguf" | grep -q "gguf         version 3" || fail "inspect of a GGUF"
st=$("$gemma3" run --model "$work/tiny" --tokenizer "$tokenizer" --prompt "Hi" --max-new-tokens 8 --temperature 0 --json)
gg=$("$gemma3" run --model "$work/tiny.gguf" --tokenizer "$tokenizer" --prompt "Hi" --max-new-tokens 8 --temperature 0 --json)
[ "$(echo "$st" | json 'd[0]["ids"]')" = "$(echo "$gg" | json 'd[0]["ids"]')" ] || fail "GGUF and safetensors disagree"
[ "$(echo "$st" | json 'd[0]["kv_cache_gib"] > 0')" = True ] || fail "no KV-cache size in --json"
# One file is a model: convert embedded the tokenizer (tokenizer.ggml.*), which run and tokenize use
# when no tokenizer.model is beside the .gguf.
own=$("$gemma3" run --model "$work/tiny.gguf" --prompt "Hi" --max-new-tokens 8 --temperature 0 --json)
[ "$(echo "$st" | json 'd[0]["ids"]')" = "$(echo "$own" | json 'd[0]["ids"]')" ] || fail "the GGUF's own tokenizer disagrees"
line='{"text": "<start_of_turn>user\nHello  world <eos>"}'
[ "$(echo "$line" | "$gemma3" tokenize --tokenizer "$work/tiny.gguf")" = "$(echo "$line" | "$gemma3" tokenize --tokenizer "$tokenizer")" ] ||
  fail "tokenize --tokenizer FILE.gguf disagrees with tokenizer.model"

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
# The same image twice in one prompt: encoded once, both runs of soft tokens in the prompt.
"$gemma3" run --model "$work/mm" --image "$image" --image "$image" --prompt "Same?" --max-new-tokens 2 \
  >"$work/out" 2>"$work/err" || fail "run with an image twice: $(cat "$work/err")"
grep -q "2 encoded (crops included), 1 of them already seen" "$work/err" ||
  fail "the image given twice was encoded twice: $(cat "$work/err")"
prefill2=$(grep -o "^\[[0-9]* prompt tokens" "$work/err" | grep -o "[0-9]*")
[ "$prefill2" -gt 32 ] || fail "two images' 32 soft tokens are not in the prompt ($prefill2 tokens)"
# A chat that shows the image again in a later turn: looked up, not encoded.
printf '/image %s\nWhat is it?\n/image %s\nAnd now?\n' "$image" "$image" |
  "$gemma3" chat --model "$work/mm" --max-new-tokens 2 >"$work/out" 2>"$work/err" ||
  fail "chat with images: $(cat "$work/err")"
grep -q "1 encoded (crops included), 0 of them already seen" "$work/err" &&
  grep -q "1 encoded (crops included), 1 of them already seen" "$work/err" ||
  fail "the chat encoded its image again: $(cat "$work/err")"
set +e
"$gemma3" run --model "$work/tiny" --image "$image" --prompt x 2>"$work/err"; rc=$?
set -e
[ $rc != 0 ] && grep -q "no vision tower" "$work/err" || fail "image on a text-only model: rc $rc"
# The same model as llama.cpp holds it, a text GGUF and an mmproj GGUF (convert --mmproj): greedily
# the same tokens for the image; scored like the directory; inspected and benched with its vision
# tower; --image without --mmproj says what to do.
"$gemma3" convert --model "$work/mm" --out "$work/mm.gguf" --mmproj "$work/mm.mmproj.gguf" --type f32 \
  >/dev/null 2>&1 || fail "convert --mmproj"
d=$("$gemma3" run --model "$work/mm" --image "$image" --prompt "Describe this image." --max-new-tokens 6 --temperature 0 --json 2>/dev/null)
m=$("$gemma3" run --model "$work/mm.gguf" --mmproj "$work/mm.mmproj.gguf" --image "$image" --prompt "Describe this image." \
  --max-new-tokens 6 --temperature 0 --json 2>/dev/null)
[ "$(echo "$d" | json 'd[0]["ids"]')" = "$(echo "$m" | json 'd[0]["ids"]')" ] || fail "run --mmproj: other tokens than the directory's"
"$gemma3" score --model "$work/mm.gguf" --mmproj "$work/mm.mmproj.gguf" --text "Hello world" | grep -q '"logprob"' ||
  fail "score --mmproj"
"$gemma3" inspect --model "$work/mm.gguf" --mmproj "$work/mm.mmproj.gguf" | grep -q "vision tower (SigLIP)" ||
  fail "inspect --mmproj shows no vision tower"
b=$("$gemma3" bench --model "$work/mm.gguf" --mmproj "$work/mm.mmproj.gguf" --prompt-tokens 4 --gen-tokens 2 --json)
[ "$(echo "$b" | json 'd[0]["vision_patches"] > 0 and d[0]["vision_peak"] != ""')" = True ] ||
  fail "bench --mmproj does not time the vision tower: $b"
set +e
"$gemma3" run --model "$work/mm.gguf" --image "$image" --prompt x 2>"$work/err"; rc=$?
set -e
[ $rc != 0 ] && grep -q "give it with --mmproj" "$work/err" || fail "image on a GGUF without --mmproj: rc $rc"

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
"$here/scripts/compare_npy.py" "$work/dump" "$fixture" --ref-prefix p2_ --atol 1e-4 \
  --skip input_ids --skip 'mask_*' >/dev/null || fail "dump differs from the fixture"
# score: one JSON line for a text, one per {prompt, continuation} line; the continuation's log-prob
# is the sum over its tokens, and a continuation scored after its own prompt equals the same tokens
# scored within the whole text.
sc=$("$gemma3" score --model "$work/tiny" --text "The capital of France is Paris." --top 2)
[ "$(echo "$sc" | json 'len(d[0]["tokens"]) > 3 and all(len(t["top"]) == 2 for t in d[0]["tokens"])')" = True ] ||
  fail "score --text: tokens with their top alternatives"
pairs=$(printf '{"prompt": "The capital of France is", "continuation": " Paris."}\n\n{"prompt": "a b ", "continuation": "c"}\n' |
  "$gemma3" score --model "$work/tiny" --jsonl -)
[ "$(echo "$pairs" | json 'len(d)')" = 2 ] || fail "score --jsonl: one line per pair"
[ "$(echo "$pairs" | json 'abs(d[0]["logprob"] - sum(t["logprob"] for t in d[0]["tokens"])) < 1e-9')" = True ] ||
  fail "score --jsonl: the log-prob is the sum over the continuation's tokens"
[ "$(echo "$pairs" | json 'd[1]["boundary_merged"]')" = True ] || fail "score: a merged token boundary is reported"
whole=$(echo "$sc" | json '[t["logprob"] for t in d[0]["tokens"][-2:]]')
part=$(echo "$pairs" | json '[t["logprob"] for t in d[0]["tokens"]]')
[ "$(/usr/bin/python3 -c "print(all(abs(a - b) < 1e-3 for a, b in zip($whole, $part)))")" = True ] ||
  fail "score: the continuation's log-probs ($part) differ from the whole text's ($whole)"
set +e
err=$(echo '{"prompt": "x"}' | "$gemma3" score --model "$work/tiny" --jsonl - 2>&1); rc=$?
set -e
[ $rc = 1 ] && echo "$err" | grep -q -- '-:1: expected an object' || fail "score --jsonl: a bad line is named ($rc: $err)"

# perplexity: a JSON summary; every token after the first is scored once whatever the stride.
for i in $(seq 20); do echo "The quick brown fox jumps over the lazy dog."; done > "$work/text.txt"
p1=$("$gemma3" perplexity --model "$work/tiny" --file "$work/text.txt" --context 64 --stride 32 2>/dev/null)
p2=$("$gemma3" perplexity --model "$work/tiny" --file "$work/text.txt" --context 1000 2>/dev/null)
[ "$(echo "$p1" | json 'd[0]["tokens_scored"] == d[0]["tokens_in_text"] - 1 and d[0]["windows"] > 1')" = True ] ||
  fail "perplexity: sliding windows score every token once ($p1)"
[ "$(echo "$p2" | json 'd[0]["windows"] == 1 and d[0]["perplexity"] > 1')" = True ] || fail "perplexity: one window ($p2)"

echo "cli tests passed"
