"""Paths the Python tests need, from the environment ctest sets (tests/CMakeLists.txt), with
defaults for running pytest by hand from the repository root after scripts/test.sh."""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("GEMMA3_TEST_DATA", ROOT / "tests" / "data"))


@pytest.fixture(scope="session")
def cli() -> str:
    return os.environ.get("GEMMA3_CLI", str(ROOT / "build" / "examples" / "gemma3"))


@pytest.fixture(scope="session")
def tokenizer_path() -> str:
    path = os.environ.get("GEMMA3_TOKENIZER_MODEL") or str(
        pathlib.Path.home() / ".cache" / "gemma3" / "tokenizer" / "tokenizer.model")
    if not os.path.exists(path):
        pytest.fail(f"{path}: no tokenizer.model (scripts/get_tokenizer.sh builds it)")
    return path
