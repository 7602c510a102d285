#!/bin/sh
# device.sh DETOUR SOURCE_DIR - device mode end to end (`detour certify
# --device`): a "device" (the example client pyclient.py, configured once
# with the two server addresses the instructions name) runs in a network
# namespace of its own, joined by a veth pair to a second namespace where
# detour runs; both namespaces and both addresses (10.251.0.1/24 and
# 10.251.0.2/24) are made by this test and removed at the end. Four
# scenarios of the profile: the device must pass them (it does on
# loopback, scenarios/cert/pyclient.verdicts), the certificate names the
# device, and a run whose --peer is another address fails every scenario
# on "not the device". Exits 77 without root, ip or python3.
set -u
detour=$1 src=$2
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (network namespaces)"; exit 77; }
command -v ip >/dev/null && command -v python3 >/dev/null ||
  { echo "SKIP: needs ip and python3"; exit 77; }
a=dtcert-a-$$ b=dtcert-b-$$
dir=$(mktemp -d) || exit 1
cleanup() {
  ip netns pids "$b" 2>/dev/null | xargs -r kill -9 2>/dev/null
  ip netns del "$a" 2>/dev/null
  ip netns del "$b" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

ip netns add "$a" && ip netns add "$b" || { echo "SKIP: cannot make namespaces"; exit 77; }
ip -n "$a" link add va type veth peer name vb netns "$b" || fail "veth"
ip -n "$a" addr add 10.251.0.1/24 dev va
ip -n "$b" addr add 10.251.0.2/24 dev vb
for n in "$a" "$b"; do ip -n "$n" link set lo up; done
ip -n "$a" link set va up
ip -n "$b" link set vb up

mkdir "$dir/profile"
# the refusing server first: a fake server in refuse mode binds its port
# without SO_REUSEADDR (fakeservers/src/server.c), which fails while an
# earlier scenario's connection on the same fixed port is in TIME_WAIT
cp "$src/scenarios/cert/cert-primary-refused.yaml" "$dir/profile/0-refused.yaml"
for s in cert-greeting-421 cert-rcpt-busy-same-server cert-rcpt-no-such-user; do
  cp "$src/scenarios/cert/$s.yaml" "$dir/profile/"
done
echo 2 >"$dir/profile/VERSION"
# the device, configured once as the instructions say
cat >"$dir/device.conf" <<CONF
servers=10.251.0.1:2525,10.251.0.1:2526
retry=2
max_attempts=10
timeout=2
CONF
trigger="ip netns exec $b sh -c 'python3 $src/clients/examples/pyclient.py $dir/device.conf \"\$DETOUR_FROM\" \$DETOUR_TO <\"\$DETOUR_MESSAGE\" >>$dir/device.log 2>&1 &'"

ip netns exec "$a" "$detour" certify --device --listen 10.251.0.1 \
  --peer 10.251.0.2 --trigger "$trigger" --profile "$dir/profile" \
  --report-dir "$dir/cert" >"$dir/out" 2>&1
rc=$?
[ "$rc" -eq 0 ] || { cat "$dir/out" "$dir/device.log"; fail "exit $rc, want 0"; }
grep -q "SMTP server 1 (normal): 10.251.0.1 port 2525" "$dir/out" ||
  fail "no instructions"
python3 - "$dir/cert/certificate.json" <<'PY' || fail "certificate"
import json, sys
c = json.load(open(sys.argv[1]))["certificate"]
assert c["client"] == "device-10.251.0.2", c["client"]
assert c["verdict"] == "PASS" and c["passed"] == 4, c
PY

# the same with --peer naming another address: every connection is a
# stranger's, so every scenario the device connects in fails
ip netns exec "$a" "$detour" certify --device --listen 10.251.0.1 \
  --peer 10.251.0.3 --trigger "$trigger" --profile "$dir/profile" \
  --filter 'cert-greeting-421' --report-dir "$dir/cert2" >"$dir/out2" 2>&1
rc=$?
[ "$rc" -eq 1 ] || { cat "$dir/out2"; fail "wrong peer: exit $rc, want 1"; }
grep -q "which is not the device (--peer 10.251.0.3)" "$dir/out2" ||
  { cat "$dir/out2"; fail "no 'not the device' failure"; }
echo "device mode: 4 scenarios PASS from the device's namespace; a stranger fails"
