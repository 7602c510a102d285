#!/usr/bin/env bash
# test_reports_xml.sh - the JUnit XML and the JSON report read by real
# parsers: xmllint (Debian package libxml2-utils) validates junit.xml
# against tests/test_reports_junit.xsd and checks the counts with XPath;
# python3's json module parses report.json. Both deterministic (golden
# set) and live (wall times, addresses) outputs, with the 200 synthetic
# scenarios added.
#
#   test_reports_xml.sh REPORT_DEMO OUTDIR XSD
# Exit 0 pass, 1 fail, 77 skip (no xmllint).
set -u
demo=$1
out=$2
xsd=$3

if ! command -v xmllint >/dev/null; then
  echo "SKIP: xmllint not installed (Debian package: libxml2-utils)"
  exit 77
fi
fail() { echo "FAIL: $*"; exit 1; }

xpath() { xmllint --xpath "$1" "$2" 2>/dev/null; }

check() { # DIR EXPECTED-TESTS
  local dir=$1 want=$2 x=$1/junit.xml
  xmllint --noout --schema "$xsd" "$x" || fail "$x does not validate"
  [ "$(xpath 'string(/testsuites/@tests)' "$x")" = "$want" ] || fail "tests= in $x"
  [ "$(xpath 'count(//testcase)' "$x")" = "$want" ] || fail "testcase count in $x"
  local failures
  failures=$(xpath 'string(/testsuites/@failures)' "$x")
  [ "$(xpath 'count(//testcase/failure)' "$x")" = "$failures" ] || fail "failure count in $x"
  xpath '//testcase[failure]/failure/text()' "$x" | grep -q 'expected' ||
    fail "the failure text (the diff) is missing in $x"
  xpath '//testcase/system-out/text()' "$x" | grep -q 'SMTP OK' ||
    fail "the log rows are missing from system-out in $x"
  if command -v python3 >/dev/null; then
    python3 - "$dir/report.json" "$want" <<'PY' || fail "$dir/report.json"
import json, sys
doc = json.load(open(sys.argv[1], encoding="utf-8"))
assert doc["schema"] == "detour-report/1"
assert doc["summary"]["total"] == int(sys.argv[2]) == len(doc["scenarios"])
assert [r["rule"] for r in doc["certification"][:12]] == ["R%d" % i for i in range(1, 13)]
for s in doc["scenarios"]:
    for k in ("name", "rules", "verdict", "failures", "timings", "rows", "servers"):
        assert k in s, (s.get("name"), k)
PY
  fi
}

rm -rf "$out" && mkdir -p "$out/det" "$out/live" || fail "cannot create $out"
"$demo" "$out/det" >/dev/null || fail "report_demo failed"
"$demo" "$out/live" --scenarios 200 --live >/dev/null || fail "report_demo failed"
check "$out/det" 5
check "$out/live" 205
echo "PASS: junit.xml validates ($(xmllint --version 2>&1 | head -n1)); report.json parses"
