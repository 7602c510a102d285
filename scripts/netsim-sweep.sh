#!/usr/bin/env bash
# netsim-sweep.sh - remove what dead netsim runs left behind, without the
# detour binary: the detour-netsim programs and the "dt-<run id>-*" network
# namespaces (their taps go with them) of every run whose owner is dead.
# The run id is "<owner pid>x<seq>" (fakeservers/netsim/netsim.h).
#
#   scripts/netsim-sweep.sh          stale runs only (safe while runs live)
#   scripts/netsim-sweep.sh --all    every run, live or not (CI teardown)
#   scripts/netsim-sweep.sh --check  remove nothing; exit 1 if a run of a dead
#                                    owner is left (77 when not root)
#
# Needs root for anything to remove; with nothing to do it exits 0.
set -euo pipefail

mode=stale
case "${1:-}" in
  "") ;;
  --all) mode=all ;;
  --check) mode=check ;;
  *) echo "usage: $0 [--all|--check]" >&2; exit 2 ;;
esac

netns_dir=/var/run/netns

# CTest's final check: only root can have made runs, so say so, never pass
# vacuously.
if [ "$mode" = check ] && [ "$(id -u)" -ne 0 ]; then
  echo "netsim-sweep: SKIP: not root, so no netsim run can exist"
  exit 77
fi

# A zombie has released everything: it counts as dead.
alive() {
  local state
  state=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# "pid run_id" for each live detour-netsim that carries a run id.
programs() {
  local d pid args
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    args=$(tr '\0' '\n' 2>/dev/null <"$d/cmdline") || continue
    [ "$(basename "$(head -n1 <<<"$args")")" = detour-netsim ] || continue
    alive "$pid" || continue
    awk -v pid="$pid" 'prev == "--run-id" { print pid, $0; exit } { prev = $0 }' <<<"$args"
  done
}

# Every run id that has a namespace or a live program.
runs() {
  {
    if [ -d "$netns_dir" ]; then
      find "$netns_dir" -mindepth 1 -maxdepth 1 -name 'dt-*' -printf '%f\n' |
        sed -n 's/^dt-\([0-9]\+x[0-9]\+\)-[^-]*$/\1/p'
    fi
    programs | awk '{ print $2 }' | grep -E '^[0-9]+x[0-9]+$' || true
  } | sort -u
}

remove_run() {
  local id=$1 pid rid ns
  while read -r pid rid; do
    [ "$rid" = "$id" ] || continue
    kill -KILL "$pid" 2>/dev/null || true
    # Bounded: a tap fd held open keeps the namespace alive.
    for _ in $(seq 1 200); do alive "$pid" || break; sleep 0.01; done
  done < <(programs)
  if [ -d "$netns_dir" ]; then
    for ns in "$netns_dir"/dt-"$id"-*; do
      [ -e "$ns" ] || continue
      ip netns del "$(basename "$ns")" || echo "netsim-sweep: cannot delete $ns" >&2
    done
  fi
}

left=0
for id in $(runs); do
  owner=${id%%x*}
  if [ "$mode" = stale ] && alive "$owner"; then
    continue
  fi
  if [ "$mode" = check ]; then
    # A run whose owner still lives belongs to a run in progress elsewhere
    # (another suite on this machine), not to a leak: every test that made
    # runs has exited by the time this check runs.
    if alive "$owner"; then
      echo "netsim-sweep: run $id belongs to live process $owner: not ours"
      continue
    fi
    echo "netsim-sweep: run $id was left behind (owner $owner is gone)"
    left=$((left + 1))
    continue
  fi
  remove_run "$id"
  echo "netsim-sweep: removed run $id"
done
[ "$left" -eq 0 ]
