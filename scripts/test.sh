#!/usr/bin/env bash
# test.sh - the README's test command: set up, build, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
BUILD=${BUILD:-build}
ctest --test-dir "$BUILD" --output-on-failure -j2 --timeout 600
