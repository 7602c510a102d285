#!/bin/sh
# determinism.sh DETOUR SUITE_DIR WORK_DIR - two virtual-time runs of the
# suite write byte-identical rows.txt (log rows with their times, what the
# servers saw), one serial and one on $DETOUR_RUN_JOBS threads (default 1
# until fakeservers/src/session.c's static read buffer is per thread).
set -u
detour=$1
suite=$2
work=$3
rm -rf "$work"
"$detour" run -q --no-progress -o "$work/one" "$suite" || exit 1
"$detour" run -q --no-progress -j "${DETOUR_RUN_JOBS:-1}" -o "$work/two" "$suite" || exit 1
if ! cmp "$work/one/rows.txt" "$work/two/rows.txt"; then
  diff "$work/one/rows.txt" "$work/two/rows.txt" | head -40
  exit 1
fi
echo "rows.txt identical ($(wc -l <"$work/one/rows.txt") lines)"
