#!/usr/bin/env bash
# bench_tls_peers.sh - the external clients under the bench's TLS faults:
# each is configured by its manifest's tls: section (STARTTLS required,
# certificates checked against the run's CA) and must do what that
# policy implies, never take the message on the primary:
#   - starttls_454 (STARTTLS refused) and cert_unknown_ca (a certificate
#     no trusted CA signed): the built-in engine, Postfix, Exim,
#     nullmailer, OpenSMTPD and dma (which pins the good certificate)
#     move on to the backup; msmtp gives the message up (it tries the
#     next address only when a connection fails);
#   - every client is measured (not "not configured for TLS"), and the
#     budget note says where a policy is weaker than asked: dma's
#     certificate faults "tls.pin only", nobody else's.
# A client that cannot run here (not installed: run scripts/setup.sh) is
# left out; 77 when not root or when no external client can run.
#
#   bench_tls_peers.sh DETOUR OUTDIR
set -u
detour=$1
out=$2
fail() { echo "FAIL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "SKIP: the peers need root (private namespaces)"; exit 77; }
rm -rf "$out" && mkdir -p "$out" || fail "cannot create $out"
json=$out/tls.json
timeout 600 "$detour" bench --client builtin,postfix,exim,nullmailer,opensmtpd,dma,msmtp \
  --faults starttls_454,cert_unknown_ca --messages 3 --throughput-concurrency 0 \
  --json "$json" >"$out/bench.out" 2>&1 || fail "bench: $(tail -5 "$out/bench.out")"
python3 - "$json" <<'PY'
import json, sys

expect = {"builtin": "backup", "postfix": "backup", "exim": "backup",
          "nullmailer": "backup", "opensmtpd": "backup", "dma": "backup",
          "msmtp": "bounced"}
# reasons a client may be left out: it cannot run on this machine
absent = ("is missing", "not found", "needs root")
results = json.load(open(sys.argv[1]))["results"]
bad, ran = [], set()
for r in results:
    c, f = r["client"], r["fault"]
    if f == "none":
        continue
    if not r["measured"]:
        why = r.get("why", "")
        if c != "builtin" and any(a in why for a in absent):
            print("left out: %s %s: %s" % (c, f, why))
            continue
        bad.append("%s %s not measured: %s" % (c, f, why))
        continue
    ran.add(c)
    note = r.get("budget_note", "")
    pin = c == "dma" and f.startswith("cert_")
    if pin != note.startswith("tls.pin only"):
        bad.append("%s %s: budget note %r" % (c, f, note))
    o = r["outcomes"]
    want = expect[c]
    if o["primary"]:
        bad.append("%s %s: %d message(s) taken by the primary" % (c, f, o["primary"]))
    # the run stops sending after two failures (not_sent): the rest must
    # all be what the policy implies
    sent = r["n"] - o["not_sent"]
    if sent == 0 or o[want] != sent:
        bad.append("%s %s: expected %s for every message, got %s" % (c, f, want, o))
    print("%-10s %-15s %s" % (c, f, {k: v for k, v in o.items() if v}))
if bad:
    print("FAIL:\n  " + "\n  ".join(bad))
    sys.exit(1)
if ran <= {"builtin"}:
    print("SKIP: no external client could run here (scripts/setup.sh)")
    sys.exit(77)
PY
