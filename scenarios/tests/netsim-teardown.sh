#!/bin/sh
# netsim-teardown.sh DETOUR SUITE_DIR SWEEP - nothing of a netsim run may
# outlive it:
#   1. SIGINT mid-run: `detour run` tears down on its normal path and exits
#      130; at once, with no sweep, no namespace and no detour-netsim of
#      that run is left.
#   2. SIGKILL mid-run: the namespaces stay (nobody could remove them), the
#      next `detour run` sweeps them at its start, and afterwards nothing
#      of either run is left; SWEEP --check agrees.
# Exits 77 (CTest: skipped) with the reason when netsim cannot run here:
# not root, no /dev/net/tun, no `ip`, or no ns-3 program.
set -u
detour=$1
suite=$2
sweep=$3
long=$suite/primary-cut-mid-data.yaml   # about 8 s: time to interrupt it
short=$suite/wan-200ms-failover.yaml    # about 2 s
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0

fail() {
  echo "FAIL: $*"
  status=1
}

# Namespaces and live programs of the runs owned by pid $1.
leftovers() {
  n=0
  for f in /var/run/netns/dt-"$1"x*; do
    [ -e "$f" ] && n=$((n + 1))
  done
  for c in /proc/[0-9]*/cmdline; do
    if tr '\0' ' ' <"$c" 2>/dev/null | grep -q -- "--run-id $1x"; then
      n=$((n + 1))
    fi
  done
  echo "$n"
}

# Bounded waits: until the run of pid $1 has a namespace (0), or it ended.
wait_started() {
  i=0
  while [ $i -lt 100 ]; do
    ls /var/run/netns/dt-"$1"x* >/dev/null 2>&1 && return 0
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.1
    i=$((i + 1))
  done
  return 1
}

wait_gone() {
  i=0
  while [ $i -lt 200 ] && kill -0 "$1" 2>/dev/null; do
    sleep 0.1
    i=$((i + 1))
  done
  ! kill -0 "$1" 2>/dev/null
}

# Starts the long scenario in the background; sets pid. Skips the whole
# test when the run says netsim cannot run here.
start_long() {
  "$detour" run --no-progress "$long" >"$out" 2>&1 &
  pid=$!
  if ! wait_started "$pid"; then
    wait "$pid"
    rc=$?
    if [ "$rc" -eq 77 ]; then
      echo "SKIP: $(grep -m 1 'skipped:' "$out" | sed 's/^ *//')"
      exit 77
    fi
    cat "$out"
    echo "FAIL: the run (exit $rc) made no namespace within 10 s"
    exit 1
  fi
  sleep 1.5 # into the SMTP dialogue
}

# 1. SIGINT
start_long
kill -INT "$pid"
wait_gone "$pid" || fail "SIGINT: the run did not end within 20 s"
wait "$pid"
rc=$?
[ "$rc" -eq 130 ] || fail "SIGINT: exit status $rc, expected 130"
grep -q "interrupted" "$out" || fail "SIGINT: no 'interrupted' in the output"
left=$(leftovers "$pid")
[ "$left" -eq 0 ] || fail "SIGINT: $left namespaces/programs of run $pid left"
echo "SIGINT: exit $rc, nothing left of run $pid"

# 2. SIGKILL, then the next run sweeps
start_long
kill -KILL "$pid"
wait "$pid" 2>/dev/null
killed=$pid
left=$(leftovers "$killed")
[ "$left" -gt 0 ] || fail "SIGKILL: nothing left to sweep (the test proves nothing)"
"$detour" run --no-progress "$short" >"$out" 2>&1 &
next=$!
wait_gone "$next" || fail "the next run did not end within 20 s"
wait "$next"
rc=$?
[ "$rc" -eq 0 ] || { cat "$out"; fail "the next run: exit $rc"; }
left=$(leftovers "$killed")
[ "$left" -eq 0 ] || fail "SIGKILL: $left namespaces/programs of run $killed left after the next run's sweep"
left=$(leftovers "$next")
[ "$left" -eq 0 ] || fail "the next run left $left namespaces/programs"
"$sweep" --check || fail "$sweep --check found runs left"
echo "SIGKILL: run $killed swept by run $next; nothing left"
exit $status
