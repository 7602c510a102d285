#!/usr/bin/env bash
# check_symbols.sh LIB:PREFIX... - every symbol a static library exports
# (nm: defined, external) starts with detour_ / DETOUR_ (public, or
# detour__ for internal ones), or with that library's own module prefix
# when one is given (none is, today: every library uses detour__). A linked program then
# cannot collide with an internal name such as engine_log or
# session_begin. Exit 0 clean, 1 with the offenders listed.
set -u
fail=0
for arg in "$@"; do
  lib=${arg%%:*}
  prefix=${arg#*:}
  [[ $prefix == "$arg" ]] && prefix=""
  if [[ ! -f $lib ]]; then
    echo "FAIL $lib: no such library"
    fail=1
    continue
  fi
  allowed='^(detour_|DETOUR_)'
  [[ -n $prefix ]] && allowed="^(detour_|DETOUR_|$prefix)"
  # the sanitizers' own symbols (a -DDETOUR_SANITIZE=ON build) are not ours
  bad=$(nm -g --defined-only "$lib" | awk 'NF == 3 { print $3 }' |
        grep -Ev '^(__odr_asan|__asan|__ubsan|__sancov)' |
        sort -u | grep -Ev "$allowed")
  if [[ -n $bad ]]; then
    echo "FAIL $(basename "$lib") exports names outside ${allowed}:"
    echo "$bad" | sed 's/^/  /'
    fail=1
  else
    n=$(nm -g --defined-only "$lib" | awk 'NF == 3' | wc -l)
    echo "ok   $(basename "$lib"): $n exported symbols, all prefixed"
  fi
done
exit $fail
