#!/usr/bin/python3
"""How far a quantized GGUF's next-token distributions are from its source model's.

For each quantized file, over the given token sequences: the mean and the largest KL divergence
KL(reference || quantized) of the next-token distributions, in nats, and the fraction of positions
whose most likely next token is the same (top-1 agreement). The reference is the model the files
were converted from (a bf16 checkpoint, say). This is how docs/gguf.md's table was made:

    build/examples/gemma3 synth --preset 270m --out /tmp/q/270m
    for t in q8_0 q6_k q5_k_m q4_k_m q4_0; do
      build/examples/gemma3 quantize --model /tmp/q/270m --type $t --out /tmp/q/270m-$t.gguf
    done
    PYTHONPATH=build/python /usr/bin/python3 scripts/quant_error.py /tmp/q/270m \\
        /tmp/q/270m-*.gguf --text README.md --tokens 400

The token sequences: --text FILE (its first --tokens tokens, with <bos>) and/or --ids FILE.npy
(the fixtures' prompts, for instance).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import gemma3


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def kl(reference: np.ndarray, quantized: np.ndarray) -> np.ndarray:
    p, q = log_softmax(reference), log_softmax(quantized)
    return (np.exp(p) * (p - q)).sum(axis=-1)


def compare(reference: np.ndarray, quantized: np.ndarray) -> dict[str, float]:
    """Of two [T, vocab] logit arrays: the mean and largest KL (nats), top-1 agreement, the
    logits' RMS error relative to their RMS, and the mean KL at unit temperature (each position's
    logits divided by the reference's standard deviation there). Random-weight models have logits
    so spread that their softmax is one token (KL ~ 0 whatever the error); the last two columns
    still measure them."""
    k = kl(reference, quantized)
    sigma = reference.std(axis=-1, keepdims=True)
    return {
        "mean KL": float(k.mean()),
        "max KL": float(k.max()),
        "top-1": float((reference.argmax(axis=-1) == quantized.argmax(axis=-1)).mean()),
        "rel RMS": float(np.sqrt(((quantized - reference) ** 2).mean() / (reference**2).mean())),
        "KL at T=σ": float(kl(reference / sigma, quantized / sigma).mean()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reference", help="the source checkpoint (directory or .gguf)")
    ap.add_argument("quantized", nargs="+", help="quantized .gguf files made from it")
    ap.add_argument("--text", help="a text file whose first --tokens tokens are one sequence")
    ap.add_argument("--tokens", type=int, default=400)
    ap.add_argument("--tokenizer", help="tokenizer.model for --text (default: $GEMMA3_TOKENIZER)")
    ap.add_argument("--ids", nargs="*", default=[], help=".npy files of token ids")
    args = ap.parse_args()

    sequences = [np.load(path).astype(np.int64).ravel() for path in args.ids]
    if args.text:
        import os

        tok = gemma3.Tokenizer(args.tokenizer or os.environ["GEMMA3_TOKENIZER"])
        with open(args.text, encoding="utf-8") as f:
            ids = tok.encode(f.read(), add_bos=True)[: args.tokens]
        sequences.append(np.array(ids, dtype=np.int64))
    if not sequences:
        sys.exit("quant_error.py: give --text and/or --ids")

    reference = gemma3.Model(args.reference)
    expected = [reference.forward(s)["logits"] for s in sequences]
    columns = ["mean KL", "max KL", "top-1", "rel RMS", "KL at T=σ"]
    print(f"{'file':36s} " + " ".join(f"{c:>10s}" for c in columns) + f"  ({sum(map(len, sequences))} positions)")
    for path in args.quantized:
        model = gemma3.Model(path)
        got = [model.forward(s)["logits"] for s in sequences]
        row = compare(np.concatenate(expected), np.concatenate(got))
        print(f"{path:36s} " + " ".join(f"{row[c]:10.3g}" for c in columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
