#!/bin/sh
# run_smtp_source.sh - is the fake server ever the bottleneck? Postfix's
# smtp-source (20 sessions in parallel, a new connection per message) sends
# the same load to `detour serve` (an accepting script, recording on in
# summary mode: connections and messages kept, no per-command events) and
# to Postfix's smtp-sink, alternately A B A B (ROUNDS pairs) so that a
# change in the machine's load hits both; prints each run's messages/s,
# the server's CPU time per message, the means and the ratio
# detour/smtp-sink of the summed rates.
#
# Capacity, not the generator: on a small machine smtp-source costs more
# CPU per message than either server, so with everyone sharing the CPUs
# the generator decides msg/s. By default each server runs with the same
# CPU budget, BUDGET percent of one CPU (SCHED_DEADLINE, chrt -d: BUDGET%
# of every 10 ms period; the generator and the kernel keep the rest), so
# the server is the saturated resource and msg/s measures what a server
# does with a given CPU. BUDGET=0: no budget, everyone shares the CPUs
# (what a run on this machine would see). Without the privilege for
# SCHED_DEADLINE (root or CAP_SYS_NICE) the script says so and runs
# without a budget.
#
#   bench/run_smtp_source.sh [BUILD_DIR]        (default: build)
#   env: DETOUR=path/to/detour MESSAGES=20000 SESSIONS=20 ROUNDS=2
#        RECORD=summary (or full, off) BUDGET=25 (percent of one CPU, 0: none)
# Every step is bounded (timeouts); the servers are stopped by their PIDs.
# Needs smtp-source and smtp-sink (Debian package postfix; the postfix
# service itself is not used).
set -eu
BUILD=${1:-build}
DETOUR=${DETOUR:-$BUILD/cli/detour}
MESSAGES=${MESSAGES:-20000}
SESSIONS=${SESSIONS:-20}
ROUNDS=${ROUNDS:-2}
RECORD=${RECORD:-summary}
BUDGET=${BUDGET:-25}
SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
SINK=$(command -v smtp-sink || echo /usr/sbin/smtp-sink)
[ -x "$SOURCE" ] && [ -x "$SINK" ] || { echo "SKIP: smtp-source/smtp-sink not found (Debian package postfix)"; exit 77; }
TMP=$(mktemp -d)
SERVE_PID= SINK_PID=
cleanup() {
  [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null || true
  [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
  i=0
  while ! python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),1).close()" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "nothing listens on $1" >&2; exit 1; }
    sleep 0.1
  done
}

# CPU time (user + system, clock ticks) of process $1 so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# One smtp-source run against 127.0.0.1:$1 (server pid $2): messages per
# second, and the server's CPU time per message in microseconds.
load() {
  c0=$(cpu_ticks "$2")
  t0=$(date +%s.%N)
  timeout 300 "$SOURCE" -s "$SESSIONS" -m "$MESSAGES" -l 100 -f bench@source.test -t sink@sink.test "127.0.0.1:$1" ||
    { echo "smtp-source failed against port $1" >&2; exit 1; }
  t1=$(date +%s.%N)
  c1=$(cpu_ticks "$2")
  echo "$t0 $t1 $MESSAGES $c0 $c1 $(getconf CLK_TCK)" |
    awk '{ printf "%.0f %.0f\n", $3 / ($2 - $1), ($5 - $4) / $6 * 1e6 / $3 }'
}

# The server under test runs as `budget CMD...`: BUDGET% of each 10 ms
# period (SCHED_DEADLINE; -R: threads it starts run unbudgeted).
PERIOD=10000000
budget() {
  if [ "$BUDGET" -gt 0 ]; then
    exec chrt -R -d --sched-runtime $((PERIOD / 100 * BUDGET)) \
      --sched-deadline $PERIOD --sched-period $PERIOD 0 "$@"
  fi
  exec "$@"
}
if [ "$BUDGET" -gt 0 ] && ! chrt -R -d --sched-runtime $((PERIOD / 100 * BUDGET)) \
  --sched-deadline $PERIOD --sched-period $PERIOD 0 true 2>/dev/null; then
  echo "no SCHED_DEADLINE here (needs root or CAP_SYS_NICE): running without a CPU budget"
  BUDGET=0
fi

DPORT=$(free_port)
printf 'name: capacity\nrecord: %s\nlisten: 127.0.0.1:%s\n' "$RECORD" "$DPORT" > "$TMP/capacity.yaml"
(budget "$DETOUR" serve --quiet --script "$TMP/capacity.yaml") > "$TMP/serve.out" 2>&1 &
SERVE_PID=$!
SPORT=$(free_port)
# -c: count sessions; backlog 4096 like detour's listener; -u for root.
(budget "$SINK" -u nobody -c "127.0.0.1:$SPORT" 4096) > "$TMP/sink.out" 2>&1 &
SINK_PID=$!
wait_port "$DPORT"
wait_port "$SPORT"

if [ "$BUDGET" -gt 0 ]; then
  cpu="each server limited to $BUDGET% of one CPU (SCHED_DEADLINE)"
else
  cpu="no CPU budget (generator and servers share the CPUs)"
fi
echo "smtp-source -s $SESSIONS -m $MESSAGES (a new connection per message), detour serve record: $RECORD; $cpu"
sum_d=0 sum_s=0
r=1
while [ $r -le "$ROUNDS" ]; do
  set -- $(load "$DPORT" "$SERVE_PID"); d=$1
  echo "round $r A detour serve  $1 msg/s, server CPU $2 us/message"
  set -- $(load "$SPORT" "$SINK_PID"); s=$1
  echo "round $r B smtp-sink     $1 msg/s, server CPU $2 us/message"
  sum_d=$((sum_d + d)); sum_s=$((sum_s + s))
  r=$((r + 1))
done
kill -0 "$SERVE_PID" 2>/dev/null || { echo "detour serve died" >&2; exit 1; }
echo "$sum_d $sum_s $ROUNDS" | awk '{ printf "mean: detour serve %.0f msg/s, smtp-sink %.0f msg/s; ratio detour/smtp-sink %.2f\n", $1/$3, $2/$3, $1/$2 }'
