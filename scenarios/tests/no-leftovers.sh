#!/bin/sh
# no-leftovers.sh DETOUR CLIENT CERT_DIR - a client's run leaves nothing
# behind: runs two scenarios of the profile against CLIENT with TMPDIR set
# to a fresh folder (where every instance folder goes) - one the client
# delivers at once, one it cannot deliver (it keeps the message queued or
# a retry process sleeping until teardown) - then requires: the folder is
# empty, no process refers to it, no mount refers to it, no namespace
# holder of ours is left. Exits 77 when the client cannot run here.
set -u
detour=$1 client=$2 cert=$3
tmp=$(mktemp -d) || exit 1
chmod 755 "$tmp" # a client dropping root (the postfix user) walks into it
trap 'rm -rf "$tmp"' EXIT
out=$(mktemp) || exit 1
TMPDIR=$tmp "$detour" run --no-progress --client "$client" \
  "$cert/cert-primary-refused.yaml" "$cert/cert-rcpt-busy-same-server.yaml" \
  >"$out" 2>&1
rc=$?
if [ "$rc" -eq 77 ]; then
  grep 'nothing ran here' "$out"
  rm -f "$out"
  exit 77
fi
grep -q '^ERROR' "$out" && { cat "$out"; rm -f "$out"; echo "FAIL: a run did not set up"; exit 1; }
rm -f "$out"
bad=0
left=$(ls -A "$tmp")
[ -z "$left" ] || { echo "FAIL: left in TMPDIR: $left"; bad=1; }
procs=$(ps -eo pid,args | grep -F "$tmp" | grep -v -e grep -e no-leftovers)
[ -z "$procs" ] || { echo "FAIL: processes left: $procs"; bad=1; }
mounts=$(grep -F "$tmp" /proc/self/mountinfo)
[ -z "$mounts" ] || { echo "FAIL: mounts left: $mounts"; bad=1; }
[ "$bad" -eq 0 ] && echo "$client: nothing left (folder, processes, mounts)"
exit "$bad"
