#!/usr/bin/env bash
# send_memory.sh - peak memory of `detour send` for a large message, and a
# check that the message arrives byte-exact.
#
# Generates a SIZE_MB message (78-character lines, every 7th starting with
# "." so that dot-stuffing is exercised), sends it with `detour send` to
# bench/smtp_receiver.py on 127.0.0.1, measures the sender's peak RSS with
# GNU time (/usr/bin/time -v), and compares what the receiver stored with
# what was sent. Prints the figures.
#
#   bench/send_memory.sh BUILD_DIR [SIZE_MB] [LIMIT_MB]
#
# LIMIT_MB: exit 1 when the peak RSS is above it (the CTest version runs
# 20 MB against 16 MB). DETOUR_OLD=/path/to/detour also measures another
# build (e.g. one of main) and prints the ratio.
set -euo pipefail

build=${1:?usage: send_memory.sh BUILD_DIR [SIZE_MB] [LIMIT_MB]}
size_mb=${2:-50}
limit_mb=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
bin=$build/cli/detour
[ -x "$bin" ] || { echo "send_memory: no $bin (build first)"; exit 2; }
[ -x /usr/bin/time ] || { echo "send_memory: GNU time (/usr/bin/time) is missing"; exit 2; }

work=$(mktemp -d)
rpid=""
cleanup() {
  [ -n "$rpid" ] && kill "$rpid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

python3 - "$work/msg" "$size_mb" <<'PY'
import sys
path, size = sys.argv[1], int(sys.argv[2]) * 1024 * 1024
with open(path, "wb") as f:
    f.write(b"Subject: send_memory bench\n\n")
    n, i = 28, 0
    while n < size:
        body = b"." if i % 7 == 0 else b""
        body += bytes([97 + (i % 26)]) * (78 - len(body))
        line = (body + b"\n")[: size - n]
        if n + len(line) == size and not line.endswith(b"\n"):
            line = line[:-1] + b"\n"
        f.write(line)
        n += len(line)
        i += 1
PY

# Send the message with binary $1; sets rss_kb, secs, exact.
measure() {
  local detour=$1
  rm -f "$work/got" "$work/port"
  python3 "$here/smtp_receiver.py" "$work/got" >"$work/port" &
  rpid=$!
  local port=""
  for _ in $(seq 100); do
    port=$(awk '/^port/ {print $2}' "$work/port" 2>/dev/null || true)
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "send_memory: the receiver did not start"; exit 2; }
  local rc=0
  /usr/bin/time -v -o "$work/time" "$detour" send --server "127.0.0.1:$port" \
    --from bench@x.test --to sink@y.test <"$work/msg" >"$work/out" 2>"$work/err" || rc=$?
  wait "$rpid" || true
  rpid=""
  if [ "$rc" -ne 0 ]; then
    echo "send_memory: detour send exited $rc:"
    cat "$work/err"
    exit 1
  fi
  rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time")
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0;
                     for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' "$work/time")
  exact=no
  cmp -s "$work/msg" "$work/got" && exact=yes
}

size_bytes=$(stat -c %s "$work/msg")
measure "$bin"
new_rss=$rss_kb
printf 'message            %d MiB (%d bytes)\n' "$size_mb" "$size_bytes"
calc() { awk "BEGIN { print $1 }"; }
printf 'detour send        peak RSS %.1f MiB, %.2f s, %.0f MB/s, byte-exact: %s\n' \
  "$(calc "$rss_kb / 1024")" "$secs" \
  "$(calc "$size_bytes / 1000000 / ($secs + 0.001)")" "$exact"
printf 'RSS / message      %.3f\n' "$(calc "$rss_kb * 1024 / $size_bytes")"
status=0
[ "$exact" = yes ] || { echo "FAIL: the message did not arrive byte-exact"; status=1; }

if [ -n "${DETOUR_OLD:-}" ]; then
  measure "$DETOUR_OLD"
  printf 'other build        peak RSS %.1f MiB, %.2f s, byte-exact: %s (%s)\n' \
    "$(calc "$rss_kb / 1024")" "$secs" "$exact" "$DETOUR_OLD"
  printf 'ratio other/this   %.1f\n' "$(calc "$rss_kb / $new_rss")"
fi

if [ -n "$limit_mb" ]; then
  if [ "$new_rss" -gt $((limit_mb * 1024)) ]; then
    echo "FAIL: peak RSS $((new_rss / 1024)) MiB is over the limit of $limit_mb MiB"
    status=1
  else
    echo "ok: peak RSS under $limit_mb MiB"
  fi
fi
exit $status
