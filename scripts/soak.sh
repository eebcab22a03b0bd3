#!/usr/bin/env bash
# Soak test: one long chat through a pipe, with a small context and --on-full-context drop-oldest,
# so that the history is dropped and prefilled again every few turns. Fails on any error, on a
# turn that did not answer, or when the resident memory after warm-up grows by more than 5%.
#
#   scripts/soak.sh [TURNS] [PRESET] [GEMMA3_BIN]    # by hand: scripts/soak.sh 2000 270m
#
# The README's test command runs a short mode (tests/CMakeLists.txt: 80 turns of the tiny preset).
# Prints one summary line: turns, drops, RSS after warm-up and at the end, growth, seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
turns=${1:-2000} preset=${2:-270m} gemma3=${3:-build/examples/gemma3}
source scripts/prelude.sh
work=$(mktemp -d)
trap 'rm -rf "$work"; [ -z "${pid:-}" ] || kill "$pid" 2>/dev/null || true' EXIT

"$gemma3" synth --preset "$preset" --seed 3 --out "$work/model" --tokenizer "$tokenizer" >/dev/null 2>&1
mkfifo "$work/in"
"$gemma3" chat --model "$work/model" --context 256 --on-full-context drop-oldest --max-new-tokens 12 \
  --seed 1 --threads 2 --json <"$work/in" >"$work/out.jsonl" 2>"$work/err" &
pid=$!
exec 3>"$work/in"

# The resident memory of the chat, in KiB (/proc/PID/status VmRSS).
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }
prompts=("Tell me about the sea." "What is 2 + 2?" "Write a haiku about autumn leaves falling."
  "Summarise the plot of a story you like, in two sentences." "Why?" "Name three colours.")
start=$(date +%s)
warm=$((turns / 10))
warm_rss=0
for ((t = 1; t <= turns; t++)); do
  printf '%s (turn %d)\n' "${prompts[t % ${#prompts[@]}]}" "$t" >&3
  # One JSON line per answered turn: wait for this one before sending the next.
  until [ "$(wc -l <"$work/out.jsonl")" -ge "$t" ]; do
    kill -0 "$pid" 2>/dev/null || { echo "soak: chat died at turn $t: $(tail -3 "$work/err")" >&2; exit 1; }
    sleep 0.01
  done
  [ "$t" = "$warm" ] && warm_rss=$(rss)
done
end_rss=$(rss)
exec 3>&-
wait "$pid"
pid=
seconds=$(($(date +%s) - start))

if grep -v '^\[context full' "$work/err" | grep -q .; then
  echo "soak: errors during the chat:" >&2
  grep -v '^\[context full' "$work/err" | head -5 >&2
  exit 1
fi
drops=$(grep -c '^\[context full' "$work/err" || true)
/usr/bin/python3 - "$work/out.jsonl" "$turns" "$drops" "$warm_rss" "$end_rss" "$seconds" <<'EOF'
import json, sys
path, turns, drops, warm, end, seconds = sys.argv[1], *map(int, sys.argv[2:])
answers = [json.loads(l) for l in open(path)]
assert len(answers) == turns, f"{len(answers)} answers for {turns} turns"
assert all(a["generated_tokens"] > 0 or a["stop_reason"] in ("end_of_turn", "eos") for a in answers)
assert drops > 0, "the context never filled: the drop-oldest path was not exercised"
growth = (end - warm) / warm
print(f"soak: {turns} turns, {drops} drops, RSS {warm / 1024:.1f} MiB after warm-up, "
      f"{end / 1024:.1f} MiB at the end ({100 * growth:+.1f}%), {seconds} s")
sys.exit(0 if growth <= 0.05 else f"soak: RSS grew by {100 * growth:.1f}% (> 5%)")
EOF
