#!/usr/bin/env bash
# build.sh - configure and build detour into $BUILD (default: build).
# Extra CMake options come from $DETOUR_CMAKE_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
# shellcheck disable=SC2086
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${DETOUR_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
