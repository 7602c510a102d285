#!/bin/sh
# check-client.sh DETOUR CLIENT CERT_DIR VERDICTS - the CTest test of the
# certification profile against an external client (scenarios/cert/
# README.md): runs `detour run --client CLIENT CERT_DIR` and passes when
# every scenario's verdict is the one recorded in VERDICTS ("name VERDICT"
# lines, or "name PASS|FAIL" for a verdict that races inside the client;
# a FAIL there is a finding about the client, not a bug of ours).
# A new failure, a new pass (update the record and the README) or an
# ERROR fails the test. Exits 77 with the reason when the client cannot
# run here (not installed, not root): `detour run` skips every scenario.
# DETOUR_CERT_JOBS=N runs N scenarios at once (default 1; CTest uses 4).
set -u
detour=$1 client=$2 dir=$3 verdicts=$4
out=$(mktemp) || exit 1
trap 'rm -f "$out" "$out.want" "$out.got"' EXIT
"$detour" run --no-progress --jobs "${DETOUR_CERT_JOBS:-1}" --client "$client" "$dir" >"$out" 2>&1
rc=$?
if [ "$rc" -eq 77 ]; then
  grep 'nothing ran here' "$out" || tail -n 3 "$out"
  exit 77
fi
# A recorded "PASS|FAIL" is a verdict that depends on a race inside the
# client (its queue runner against its own retry time): either is
# accepted, and the record says why in a comment.
awk '/^(PASS|FAIL|ERROR|SKIP) / { print $2, $1 }' "$out" | sort >"$out.got"
grep -v '^#' "$verdicts" | awk 'NF >= 2 { print $1, $2 }' |
  awk 'NR == FNR { got[$1] = $2; next }
       { n = split($2, alt, "|"); v = alt[1];
         for (i = 1; i <= n; i++) if (alt[i] == got[$1]) v = alt[i];
         print $1, v }' "$out.got" - | sort >"$out.want"
if ! diff -u "$out.want" "$out.got" >/dev/null; then
  cat "$out"
  echo "--- verdicts differ from $verdicts ('-' recorded, '+' this run):"
  diff -u "$out.want" "$out.got" | tail -n +3
  exit 1
fi
tail -n 2 "$out"
echo "every verdict as recorded in $verdicts"
exit 0
