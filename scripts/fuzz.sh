#!/usr/bin/env bash
# fuzz.sh TARGET SECONDS [libFuzzer options...] - fuzz one target of
# tests/fuzz (fuzz_TARGET.c, e.g. `scripts/fuzz.sh scenario 600`) for
# SECONDS, under ASan and UBSan, building build-fuzz first if needed.
#
# New inputs go to build-fuzz/fuzz-corpus/TARGET (the committed seeds in
# tests/fuzz/corpus_TARGET are only read); a crash, leak, timeout (-timeout,
# every input must end) or memory blow-up (-rss_limit_mb, -malloc_limit_mb
# and the targets' own per-input check) leaves its input in
# build-fuzz/fuzz-artifacts/. tests/fuzz/TARGET.dict is used when present,
# and tests/fuzz/TARGET.options holds extra libFuzzer options (one a line).
# Exit status: libFuzzer's (0 when nothing was found).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer options]" >&2; exit 64; }
name=${1#fuzz_}
secs=$2
shift 2
BUILD=${BUILD:-build-fuzz}
[ -f "tests/fuzz/fuzz_$name.c" ] || { echo "fuzz.sh: no target tests/fuzz/fuzz_$name.c" >&2; exit 64; }
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD" -DDETOUR_FUZZ=ON -DDETOUR_WITH_NS3=OFF \
    -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" -j2 --target "fuzz_$name" >/dev/null
work="$BUILD/fuzz-corpus/$name"
artifacts="$BUILD/fuzz-artifacts/$name/"
mkdir -p "$work" "$artifacts"
dict=()
[ -f "tests/fuzz/$name.dict" ] && dict=("-dict=tests/fuzz/$name.dict")
if [ -f "tests/fuzz/$name.options" ]; then
  mapfile -t opts < <(grep -v '^#' "tests/fuzz/$name.options")
  dict+=("${opts[@]}")
fi
exec "$BUILD/tests/fuzz/fuzz_$name" -max_total_time="$secs" -timeout=10 \
  -rss_limit_mb=1024 -malloc_limit_mb=256 -print_final_stats=1 \
  -artifact_prefix="$artifacts" "${dict[@]}" "$@" "$work" "tests/fuzz/corpus_$name"
