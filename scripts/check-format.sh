#!/usr/bin/env bash
# check-format.sh - fail when a C source differs from .clang-format.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.c' '*.h')
# shellcheck disable=SC2086
if ! clang-format --dry-run --Werror $files; then
  echo "format: run 'clang-format -i' on the files above" >&2
  exit 1
fi
echo "format: $(echo "$files" | wc -l) files clean"
