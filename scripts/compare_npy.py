#!/usr/bin/python3
"""Compare two directories of .npy dumps tensor by tensor, worst first; fail on anything a CI
should not let through.

    scripts/compare_npy.py OURS REFERENCE [--ref-prefix p3_] [--ours-prefix ""]
                           [--atol 1e-4] [--rtol 0] [--skip 'mask_*' ...]

Pairs every OURS/<ours-prefix><name>.npy with REFERENCE/<ref-prefix><name>.npy (for example a
`gemma3 dump` directory against a fixture case whose files are named p{k}_<name>.npy) and prints,
per tensor, its shape, max |a-b|, max |a-b| / max |b|, and the argmax agreement of 2-D logits,
sorted by the largest difference. It exits 1 (and says why, one line per problem) when:

  * a tensor holds NaN or +-Inf, on either side (NaN compares false with every tolerance, so a
    plain max |a-b| <= atol would let it through);
  * the reference has a tensor that OURS lacks (a backend that writes only embed.npy does not
    pass), unless --skip names it (shell-style patterns on the name without prefix: 'mask_*');
  * shapes differ;
  * with --atol / --rtol: some element has |a-b| > atol + rtol * |b| (numpy.isclose's rule).

Tensors only in OURS are listed and allowed (the reference may dump fewer sites). Exit 2: bad
arguments or unreadable files. Needs only numpy.
"""
import argparse
import fnmatch
import json
import os
import sys

import numpy as np


def load(path):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise SystemExit(f"compare_npy: {path}: cannot read: {e}") from None


def describe_nonfinite(a):
    nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    first = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
    return f"{nan} NaN and {inf} Inf, the first at index {first}"


STAMP = "gemma3-complete.json"


def stamp_problem(directory):
    """Why a dump directory is incomplete, or None. `gemma3 dump` and hf_dump.py write a
    completion stamp (each file and its size) last; a directory without one is taken as it is."""
    path = os.path.join(directory, STAMP)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            files = json.load(f)["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"{path}: not a completion stamp ({e})"
    for name, size in files.items():
        file = os.path.join(directory, name)
        if not os.path.isfile(file):
            return f"{file}: listed in {STAMP} but missing"
        if os.path.getsize(file) != size:
            return f"{file}: {os.path.getsize(file)} bytes, {STAMP} says {size}: changed after it was written"
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ours")
    ap.add_argument("reference")
    ap.add_argument("--ours-prefix", default="")
    ap.add_argument("--ref-prefix", default="")
    ap.add_argument("--atol", type=float, default=None, help="absolute tolerance")
    ap.add_argument("--rtol", type=float, default=None, help="relative tolerance (of |reference|)")
    ap.add_argument("--skip", action="append", default=[], metavar="PATTERN",
                    help="reference tensors that OURS need not have (repeatable; 'mask_*')")
    args = ap.parse_args(argv)
    for d in (args.ours, args.reference):
        if not os.path.isdir(d):
            print(f"compare_npy: {d}: not a directory", file=sys.stderr)
            return 2
        if problem := stamp_problem(d):
            print(f"compare_npy: {problem}", file=sys.stderr)
            return 2

    def names(directory, prefix):
        return {f[len(prefix):] for f in os.listdir(directory)
                if f.endswith(".npy") and f.startswith(prefix)}

    ours, ref = names(args.ours, args.ours_prefix), names(args.reference, args.ref_prefix)
    skipped = {n for n in ref - ours if any(fnmatch.fnmatch(n[:-4], p) or fnmatch.fnmatch(n, p)
                                            for p in args.skip)}
    missing = sorted(ref - ours - skipped)
    extra = sorted(ours - ref)
    tolerance = args.atol is not None or args.rtol is not None
    atol, rtol = args.atol or 0.0, args.rtol or 0.0

    rows, problems = [], []
    for name in sorted(ours & ref):
        a = load(os.path.join(args.ours, args.ours_prefix + name))
        b = load(os.path.join(args.reference, args.ref_prefix + name))
        if a.shape != b.shape:
            problems.append(f"{name}: shape {list(a.shape)} here, {list(b.shape)} in the reference")
            rows.append((float("inf"), name, f"{list(a.shape)} vs {list(b.shape)}", "", "shape"))
            continue
        a, b = a.astype(np.float64), b.astype(np.float64)
        for side, x in (("ours", a), ("the reference", b)):
            if not np.all(np.isfinite(x)):
                problems.append(f"{name}: {side} holds {describe_nonfinite(x)}")
        finite = np.isfinite(a) & np.isfinite(b)
        diff = float(np.max(np.abs(a - b)[finite])) if finite.any() else 0.0
        if not finite.all():
            diff = float("nan")
        scale = float(np.max(np.abs(b[np.isfinite(b)]))) if np.isfinite(b).any() else 0.0
        rel = diff / scale if scale > 0 else diff
        notes = ""
        if name.endswith("logits.npy") and a.ndim == 2:
            same = int(np.sum(np.argmax(a, axis=-1) == np.argmax(b, axis=-1)))
            notes = f"argmax {same}/{a.shape[0]}"
        if tolerance and finite.all():
            bad = np.abs(a - b) > atol + rtol * np.abs(b)
            if bad.any():
                worst = tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(a - b)), a.shape))
                problems.append(f"{name}: {int(bad.sum())} of {a.size} elements differ by more "
                                f"than atol {atol:g} + rtol {rtol:g} * |ref| (max |a-b| {diff:.3e} "
                                f"at {worst})")
        rows.append((diff, name, str(list(a.shape)), f"{rel:.2e}", notes))

    if rows:
        rows.sort(key=lambda r: (r[0] == r[0], -r[0] if r[0] == r[0] else 0))  # NaN, then worst
        width = max(len(r[1]) for r in rows)
        print(f"{'tensor':<{width}}  {'shape':<18} {'max|a-b|':>10} {'rel':>9}  notes")
        for diff, name, shape, rel, notes in rows:
            print(f"{name:<{width}}  {shape:<18} {diff:>10.3e} {rel:>9}  {notes}")
    else:
        problems.append(f"no common .npy files between {args.ours} and {args.reference}")
    if extra:
        shown = ", ".join(extra[:5]) + (", ..." if len(extra) > 5 else "")
        print(f"({len(extra)} only in {args.ours}, allowed: {shown})")
    if skipped:
        print(f"({len(skipped)} only in {args.reference}, skipped: {', '.join(sorted(skipped))})")
    for name in missing:
        problems.append(f"{name}: in the reference but not in {args.ours} (--skip it if expected)")
    for p in problems:
        print(f"FAIL: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
