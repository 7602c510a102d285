#!/usr/bin/env bash
# bench_html_chromium.sh - `detour bench --html` in a real browser: a small
# bench of two clients (the built-in engine and the plain-script example
# client, clients/examples/pyclient.yaml, which needs only python3) on
# three faults, then the page is checked for self-containment, loaded in
# headless Chromium (Debian package chromium), and must show one chart per
# fault (the baseline too) with one series per client, every number in a
# table, and no console message. A page with a script error is loaded
# first, to prove console errors are seen at all.
#
#   bench_html_chromium.sh DETOUR SOURCE_DIR OUTDIR [CLIENTS [MESSAGES]]
# CLIENTS (comma-separated, default: builtin and the example client) and
# MESSAGES (default 3) give the run; CTest also runs the issue's own
# command, builtin,postfix,exim,nullmailer with 50 messages. The run must
# finish within 5 minutes.
# Exit 0 pass, 1 fail, 77 skip (no chromium or no python3, or a client
# that cannot run here: not installed, not root).
set -u
detour=$1
src=$2
out=$3
clients=${4:-builtin,$src/clients/examples/pyclient.yaml}
messages=${5:-3}
fail() { echo "FAIL: $*"; exit 1; }

browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "SKIP: chromium not installed (Debian package: chromium)"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 not installed"; exit 77; }

rm -rf "$out" && mkdir -p "$out" || fail "cannot create $out"
html=$out/bench.html
t0=$(date +%s)
timeout 300 "$detour" bench --client "$clients" \
  --faults refuse,greeting_421,rcpt_452 --messages "$messages" --throughput-concurrency 2 \
  --html "$html" --json "$out/bench.json" >"$out/bench.out" 2>"$out/bench.err" ||
  fail "detour bench failed or ran past 5 minutes: $(tail -5 "$out/bench.err")"
echo "detour bench --client $clients --messages $messages: $(( $(date +%s) - t0 )) s"
[ -s "$html" ] || fail "no $html"
# A client that cannot run here is a skip, not a failure of the page.
python3 - "$out/bench.json" <<'PY' || exit 77
import json, re, sys
# the adapters' reasons for a client that cannot run on this machine
cannot = re.compile(r"is missing|not found|needs root|isolation needs")
for r in json.load(open(sys.argv[1]))["results"]:
    if not r["measured"] and cannot.search(r.get("why", "")):
        print("SKIP: %s: %s" % (r["client"], r["why"]))
        sys.exit(1)
PY

# Self-contained: nothing that leaves the file.
if grep -Eio '(src|href|action|poster)=["'"'"']?[a-z]+:' "$html" | grep -vi 'data:'; then
  fail "external reference in $html"
fi
grep -Eiq 'url\((["'"'"'])?(https?:|//)|@import|<link ' "$html" && fail "external stylesheet in $html"

run_browser() {
  local name=$1 url=$2 profile
  profile=$(mktemp -d)
  timeout 120 "$browser" --headless --no-sandbox --disable-gpu \
    --disable-background-networking --disable-component-update \
    --disable-sync --no-first-run --user-data-dir="$profile" \
    --enable-logging=stderr --v=0 --dump-dom "$url" \
    >"$out/$name.out" 2>"$out/$name.log"
  local rc=$?
  rm -rf "$profile"
  return $rc
}
console_lines() { grep -E ':CONSOLE[:(]|Uncaught' "$1" || true; }

cat >"$out/bad.html" <<'HTML'
<!DOCTYPE html><html><body><script>notDefinedAnywhere();</script></body></html>
HTML
run_browser bad "file://$out/bad.html" || fail "chromium did not run (see $out/bad.log)"
[ -n "$(console_lines "$out/bad.log")" ] ||
  fail "console errors are not visible in this chromium's log; the check would be vacuous"

run_browser page "file://$html" || fail "chromium failed on the page (see $out/page.log)"
msgs=$(console_lines "$out/page.log")
[ -z "$msgs" ] || { echo "$msgs"; fail "console messages while loading the page"; }
dom=$out/page.out
grep -q 'data-ready="1"' "$dom" || fail "the page's script did not run"

# One chart per fault (none, refuse, greeting_421, rcpt_452), each with
# one series per client, in the DOM the browser built.
python3 - "$dom" "$clients" <<'PY' || exit 1
import os, re, sys
dom = open(sys.argv[1]).read()
clients = [os.path.basename(c).removesuffix(".yaml") for c in sys.argv[2].split(",")]
charts = re.findall(r'<svg class="chart" data-fault="([^"]+)"(.*?)</svg>', dom, re.S)
faults = [f for f, _ in charts]
want = ["none", "refuse", "greeting_421", "rcpt_452"]
if faults != want:
    sys.exit("FAIL: charts for %s, expected %s" % (faults, want))
for f, body in charts:
    series = re.findall(r'<g class="series" data-client="([^"]+)"', body)
    if series != clients:
        sys.exit("FAIL: chart %s has series %s, expected %s" % (f, series, clients))
    if body.count("<rect") < len(clients):
        sys.exit("FAIL: chart %s: a client has no box (not measured?)" % f)
tables = re.findall(r'<table class="nums" data-fault="([^"]+)"', dom)
if tables != want:
    sys.exit("FAIL: tables for %s, expected %s" % (tables, want))
if 'class="tp"' not in dom:
    sys.exit("FAIL: no throughput chart")
print("ok: %d charts x %d series, %d tables, throughput chart"
      % (len(charts), len(clients), len(tables)))
PY
echo "PASS"
