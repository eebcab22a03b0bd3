#!/usr/bin/env bash
# Every file given is exactly as clang-format writes it. (Compared by output, not with --dry-run
# --Werror: clang-format 14 reports its own, unchanged, namespace end comments as violations.)
#   format_check.sh CLANG_FORMAT FILE...
set -uo pipefail
clang_format=$1
shift
bad=0
for f in "$@"; do
  if ! "$clang_format" "$f" | cmp -s - "$f"; then
    echo "$f: not clang-formatted (run: clang-format -i $f)"
    bad=1
  fi
done
exit $bad
