"""scripts/compare_npy.py, the checker a CI relies on: each kind of broken output must fail."""
import pathlib
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "compare_npy.py"


def run(*args):
    r = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


@pytest.fixture
def dumps(tmp_path):
    """Two identical dumps: ours/ and ref/ (ref with the fixtures' p0_ prefix)."""
    rng = np.random.default_rng(0)
    tensors = {"embed": rng.normal(size=(5, 8)), "layers": rng.normal(size=(3, 5, 8)),
               "logits": rng.normal(size=(5, 32))}
    for side, prefix in (("ours", ""), ("ref", "p0_")):
        (tmp_path / side).mkdir()
        for name, t in tensors.items():
            np.save(tmp_path / side / f"{prefix}{name}.npy", t.astype(np.float32))
    return tmp_path / "ours", tmp_path / "ref", tensors


def test_identical_dumps_pass(dumps):
    ours, ref, _ = dumps
    rc, out = run(ours, ref, "--ref-prefix", "p0_", "--atol", "1e-6")
    assert rc == 0, out
    assert "argmax 5/5" in out


@pytest.mark.parametrize("side", ["ours", "ref"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_planted_nan_or_inf_fails_on_either_side(dumps, side, value):
    ours, ref, tensors = dumps
    bad = tensors["layers"].astype(np.float32)
    bad[1, 2, 3] = value
    directory, prefix = (ours, "") if side == "ours" else (ref, "p0_")
    np.save(directory / f"{prefix}layers.npy", bad)
    for tolerance in ([], ["--atol", "1e-4"], ["--atol", "1e9", "--rtol", "1e9"]):
        rc, out = run(ours, ref, "--ref-prefix", "p0_", *tolerance)
        assert rc == 1, out
        assert "layers.npy" in out and "index (1, 2, 3)" in out


def test_a_tensor_missing_here_fails_unless_skipped(dumps):
    ours, ref, _ = dumps
    (ours / "logits.npy").unlink()
    rc, out = run(ours, ref, "--ref-prefix", "p0_", "--atol", "1e-4")
    assert rc == 1 and "logits.npy: in the reference but not in" in out
    rc, out = run(ours, ref, "--ref-prefix", "p0_", "--atol", "1e-4", "--skip", "logit*")
    assert rc == 0, out
    # Only embed.npy written: not a pass.
    (ours / "layers.npy").unlink()
    rc, out = run(ours, ref, "--ref-prefix", "p0_", "--atol", "1e-4")
    assert rc == 1


def test_extra_tensors_here_are_listed_and_allowed(dumps):
    ours, ref, tensors = dumps
    np.save(ours / "model.layers.0.mlp.npy", tensors["embed"])
    rc, out = run(ours, ref, "--ref-prefix", "p0_", "--atol", "1e-4")
    assert rc == 0 and "only in" in out and "model.layers.0.mlp.npy" in out


def test_a_shifted_layer_fails(dumps):
    ours, ref, tensors = dumps
    shifted = np.roll(tensors["layers"], 1, axis=0).astype(np.float32)  # layer i holds layer i-1
    np.save(ours / "layers.npy", shifted)
    rc, out = run(ours, ref, "--ref-prefix", "p0_", "--atol", "1e-4")
    assert rc == 1 and "layers.npy" in out


def test_tolerances_and_shapes(dumps):
    ours, ref, tensors = dumps
    np.save(ours / "embed.npy", (tensors["embed"] * (1 + 1e-3)).astype(np.float32))
    assert run(ours, ref, "--ref-prefix", "p0_", "--atol", "1e-6")[0] == 1
    assert run(ours, ref, "--ref-prefix", "p0_", "--atol", "1e-6", "--rtol", "2e-3")[0] == 0
    np.save(ours / "embed.npy", tensors["embed"][:4].astype(np.float32))
    rc, out = run(ours, ref, "--ref-prefix", "p0_")
    assert rc == 1 and "shape [4, 8] here, [5, 8] in the reference" in out
    assert run(ours / "nowhere", ref)[0] == 2


def test_a_real_dump_against_its_fixture(dumps, cli, data_dir, tmp_path):
    """gemma3 dump of a fixture prompt passes at 1e-4, with the fixture-only files skipped."""
    case = data_dir / "reference" / "text-tiny-a"
    out = tmp_path / "dump"
    subprocess.run([cli, "dump", "--model", str(case), "--ids-npy", str(case / "p1_input_ids.npy"),
                    "--out", str(out)], check=True, capture_output=True)
    rc, report = run(out, case, "--ref-prefix", "p1_", "--atol", "1e-4",
                     "--skip", "mask_*", "--skip", "decode_logits", "--skip", "input_ids")
    assert rc == 0, report
    rc, report = run(out, case, "--ref-prefix", "p1_", "--atol", "1e-4")
    assert rc == 1 and "mask_global.npy: in the reference" in report


def test_a_dump_whose_completion_stamp_does_not_match_is_refused(dumps):
    """gemma3 dump and hf_dump.py stamp a dump last: a file changed or lost since is named."""
    import json
    ours, ref, _ = dumps
    files = {f.name: f.stat().st_size for f in sorted(ours.iterdir())}
    (ours / "gemma3-complete.json").write_text(json.dumps({"files": files}))
    rc, out = run(ours, ref, "--ref-prefix", "p0_", "--atol", "1e-6")
    assert rc == 0, out
    with open(ours / "layers.npy", "ab") as f:
        f.write(b"x")
    rc, out = run(ours, ref, "--ref-prefix", "p0_", "--atol", "1e-6")
    assert rc == 2 and "layers.npy" in out and "changed after it was written" in out, out
    (ours / "layers.npy").unlink()
    rc, out = run(ours, ref, "--ref-prefix", "p0_", "--atol", "1e-6")
    assert rc == 2 and "listed in gemma3-complete.json but missing" in out, out
