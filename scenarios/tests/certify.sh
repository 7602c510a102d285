#!/bin/sh
# certify.sh DETOUR SOURCE_DIR - `detour certify` end to end on a part of
# the profile (the MAIL stage of the R3 matrix and the R10 scenarios):
#  1. the built-in engine: exit 0, certificate.json names the client and
#     its version, the profile's version and a 64-hex SHA-256 of its
#     files, R3 and R10 "pass" with the servers' evidence, an overall PASS
#     line, the HTML certificate and the run's reports beside it;
#  2. a client that says it took every message but delivers nothing (a
#     manifest whose submit is `cat >/dev/null`): exit 1, overall FAIL,
#     R3 "fail", and the run's report names that client, never the
#     built-in engine, and shows no exit code of it.
set -u
detour=$1 src=$2
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$detour" certify --client builtin --profile "$src/scenarios/cert" \
  --filter 'cert-r*-mail-*' --report-dir "$dir/builtin" >"$dir/out1" 2>&1
rc=$?
[ "$rc" -eq 0 ] || { cat "$dir/out1"; fail "builtin: exit $rc, want 0"; }
python3 - "$dir/builtin" "$src/scenarios/cert/VERSION" <<'PY' || fail "builtin certificate"
import json, re, sys, os
d = sys.argv[1]
c = json.load(open(os.path.join(d, "certificate.json")))
m = c["certificate"]
assert m["client"] == "builtin", m["client"]
assert "built-in engine" in m["client_version"], m["client_version"]
assert m["profile_version"] == open(sys.argv[2]).read().strip(), m
assert re.fullmatch(r"[0-9a-f]{64}", m["profile_sha256"]), m["profile_sha256"]
assert m["verdict"] == "PASS" and m["overall"].startswith("PASS: builtin"), m
rules = {r["rule"]: r for r in c["rules"]}
assert rules["R3"]["status"] == "pass", rules["R3"]
ev = rules["R3"]["scenarios"][0]["evidence"]
assert ev and "connections_ms" in ev[0], ev
for f in ("certificate.html", "report.html", "report.json", "junit.xml",
          "results.jsonl"):
    assert os.path.exists(os.path.join(d, f)), f
assert "Certificate of failover behaviour: builtin" in open(
    os.path.join(d, "certificate.html")).read()
PY

cat >"$dir/swallow.yaml" <<'YAML'
name: swallow
version: echo swallow 0.1
renders: [servers, retry, timeouts]
submit: cat >/dev/null
done: sync
YAML
"$detour" certify --client "$dir/swallow.yaml" --profile "$src/scenarios/cert" \
  --filter 'cert-r3-mail-*' --report-dir "$dir/swallow" >"$dir/out2" 2>&1
rc=$?
[ "$rc" -eq 1 ] || { cat "$dir/out2"; fail "swallow: exit $rc, want 1"; }
python3 - "$dir/swallow" <<'PY' || fail "swallow certificate"
import json, os, sys
d = sys.argv[1]
c = json.load(open(os.path.join(d, "certificate.json")))
m = c["certificate"]
assert m["client"] == "swallow" and m["client_version"] == "swallow 0.1", m
assert m["verdict"] == "FAIL" and m["overall"].startswith("FAIL: swallow"), m
assert {r["rule"]: r for r in c["rules"]}["R3"]["status"] == "fail"
for f in ("report.html", "report.json", "junit.xml"):
    text = open(os.path.join(d, f)).read()
    assert "built-in engine" not in text, f
    assert "swallow" in text, f
rep = json.load(open(os.path.join(d, "report.json")))
for s in rep["scenarios"]:
    assert s["client"] == "swallow" and s["exit_code"] is None, s["name"]
PY
grep -q "^FAIL: swallow" "$dir/out2" || fail "no overall FAIL line printed"
echo "certify: builtin PASS, a client that delivers nothing FAIL"

# 3. the scorecard: builtin and the swallowing client side by side
"$detour" certify --clients "builtin,$dir/swallow.yaml" --profile "$src/scenarios/cert" \
  --filter 'cert-r3-mail-*' --report-dir "$dir/card" >"$dir/out3" 2>&1
rc=$?
[ "$rc" -eq 1 ] || { cat "$dir/out3"; fail "scorecard: exit $rc, want 1"; }
python3 - "$dir/card" <<'PY' || fail "scorecard"
import json, os, sys
d = sys.argv[1]
c = json.load(open(os.path.join(d, "scorecard.json")))
names = [x["client"] for x in c["clients"]]
assert names == ["builtin", "swallow"], names
assert len(c["scenarios"]) == 4, len(c["scenarios"])
for s in c["scenarios"]:
    v = s["verdicts"]
    assert v["builtin"]["verdict"] == "PASS", s
    assert v["swallow"]["verdict"] == "FAIL" and v["swallow"]["reason"], s
    assert s["differ"] is True, s
html = open(os.path.join(d, "scorecard.html")).read()
assert html.count('<td class="fail" title="') == 4, "reasons on hover"
assert os.path.exists(os.path.join(d, "builtin", "certificate.html"))
assert os.path.exists(os.path.join(d, "swallow", "certificate.html"))
PY
echo "scorecard: one matrix, the difference marked"
