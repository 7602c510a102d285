#!/bin/sh
# netsim-table.sh DETOUR [RUNS] - the measured table of
# scenarios/netsim/README.md: runs the netsim suite RUNS times (default 3)
# and prints, per scenario, the configured round trip, the expected
# failover latency (from the scenario's `latency:`) and the observed one
# (submission -> the last "SMTP OK" row), min / median / max over the runs.
# Needs what the suite needs (root, /dev/net/tun, ns-3); exits 77 if not.
set -u
detour=$1
runs=${2:-3}
suite=$(dirname "$0")/../netsim
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
i=1
while [ "$i" -le "$runs" ]; do
  "$detour" run -q --no-progress --out "$tmp/$i" "$suite" >"$tmp/log" 2>&1
  rc=$?
  if [ "$rc" -eq 77 ]; then tail -n 1 "$tmp/log"; exit 77; fi
  [ "$rc" -eq 0 ] || { cat "$tmp/log"; echo "run $i failed"; exit 1; }
  i=$((i + 1))
done
python3 - "$tmp" "$runs" "$suite" <<'PY'
import json, os, re, statistics, sys
tmp, runs, suite = sys.argv[1], int(sys.argv[2]), sys.argv[3]
obs = {}
for i in range(1, runs + 1):
    for line in open(os.path.join(tmp, str(i), "results.jsonl")):
        r = json.loads(line)
        ok = [row["t_ms"] for row in r["rows"] if row["result"] == "SMTP OK"]
        obs.setdefault(r["name"], {"file": r["file"], "v": []})["v"].append(
            max(ok) if ok else None)
def grab(text, key):
    m = re.search(r"^  %s: \{ min: (\S+), max: (\S+) \}" % key, text, re.M)
    return "%s .. %s" % (m.group(1), m.group(2)) if m else "?"
print("| scenario | link RTT (client-server) | expected latency | tolerance | observed min / median / max (%d runs) |" % runs)
print("|---|---|---|---|---|")
for name, o in sorted(obs.items()):
    text = open(o["file"]).read()
    delays = re.findall(r"^    (\w+): \{[^}]*delay: (\w+)", text, re.M)
    rtt = ", ".join("%s %s" % d for d in delays if d[0] != "client")
    tol = re.search(r"^  tolerance: (\S+)", text, re.M)
    v = [x for x in o["v"] if x is not None]
    print("| %s | %s | %s | %s | %.3f / %.3f / %.3f s |" % (
        name, rtt, grab(text, "latency"), tol.group(1) if tol else "200ms",
        min(v) / 1000, statistics.median(v) / 1000, max(v) / 1000))
PY
