"""Every code block of docs/python.md runs: the ```sh blocks through bash, the ```python blocks in
one namespace, in order, from the repository root (paths in the page are relative to it;
build/examples/gemma3 and /tmp/gemma3-tiny are replaced by the build's CLI and a scratch path)."""
import os
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]


def blocks():
    text = (ROOT / "docs" / "python.md").read_text()
    return re.findall(r"```(python|sh)\n(.*?)```", text, flags=re.S)


def test_every_block_of_python_md_runs(cli, tokenizer_path, tmp_path, monkeypatch):
    found = blocks()
    assert sum(kind == "python" for kind, _ in found) >= 5
    monkeypatch.chdir(ROOT)
    checkpoint = str(tmp_path / "gemma3-tiny")
    namespace = {}
    for kind, code in found:
        code = code.replace("/tmp/gemma3-tiny", checkpoint).replace("build/examples/gemma3", cli)
        code = code.replace("~/.cache/gemma3/tokenizer/tokenizer.model", tokenizer_path)
        if os.environ.get("PYTHONPATH"):  # the build tree ctest points at
            code = code.replace("PYTHONPATH=build/python", "PYTHONPATH=" + os.environ["PYTHONPATH"])
        if kind == "sh":
            env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", ""))
            subprocess.run(["bash", "-euo", "pipefail", "-c", code], check=True, env=env,
                           capture_output=True)
        else:
            exec(compile(code, "docs/python.md", "exec"), namespace)  # noqa: S102 - the docs' code
