#!/usr/bin/env bash
# Runs every research example (examples/research/) on tiny synthesised checkpoints with the real
# tokenizer and checks that what each prints is sensible.
#   examples_test.sh EXAMPLES_DIR GEMMA3_BIN TOKENIZER_MODEL
# EXAMPLES_DIR holds the example executables (hello, step_through, ...); GEMMA3_BIN is the `gemma3`
# command line, used to synthesise the checkpoints. Exit 77 (a skip for ctest) without a tokenizer.
set -euo pipefail
bin=$1 gemma3=$2 tokenizer=${3:-}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "$tokenizer" ] || [ ! -f "$tokenizer" ]; then
  echo "SKIP: no tokenizer.model (configure with -DGEMMA3_TOKENIZER_MODEL=\$(scripts/get_tokenizer.sh | tail -1))"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# run NAME ARGS...: runs an example, keeps its output in $work/NAME.out, fails with the output shown.
run() {
  local name=$1; shift
  local rc=0
  "$bin/$name" "$@" >"$work/$name.out" 2>&1 || rc=$?
  [ $rc = 0 ] || { cat "$work/$name.out" >&2; fail "$name exited with $rc"; }
  echo "--- $name"; cat "$work/$name.out"
}
image="$here/tests/data/reference/mm-tiny-a/image0.png"
"$gemma3" synth --preset tiny --seed 3 --out "$work/tiny" --tokenizer "$tokenizer" >/dev/null
"$gemma3" synth --preset tiny-mm --seed 4 --out "$work/mm" --tokenizer "$tokenizer" >/dev/null

# hello: generates (greedy) up to its token limit or a stop token.
run hello "$work/tiny" "Why is the sky blue?"
grep -Eq '^\[[0-9]+ tokens, stopped by (max_tokens|end_of_turn|eos)' "$work/hello.out" || fail "hello: no summary"

# step_through: a line per layer, and stepping by hand equals TextModel::forward exactly.
run step_through "$work/tiny"
[ "$(grep -c '^layer [0-9]' "$work/step_through.out")" = 6 ] || fail "step_through: expected 6 layer lines"
grep -q '^max |stepped - TextModel::forward| = 0 ' "$work/step_through.out" || fail "step_through: logits differ"

# logit_lens: embeddings + 6 layers, the last layer's lens equals the model's logits; the model's own
# next token ranks first under the last layer's lens.
run logit_lens "$work/tiny" "The Eiffel Tower is in the city of" 3
[ "$(grep -Ec '^(embeddings|layer [0-9])' "$work/logit_lens.out")" = 7 ] || fail "logit_lens: expected 7 rows"
grep -Eq '^layer 5 +1 ' "$work/logit_lens.out" || fail "logit_lens: final token not top under the last lens"
grep -q '^max |lens(last layer) - model logits| = 0$' "$work/logit_lens.out" || fail "logit_lens: last layer != logits"

# intervene: both edits move the logits (the program itself exits 1 otherwise).
run intervene "$work/tiny" 2 1 4
[ "$(grep -c 'max|dlogit|' "$work/intervene.out")" = 2 ] || fail "intervene: expected two reports"

# embeddings: the cosine matrix is symmetric with a unit diagonal, and the duplicated sentence [3] = [0].
run embeddings "$work/tiny"
/usr/bin/python3 - "$work/embeddings.out" <<'EOF' || fail "embeddings: bad cosine matrix"
import sys
rows = [[float(v) for v in l.split()[1:]] for l in open(sys.argv[1]) if l.startswith("[") and "tokens" not in l]
n = len(rows)
assert n == 4 and all(len(r) == n for r in rows), rows
for i in range(n):
    assert abs(rows[i][i] - 1) < 1e-3, rows[i][i]
    for j in range(n):
        assert abs(rows[i][j] - rows[j][i]) < 1e-3 and -1.001 <= rows[i][j] <= 1.001
assert abs(rows[0][3] - 1) < 1e-3, "identical sentences must have cosine 1"
EOF

# attention_map: PNGs that stb_image reads back (checked by the program) and that are valid PNG files
# of the expected sizes (checked here, independently, with Python's zlib). On the tiny text model
# (window 16) every local head sees at most 16 keys per query and the global heads see more.
run attention_map "$work/tiny" "$work/maps"
[ "$(ls "$work/maps"/layer0_local_head*.png | wc -l)" = 4 ] || fail "attention_map: expected 4 local heads"
[ "$(ls "$work/maps"/layer5_global_head*.png | wc -l)" = 4 ] || fail "attention_map: expected 4 global heads"
grep '(local)' "$work/attention_map.out" | grep -vq 'at most 16$' && fail "attention_map: a local head sees past the window"
grep '(global)' "$work/attention_map.out" | grep -q 'at most 16$' && fail "attention_map: a global head is windowed"
run attention_map "$work/mm" "$work/mm_maps" "$image"
grep -q 'grid of soft tokens' "$work/attention_map.out" || fail "attention_map: no image attention"
/usr/bin/python3 - "$work/maps" "$work/mm_maps" <<'EOF' || fail "attention_map: PNG check"
import os, struct, sys, zlib
def png_size(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat, size = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0], path
        if kind == b"IHDR": size = struct.unpack(">II", body[:8])
        if kind == b"IDAT": idat += body
        pos += 12 + n
    w, h = size
    assert len(zlib.decompress(idat)) == h * (1 + 3 * w), path  # 8-bit RGB rows, one filter byte each
    return size
sizes = {f: png_size(os.path.join(d, f)) for d in sys.argv[1:] for f in os.listdir(d)}
assert sizes["image_attention.png"] == (6 * 224 + 5 * 8, 224), sizes["image_attention.png"]  # image, mean, 4 heads
w, h = sizes["local_vs_global.png"]
assert w > h / 4 and h > 0, (w, h)
print(len(sizes), "PNG files valid")
EOF

# shieldgemma2: one probability in [0, 1] per policy, on the tiny 4B-layout checkpoint.
run shieldgemma2 "$work/mm" "$image"
/usr/bin/python3 - "$work/shieldgemma2.out" <<'EOF' || fail "shieldgemma2: bad probabilities"
import math, sys
rows = [l.split() for l in open(sys.argv[1]) if l.split() and l.split()[0] in ("dangerous", "sexual", "violence")]
assert len(rows) == 3, rows
for name, yes, no, p in rows:
    p, yes, no = float(p), float(yes), float(no)
    # the logits are printed to 4 decimals, hence the tolerance
    assert 0.0 <= p <= 1.0 and abs(p - 1 / (1 + math.exp(no - yes))) < 1e-3, (name, p)
EOF
set +e
"$bin/shieldgemma2" "$work/tiny" "$image" >/dev/null 2>"$work/err"; rc=$?
set -e
[ $rc = 1 ] && grep -q "no vision tower" "$work/err" || fail "shieldgemma2 on a text-only model: rc $rc"

echo "research examples passed"
