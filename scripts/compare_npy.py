#!/usr/bin/python3
"""Compare two directories of .npy dumps tensor by tensor, worst first.

    scripts/compare_npy.py OURS REFERENCE [--ref-prefix p3_] [--ours-prefix ""] [--atol 1e-4]

Pairs every OURS/<prefix><name>.npy with REFERENCE/<ref-prefix><name>.npy (for example a `gemma3 dump`
directory against a fixture case whose files are named p{k}_<name>.npy), prints shape, max |a-b|,
max |a-b| / max |b| and the argmax agreement of 2-D logits, sorted by the largest difference.
With --atol it exits 1 when any tensor differs by more than that. Needs only numpy.
"""
import argparse
import os
import sys

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ours")
    ap.add_argument("reference")
    ap.add_argument("--ours-prefix", default="")
    ap.add_argument("--ref-prefix", default="")
    ap.add_argument("--atol", type=float, default=None, help="fail when max |a-b| exceeds this")
    args = ap.parse_args()

    rows, missing = [], []
    for f in sorted(os.listdir(args.ours)):
        if not (f.endswith(".npy") and f.startswith(args.ours_prefix)):
            continue
        name = f[len(args.ours_prefix):]
        ref_path = os.path.join(args.reference, args.ref_prefix + name)
        if not os.path.exists(ref_path):
            missing.append(name)
            continue
        a = np.load(os.path.join(args.ours, f)).astype(np.float64)
        b = np.load(ref_path).astype(np.float64)
        if a.shape != b.shape:
            rows.append((float("inf"), name, f"shape {a.shape} vs {b.shape}", "", ""))
            continue
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        rel = diff / scale if scale > 0 else diff
        argmax = ""
        if name.endswith("logits.npy") and a.ndim == 2:
            same = int(np.sum(np.argmax(a, axis=-1) == np.argmax(b, axis=-1)))
            argmax = f"argmax {same}/{a.shape[0]}"
        rows.append((diff, name, str(list(a.shape)), f"{rel:.2e}", argmax))

    if not rows:
        print(f"no common .npy files between {args.ours} and {args.reference}", file=sys.stderr)
        return 1
    rows.sort(key=lambda r: -r[0])
    width = max(len(r[1]) for r in rows)
    print(f"{'tensor':<{width}}  {'shape':<18} {'max|a-b|':>10} {'rel':>9}  notes")
    for diff, name, shape, rel, notes in rows:
        print(f"{name:<{width}}  {shape:<18} {diff:>10.3e} {rel:>9}  {notes}")
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        print(f"({len(missing)} files only in {args.ours}: {shown})")
    if args.atol is not None and rows[0][0] > args.atol:
        print(f"FAIL: {rows[0][1]} differs by {rows[0][0]:.3e} > atol {args.atol:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
