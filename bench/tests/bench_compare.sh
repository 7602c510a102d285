#!/usr/bin/env bash
# bench_compare.sh - `detour bench --compare`: a small bench of the
# built-in engine (refuse: sub-millisecond; blackhole: the 1 s connect
# timeout) is written as JSON; then
#   1. a rerun compared with it passes (exit 0, "no regression");
#   2. the same results compared with a baseline doctored to be 2x faster
#      (every sample halved) fail (exit 1) and name the pair whose change
#      is above the 1 ms noise floor (builtin blackhole);
#   3. with --noise-floor 0 a sub-millisecond pair (none or refuse) is
#      named too (which ones depends on how far a shared machine spreads
#      their few samples; the p99 is not judged below 100 samples);
#   4. the results compared with themselves pass.
#
#   bench_compare.sh DETOUR OUTDIR
set -u
detour=$1
out=$2
fail() { echo "FAIL: $*"; exit 1; }
rm -rf "$out" && mkdir -p "$out" || fail "cannot create $out"
a=$out/a.json
args=(--client builtin --faults refuse,blackhole --messages 8 --throughput-concurrency 0)

timeout 120 "$detour" bench "${args[@]}" --json "$a" >"$out/run1.out" 2>&1 || fail "first run: $(tail -3 "$out/run1.out")"

timeout 120 "$detour" bench "${args[@]}" --compare "$a" >"$out/rerun.out" 2>&1
rc=$?
[ $rc -eq 0 ] || { cat "$out/rerun.out"; fail "a rerun compared with the first run: exit $rc"; }
grep -q "no regression" "$out/rerun.out" || fail "rerun: no 'no regression' line"

python3 - "$a" "$out/fast.json" <<'PY' || fail "cannot doctor the baseline"
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["results"]:
    if "samples_ms" in r:
        r["samples_ms"] = [x / 2 for x in r["samples_ms"]]
json.dump(d, open(sys.argv[2], "w"))
PY

"$detour" bench --compare "$out/fast.json" --results "$a" >"$out/fast.out" 2>&1
rc=$?
cat "$out/fast.out"
[ $rc -eq 1 ] || fail "against a 2x faster baseline: exit $rc, expected 1"
grep -q "REGRESSION builtin blackhole:" "$out/fast.out" || fail "blackhole not named"
grep -q "REGRESSION builtin refuse" "$out/fast.out" && fail "refuse named below the 1 ms noise floor"

"$detour" bench --compare "$out/fast.json" --results "$a" --noise-floor 0 >"$out/fast0.out" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "--noise-floor 0: exit $rc"
n1=$(grep -c "REGRESSION" "$out/fast.out")
n0=$(grep -c "REGRESSION" "$out/fast0.out")
grep -q "REGRESSION builtin blackhole:" "$out/fast0.out" || fail "--noise-floor 0: blackhole not named"
[ "$n0" -gt "$n1" ] || { cat "$out/fast0.out"; fail "--noise-floor 0 named no sub-millisecond pair"; }

"$detour" bench --compare "$a" --results "$a" --noise-floor 0 >"$out/self.out" 2>&1 ||
  fail "the results against themselves: exit $?"
echo "PASS"
