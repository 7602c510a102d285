#!/bin/sh
# run_fake_capacity.sh - fake-server capacity, side by side with Postfix's
# smtp-sink: sessions/s (connect, greeting, EHLO, QUIT), messages/s (one
# message per session) and 10,000 sessions held open at once, against
# `detour serve --quiet` (record: off) and `smtp-sink`, on loopback. Prints
# a table and the ratio detour/smtp-sink.
#
#   bench/run_fake_capacity.sh [BUILD_DIR]      (default: build)
#   env: DETOUR=path/to/detour  GEN=path/to/fake_capacity
#        SESSIONS=20000 CONCURRENCY=200 HOLD=10000
# Every step is bounded (timeouts); the servers are stopped by their PIDs.
set -eu
BUILD=${1:-build}
DETOUR=${DETOUR:-$BUILD/cli/detour}
GEN=${GEN:-$BUILD/bench/fake_capacity}
SESSIONS=${SESSIONS:-20000}
CONCURRENCY=${CONCURRENCY:-200}
HOLD=${HOLD:-10000}
SINK=$(command -v smtp-sink || echo /usr/sbin/smtp-sink)
TMP=$(mktemp -d)
SERVE_PID= SINK_PID=
cleanup() {
  [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null || true
  [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# A free loopback port (bound then released).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Wait (bounded) until something accepts on 127.0.0.1:$1.
wait_port() {
  i=0
  while ! python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),1).close()" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "nothing listens on $1" >&2; exit 1; }
    sleep 0.1
  done
}

# measure NAME PORT -> lines "NAME sessions/s messages/s held"
measure() {
  s=$(timeout 300 "$GEN" --target 127.0.0.1:$2 --sessions "$SESSIONS" --concurrency "$CONCURRENCY" --messages 0 | sed -n 's/.*sessions_per_s=\([0-9]*\).*/\1/p')
  m=$(timeout 300 "$GEN" --target 127.0.0.1:$2 --sessions "$SESSIONS" --concurrency "$CONCURRENCY" --messages 1 | sed -n 's/.*messages_per_s=\([0-9]*\).*/\1/p')
  h=$(timeout 300 "$GEN" --target 127.0.0.1:$2 --hold "$HOLD" --timeout 120 | sed -n 's/^held=\([0-9]*\).*/\1/p')
  echo "$1 ${s:-0} ${m:-0} ${h:-0}"
}

PORT=$(free_port)
printf 'name: capacity\nrecord: off\nlisten: 127.0.0.1:%s\n' "$PORT" > "$TMP/capacity.yaml"
"$DETOUR" serve --quiet --script "$TMP/capacity.yaml" > "$TMP/serve.out" 2>&1 &
SERVE_PID=$!
wait_port "$PORT"
D=$(measure detour "$PORT")
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true; SERVE_PID=

if [ -x "$SINK" ]; then
  PORT=$(free_port)
  # -c: count sessions; backlog 4096 like detour's listener; -u for root.
  "$SINK" -u nobody -c "127.0.0.1:$PORT" 4096 > "$TMP/sink.out" 2>&1 &
  SINK_PID=$!
  wait_port "$PORT"
  S=$(measure smtp-sink "$PORT")
  kill "$SINK_PID"; wait "$SINK_PID" 2>/dev/null || true; SINK_PID=
else
  S="smtp-sink 0 0 0"
  echo "smtp-sink not found (apt-get install postfix); no ratio" >&2
fi

echo "$D
$S" | awk '
  { name[NR]=$1; s[NR]=$2; m[NR]=$3; h[NR]=$4 }
  END {
    printf "%-10s %12s %12s %10s\n", "server", "sessions/s", "messages/s", "held";
    for (i = 1; i <= NR; i++) printf "%-10s %12d %12d %10d\n", name[i], s[i], m[i], h[i];
    if (s[2] > 0 && m[2] > 0)
      printf "ratio detour/smtp-sink: sessions %.2f, messages %.2f\n", s[1]/s[2], m[1]/m[2];
  }'
