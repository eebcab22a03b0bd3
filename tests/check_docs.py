#!/usr/bin/env python3
"""Checks that what docs/*.md and README.md quote from the source still matches it.

  * every `path:line` reference (e.g. include/gemma3/text/attention.hpp:93) names an existing file
    with at least that many lines; when the next line of the doc quotes the line as gdb prints it
    ("93<TAB>code"), the source line must read the same;
  * a code block that quotes the source says so on the line before it, with the file it quotes:
        <!-- quote: include/gemma3/text/decoder_layer.hpp -->
    and its code appears in that file, in the same order, whatever the line breaks and comments
    ("..." lines mark omissions).

Usage: check_docs.py REPO_ROOT. Prints every stale quote and exits 1 if there is one.
"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
docs = sorted(root.glob("docs/*.md")) + [root / "README.md"]
ref = re.compile(r"((?:include|examples|src|scripts|tests|benchmarks)/[\w./+-]+\.(?:hpp|cpp|h|py|sh|cmake|txt)):(\d+)")
norm = lambda s: " ".join(s.split())

quote_mark = re.compile(r"^<!-- quote: (\S+) -->$")


def code_only(lines):
    """The code of `lines` with // comments and all whitespace removed: quotes survive reformatting."""
    return "".join(re.sub(r"\s+", "", re.sub(r"(^|\s)//.*$", "", l)) for l in lines)


def check_quote(path, block):
    """The first part of `block` (parts are separated by "..." lines) not found, in order, in `path`."""
    src = code_only(path.read_text(errors="replace").splitlines())
    parts, part = [], []
    for b in block + ["..."]:
        if b.strip() in ("...", "…"):
            if part:
                parts.append(part)
            part = []
        else:
            part.append(b)
    at = 0
    for part in parts:
        code = code_only(part)
        if not code:
            continue
        found = src.find(code, at)
        if found < 0:
            return next((l.strip() for l in part if l.strip()), "")
        at = found + len(code)
    return None


errors = []
for doc in docs:
    lines = doc.read_text().splitlines()
    in_cpp, block, start = False, [], 0
    for i, line in enumerate(lines):
        for m in ref.finditer(line):
            path, n = root / m.group(1), int(m.group(2))
            if not path.exists():
                errors.append(f"{doc.name}:{i + 1}: {m.group(0)}: no such file")
                continue
            src = path.read_text(errors="replace").splitlines()
            if n > len(src):
                errors.append(f"{doc.name}:{i + 1}: {m.group(0)}: the file has {len(src)} lines")
                continue
            quoted = lines[i + 1] if i + 1 < len(lines) else ""
            q = re.match(r"^(\d+)\t(.*)$", quoted)
            if q and int(q.group(1)) == n and norm(q.group(2)) != norm(src[n - 1]):
                errors.append(f"{doc.name}:{i + 2}: line {n} of {m.group(1)} reads '{src[n - 1].strip()}'")
        if line.startswith("```"):
            if not in_cpp:
                in_cpp, block, start = True, [], i + 1
                back = i - 1
                while back >= 0 and not lines[back].strip():
                    back -= 1
                mark = quote_mark.match(lines[back].strip()) if back >= 0 else None
                quote = mark.group(1) if mark else None
            else:
                in_cpp = False
                if quote:
                    if not (root / quote).exists():
                        errors.append(f"{doc.name}:{start}: quotes {quote}: no such file")
                    elif (bad := check_quote(root / quote, block)) is not None:
                        errors.append(f"{doc.name}:{start}: not in {quote} (in order): {bad}")
            continue
        if in_cpp:
            block.append(line)

for e in errors:
    print(e)
print(f"check_docs: {len(errors)} stale quote(s) in {len(docs)} documents")
sys.exit(1 if errors else 0)
