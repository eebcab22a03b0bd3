"""The typing stubs (python/gemma3/_gemma3.pyi) are what mypy sees: a correct use type-checks, a
wrong one is reported where it is."""
import os
import subprocess
import sys

import gemma3

USE = '''
import numpy as np
import gemma3

model = gemma3.Model("dir", dtype="float32")
out = model.forward(np.array([2, 3]), capture=["model.layers.0"], logits="last")
logits: np.ndarray = out["logits"]
captured = out["captured"]["model.layers.0"]
tok = gemma3.Tokenizer("tokenizer.model")
session = gemma3.Session(model, tok, seed=1, top_logprobs=2)
for token in session.generate(tok.render_chat([{"role": "user", "content": "Hi"}])):
    first_id: int = token["id"]
result = session.chat("more").result
scores = model.score([2, 3, 4], top=2)
best: float = scores[0]["logprob"]
try:
    gemma3.Model("/nonexistent")
except gemma3.IoError as e:
    message: str = str(e)
'''


def mypy(tmp_path, code):
    path = tmp_path / "use.py"
    path.write_text(code)
    package_dir = os.path.dirname(os.path.dirname(gemma3.__file__))
    return subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", str(path)],
                          capture_output=True, text=True, env=dict(os.environ, MYPYPATH=package_dir))


def test_a_correct_use_type_checks(tmp_path):
    r = mypy(tmp_path, USE)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_wrong_use_is_reported(tmp_path):
    r = mypy(tmp_path, USE + 'layers: str = model.num_layers\nmodel.forward("2 3 4")\n')
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert len(lines) == 2, r.stdout
    assert 'Incompatible types in assignment (expression has type "int", variable has type "str")' in lines[0]
    assert 'Argument 1 to "forward" of "Model" has incompatible type "str"' in lines[1]
