#!/usr/bin/env bash
# Faults and misuse from outside the process, end to end (docs/robustness.md, "Faults and misuse"):
# full disks and file-size limits, files changed under a running chat, Ctrl-C, dead pipes, full
# and closed stdout, FIFOs, and chat turns that must not end the session.
#   cli_faults.sh GEMMA3_BIN TOKENIZER_MODEL
set -euo pipefail
gemma3=$1 tokenizer=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
json() { /usr/bin/python3 -c "import json,sys; d=[json.loads(l) for l in sys.stdin if l.strip()]; print($1)"; }
# Runs "$@", expecting exit code $code and $text somewhere in stderr.
expect() {
  local code=$1 text=$2; shift 2
  local rc=0
  "$@" >"$work/out" 2>"$work/err" || rc=$?
  [ "$rc" = "$code" ] || fail "$* exited $rc, expected $code: $(cat "$work/err")"
  grep -qF -- "$text" "$work/err" || fail "$*: no '$text' in: $(cat "$work/err")"
}
no_temporaries() { ! ls -A "$1" | grep -q '^\..*\.tmp-' || fail "temporary files left in $1: $(ls -A "$1")"; }

"$gemma3" synth --preset tiny --seed 5 --out "$work/tiny" --tokenizer "$tokenizer" >/dev/null 2>&1
model=(--model "$work/tiny")

# 1. Writes that fail keep the old output, leave no temporary file, and exit 1 naming the file.
"$gemma3" convert "${model[@]}" --out "$work/m.gguf" --type f32 >/dev/null 2>&1
cp "$work/m.gguf" "$work/m.before"
expect 1 "m.gguf: write failed after" bash -c "ulimit -f 1024; exec '$gemma3' convert --model '$work/tiny' --out '$work/m.gguf' --type bf16"
cmp -s "$work/m.gguf" "$work/m.before" || fail "a failed convert changed the old file"
no_temporaries "$work"
cp "$work/tiny/model.safetensors" "$work/tiny.before"
expect 1 "write failed after" bash -c "ulimit -f 1024; exec '$gemma3' synth --preset tiny --seed 9 --out '$work/tiny'"
cmp -s "$work/tiny/model.safetensors" "$work/tiny.before" || fail "a failed synth changed the old checkpoint"
no_temporaries "$work"
expect 1 "write failed after" bash -c "ulimit -f 64; exec '$gemma3' dump --model '$work/tiny' --ids 2,818 --out '$work/dump'"
[ ! -e "$work/dump" ] || fail "a failed dump left $(ls "$work/dump")"
no_temporaries "$work"

# 2. Ctrl-C during synth: exit 130, nothing under the target, no temporaries; a cache poisoned by
#    an older version (config.json only) is rebuilt by bench.
"$gemma3" synth --preset 1b --out "$work/big" >/dev/null 2>&1 &
pid=$!
sleep 1
kill -INT $pid
rc=0; wait $pid || rc=$?
[ "$rc" = 130 ] || fail "synth after Ctrl-C exited $rc"
[ ! -e "$work/big" ] || fail "an interrupted synth left $work/big"
no_temporaries "$work"
mkdir -p "$work/cache/bench/tiny-bf16"
cp "$work/tiny/config.json" "$work/cache/bench/tiny-bf16/"
GEMMA3_CACHE=$work/cache "$gemma3" bench --preset tiny --prompt-tokens 4 --gen-tokens 2 >/dev/null 2>"$work/err" ||
  fail "bench on a poisoned cache: $(cat "$work/err")"
grep -q synthesising "$work/err" || fail "bench used an incomplete cache"
[ -e "$work/cache/bench/tiny-bf16/gemma3-complete.json" ] || fail "the bench cache has no completion stamp"

# 3. Ctrl-C during run: the text so far, the stats and the JSON, then exit 130.
"$gemma3" run "${model[@]}" --prompt hi --max-new-tokens 100000 --context 32768 --json >"$work/run.json" 2>"$work/run.err" &
pid=$!
sleep 2
kill -INT $pid
rc=0; wait $pid || rc=$?
[ "$rc" = 130 ] || fail "run after Ctrl-C exited $rc: $(cat "$work/run.err")"
[ "$(json 'd[0]["stop_reason"]' <"$work/run.json")" = interrupted ] || fail "run --json after Ctrl-C: $(head -c 300 "$work/run.json")"

# 4. Output errors are errors: a full device, a closed stdout, a dead pipe (with SIGPIPE ignored,
#    run stops at once instead of decoding every token into it).
expect 1 "stdout: write failed: No space left on device" bash -c "exec '$gemma3' run --model '$work/tiny' --prompt hi --max-new-tokens 3 --json >/dev/full"
expect 1 "stdout: write failed: No space left on device" bash -c "exec '$gemma3' inspect --model '$work/tiny' >/dev/full"
expect 1 "stdout: write failed: Bad file descriptor" bash -c "echo '{\"text\": \"hi\"}' | '$gemma3' tokenize --tokenizer '$tokenizer' >&-"
start=$(date +%s)
( trap '' PIPE; "$gemma3" run "${model[@]}" --raw --prompt hi --max-new-tokens 3000 --context 4096 2>"$work/pipe.err" | head -c 10 >/dev/null ) || true
grep -qF "stdout: write failed: Broken pipe" "$work/pipe.err" || fail "a dead pipe: $(cat "$work/pipe.err")"
[ $(($(date +%s) - start)) -lt 15 ] || fail "run went on decoding into a dead pipe"

# 5. A FIFO is refused at once, not waited on.
mkfifo "$work/fifo.png"
expect 1 "is a FIFO, not a regular file" timeout 20 "$gemma3" tokenize --tokenizer "$work/fifo.png"
mkdir -p "$work/fifo-ck" && mkfifo "$work/fifo-ck/config.json"
expect 1 "config.json: is a FIFO, not a regular file" timeout 20 "$gemma3" inspect --model "$work/fifo-ck"

# 6. Bad chat turns are reported and the conversation goes on (exit 0): invalid UTF-8, a line over
#    the limit, a turn too long for the context, a missing image.
long=$(head -c 1100000 /dev/zero | tr '\0' a)
printf 'Hello\n\xff\xfe\n%s\n/image %s\n%s\nAnd now?\n' "$long" "$work/none.png" \
  "$(printf 'word %.0s' {1..200})" |
  "$gemma3" chat "${model[@]}" --max-new-tokens 4 --context 128 --seed 1 --json >"$work/chat.json" 2>"$work/chat.err" ||
  fail "chat ended on a bad turn: $(cat "$work/chat.err")"
[ "$(json 'len(d)' <"$work/chat.json")" = 2 ] || fail "chat: expected the 2 good turns: $(cat "$work/chat.err")"
for text in "invalid UTF-8" "line skipped: longer than 1048576 bytes" "none.png: cannot open" "tokens do not fit"; do
  grep -qF "$text" "$work/chat.err" || fail "chat did not report '$text': $(cat "$work/chat.err")"
done
[ "$(json 'd[1]["prefill_tokens"] < d[0]["prefill_tokens"] + 20' <"$work/chat.json")" = True ] ||
  fail "the history was not kept across the bad turns"

# 7. Weights truncated under a running chat: the session ends with an error naming the file (no
#    SIGBUS), exit 1.
cp -r "$work/tiny" "$work/victim"
( printf 'Hello\n'; sleep 5; printf 'Again\n' ) |
  "$gemma3" chat --model "$work/victim" --max-new-tokens 4 --seed 1 --json >/dev/null 2>"$work/victim.err" &
pid=$!
sleep 2.5
truncate -s 4096 "$work/victim/model.safetensors"
rc=0; wait $pid || rc=$?
[ "$rc" = 1 ] || fail "chat on truncated weights exited $rc: $(cat "$work/victim.err")"
grep -qE "victim/model.safetensors: (was truncated while mapped|changed on disk while mapped)" "$work/victim.err" ||
  fail "chat on truncated weights: $(cat "$work/victim.err")"

echo "cli_faults: all passed"
