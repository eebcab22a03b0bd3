#!/usr/bin/env bash
# `pip install .` as the README states it, into a fresh virtual environment with Debian's Python and
# no package index, then the installed module runs a fixture.
#   python_install.sh PYTHON SOURCE_DIR
set -euo pipefail
python=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m venv --system-site-packages "$work/venv"
launcher=""
command -v ccache >/dev/null && launcher="-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"
# (a copy of the tree: pip builds in place, and the test must not leave files in the source)
mkdir "$work/src-tree"
cp -r "$src"/{CMakeLists.txt,setup.py,pyproject.toml,cmake,include,src,python,docs} "$work/src-tree/"
(cd "$work/src-tree" && CMAKE_ARGS="$launcher" "$work/venv/bin/pip" install --no-build-isolation --no-index -q .)
cd "$work"
"$work/venv/bin/python" - "$src/tests/data/reference/text-tiny-a" <<'PY'
import sys
import numpy as np
import gemma3
case = sys.argv[1]
ids = np.load(f"{case}/p0_input_ids.npy").ravel()
logits = gemma3.Model(case).forward(ids)["logits"]
expected = np.load(f"{case}/p0_logits.npy").reshape(logits.shape)
assert np.max(np.abs(logits - expected)) <= 1e-4
print("installed gemma3 from", gemma3.__file__, "runs the fixture")
PY
