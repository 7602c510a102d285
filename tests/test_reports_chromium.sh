#!/usr/bin/env bash
# test_reports_chromium.sh - the HTML report in a real browser. Writes the
# fixture report padded to 205 scenarios (the "200-scenario run" size),
# checks that it references nothing outside the file, loads it in headless
# Chromium (Debian package: chromium) and fails on any console message
# (script errors, CSP violations = attempted fetches), checks that the
# page's script ran, and takes a screenshot OUTDIR/report.png (a CI
# artefact, not in git). A known-bad page is loaded first, to prove that
# console errors are actually detected by this Chromium.
#
#   test_reports_chromium.sh REPORT_DEMO OUTDIR
# Exit 0 pass, 1 fail, 77 skip (no chromium).
set -u
demo=$1
out=$2

browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "SKIP: chromium not installed (Debian package: chromium)"
  exit 77
fi

fail() { echo "FAIL: $*"; exit 1; }

rm -rf "$out" && mkdir -p "$out" || fail "cannot create $out"
"$demo" "$out" --scenarios 200 || fail "report_demo failed"
html=$out/report.html
[ -s "$html" ] || fail "no $html"

# Self-contained: no src/href/url() that leaves the file (anchors and
# data: URIs are fine).
if grep -Eio '(src|href|action|poster)=["'"'"']?[a-z]+:' "$html" | grep -vi 'data:'; then
  fail "external reference in $html"
fi
if grep -Eiq 'url\((["'"'"'])?(https?:|//)|@import' "$html"; then
  fail "external stylesheet reference in $html"
fi

# run_browser NAME URL EXTRA-FLAGS...: console output into $out/NAME.log
run_browser() {
  local name=$1 url=$2
  shift 2
  local profile
  profile=$(mktemp -d)
  timeout 120 "$browser" --headless --no-sandbox --disable-gpu \
    --disable-background-networking --disable-component-update \
    --disable-sync --no-first-run --user-data-dir="$profile" \
    --enable-logging=stderr --v=0 "$@" "$url" \
    >"$out/$name.out" 2>"$out/$name.log"
  local rc=$?
  rm -rf "$profile"
  return $rc
}

# The page writes nothing to the console, so any console line is an error.
console_lines() { grep -E ':CONSOLE[:(]|Uncaught' "$1" || true; }

# 1. Detection works: a page with a script error must be caught.
cat >"$out/bad.html" <<'HTML'
<!DOCTYPE html><html><body><script>notDefinedAnywhere();</script></body></html>
HTML
run_browser bad "file://$out/bad.html" --dump-dom || fail "chromium did not run (see $out/bad.log)"
[ -n "$(console_lines "$out/bad.log")" ] ||
  fail "console errors are not visible in this chromium's log; the check would be vacuous"

# 2. The report: no console message, the script ran.
run_browser report "file://$html" --dump-dom || fail "chromium failed on the report (see $out/report.log)"
msgs=$(console_lines "$out/report.log")
if [ -n "$msgs" ]; then
  echo "$msgs"
  fail "console messages while loading the report"
fi
grep -q 'data-ready="1"' "$out/report.out" || fail "the report's script did not run"
n=$(grep -o '<details class="scn' "$out/report.out" | wc -l)
[ "$n" -eq 205 ] || fail "expected 205 scenario sections in the DOM, found $n"
t=$(grep -o '<svg class="tl"' "$out/report.out" | wc -l)
[ "$t" -ge 200 ] || fail "expected a timeline per scenario, found $t"

# 3. The screenshot (look at it: timelines of the failing scenarios are
# open near the top).
run_browser shot "file://$html" --screenshot="$out/report.png" \
  --window-size=1400,2000 --hide-scrollbars || fail "screenshot failed"
[ -s "$out/report.png" ] || fail "no screenshot"
# A small run opens every scenario: this one shows all the timelines.
"$demo" "$out/small" >/dev/null || fail "report_demo failed"
run_browser small "file://$out/small/report.html" \
  --screenshot="$out/report-small.png" --window-size=1400,2000 \
  --hide-scrollbars || fail "screenshot failed"
[ -s "$out/report-small.png" ] || fail "no screenshot"
msgs=$(console_lines "$out/small.log")
[ -z "$msgs" ] || fail "console messages on the small report: $msgs"
echo "screenshots: $out/report.png $out/report-small.png"
echo "PASS: report.html loads in $("$browser" --version 2>/dev/null | head -n1) without console errors"
