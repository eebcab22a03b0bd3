"""Builds the Python module with CMake (the target _gemma3 of python/CMakeLists.txt) for
`pip install .`; see docs/python.md. Environment: GEMMA3_JOBS (parallel jobs, default 2),
CMAKE_ARGS (more CMake arguments)."""
import os
import pathlib
import shlex
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = pathlib.Path(__file__).resolve().parent


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = pathlib.Path(self.build_temp).resolve() / "cmake"
        subprocess.run(
            ["cmake", "-S", str(ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
             "-DGEMMA3_BUILD_PYTHON=ON", "-DGEMMA3_BUILD_TESTS=OFF", "-DGEMMA3_BUILD_EXAMPLES=OFF",
             "-DGEMMA3_BUILD_BENCHMARKS=OFF", "-DGEMMA3_INSTALL=OFF",
             f"-DPython3_EXECUTABLE={sys.executable}"]
            + shlex.split(os.environ.get("CMAKE_ARGS", "")),
            check=True)
        subprocess.run(["cmake", "--build", str(build), "--target", "_gemma3", "-j",
                        os.environ.get("GEMMA3_JOBS", "2")], check=True)
        built = build / "python" / "gemma3"
        target = pathlib.Path(self.get_ext_fullpath(ext.name)).parent
        target.mkdir(parents=True, exist_ok=True)
        for f in built.iterdir():
            if f.is_file():
                (target / f.name).write_bytes(f.read_bytes())


setup(
    packages=["gemma3"],
    package_dir={"gemma3": "python/gemma3"},
    package_data={"gemma3": ["py.typed", "_gemma3.pyi"]},
    ext_modules=[Extension("gemma3._gemma3", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    zip_safe=False,
)
