#!/usr/bin/env bash
# test_tls_secret.sh - SPEC R13: the AUTH password is in no artefact of a
# run. Runs every TLS/AUTH conformance and certification scenario with
# every report (`--report-dir`: JSON, JUnit, HTML, pcap, results, rows)
# and the verbose terminal output, then greps all of it for the password
# the scenarios give alice and for the base64 forms AUTH puts on the wire
# (LOGIN's password line, PLAIN's "\0alice\0password"). Also checks that
# the HTML timeline marks the TLS and AUTH steps.
#
#   test_tls_secret.sh DETOUR SOURCE_DIR OUTDIR
# Exit 0 pass, 1 fail.
set -u
detour=$1 src=$2 out=$3
password=s3cret
fail() { echo "FAIL: $*"; exit 1; }
rm -rf "$out" && mkdir -p "$out" || fail "cannot create $out"
shopt -s nullglob
files=("$src"/scenarios/conformance/r13-*.yaml "$src"/scenarios/conformance/fault-auth-*.yaml
  "$src"/scenarios/conformance/fault-*tls*.yaml "$src"/scenarios/cert/cert-tls-*.yaml)
[ ${#files[@]} -ge 20 ] || fail "expected the TLS/AUTH scenarios, found ${#files[@]}"
grep -lq "$password" "${files[@]}" || fail "the scenarios no longer use '$password': update this test"
"$detour" run --no-progress -v --report-dir "$out/reports" "${files[@]}" \
  >"$out/stdout" 2>"$out/stderr"
rc=$?
[ $rc -eq 0 ] || fail "detour run exit $rc: $(tail -n 5 "$out/stdout")"
n=$(find "$out" -type f | wc -l)
[ "$n" -ge 7 ] || fail "too few artefacts ($n)"
for form in "$password" "$(printf '%s' "$password" | base64)" \
  "$(printf '\0alice\0%s' "$password" | base64)"; do
  hits=$(grep -rlaF -- "$form" "$out")
  [ -z "$hits" ] || fail "'$form' found in: $hits"
done
# The HTML timeline marks the R13 steps: a padlock per TLS up, a key per
# AUTH accepted (the send log has those rows; the report draws them).
html=$out/reports/report.html
tls_marks=$(grep -o 'class="tls-body"' "$html" | wc -l)
auth_marks=$(grep -o '<circle class="auth"' "$html" | wc -l)
[ "$tls_marks" -ge 5 ] || fail "report.html: $tls_marks TLS marks"
[ "$auth_marks" -ge 3 ] || fail "report.html: $auth_marks AUTH marks"
echo "PASS: ${#files[@]} scenarios, $n artefacts, no form of the password;" \
  "timeline: $tls_marks TLS and $auth_marks AUTH marks"
