#!/usr/bin/env bash
# main.sh - the README's main job: set up, build, run the conformance suite
# against the built-in engine and write its reports into $REPORT_DIR
# (default: reports-out/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
BUILD=${BUILD:-build}
REPORT_DIR=${REPORT_DIR:-reports-out}
mkdir -p "$REPORT_DIR"
"$BUILD/cli/detour" run scenarios/conformance -j "$(nproc)" --report-dir "$REPORT_DIR"

