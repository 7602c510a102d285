#!/bin/sh
# mutations.sh DETOUR SUITE_DIR - the conformance suite must notice a wrong
# engine. The suite passes as is; then each deliberate mistake (applied on
# top of every scenario's client configuration by `detour run --mutate`)
# must make the named scenarios FAIL and the run exit 1.
set -u
detour=$1
suite=$2
status=0
# One job until fakeservers/src/session.c stops sharing one static read
# buffer between threads (on_alloc's `scratch`): with two loops on two
# threads their reads can overwrite each other.
jobs=${DETOUR_RUN_JOBS:-1}

if ! "$detour" run -q -j "$jobs" "$suite" >/dev/null 2>&1; then
  echo "the unmutated suite does not pass"
  status=1
fi

# mutation, then scenarios that must fail under it
check() {
  mutation=$1
  shift
  out=$("$detour" run -j "$jobs" --no-progress --mutate "$mutation" "$suite" 2>&1)
  rc=$?
  if [ "$rc" -ne 1 ]; then
    echo "--mutate $mutation: expected exit 1 (failures), got $rc"
    status=1
  fi
  for name in "$@"; do
    if ! printf '%s\n' "$out" | grep -Eq "^FAIL +$name "; then
      echo "--mutate $mutation: scenario $name should fail but did not"
      status=1
    fi
  done
  echo "--mutate $mutation: $(printf '%s\n' "$out" | grep -E '^[0-9]+ passed')"
}

# TRANSIENT made to switch servers (timeouts, busy replies, any 4xx)
check classify:timeout=SWITCH r3-greeting-transient fault-silent r11-default-timeouts
check classify:rcpt:450=SWITCH r3-rcpt-transient fault-busy r10-partial-transient
check classify:4xx=SWITCH r3-mail-transient r3-eod-transient r7-limit-then-next
check classify:closed=SWITCH fault-close fault-reset r3-ehlo-transient
# an ABORT retried
check classify:rcpt:550=TRANSIENT r3-rcpt-abort r10-mixed-abort
# the detour table ignored, either way
check detour=allow r4-sender-denied r4-default-deny r4-recipient-denied r6-ten-attempts-exact-times
check detour=deny fig6-primary-refused r4-sender-allowed r7-all-exhausted
check detour.rule=all r4-rule-any r4-recipient-allowed
# the wrong schedule
check retry.interval=1m r6-ten-attempts-exact-times r3-rcpt-transient
check retry.max_attempts=1 r7-limit-then-next r6-ten-attempts-exact-times

[ "$status" -eq 0 ] && echo "every mutation was caught"
exit "$status"
