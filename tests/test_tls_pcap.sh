#!/usr/bin/env bash
# test_tls_pcap.sh - the wire evidence of SPEC R13, read by tshark: against
# a normal server that strips STARTTLS, and one that injects a plaintext
# reply after its 220 to STARTTLS, the capture of the run shows no AUTH,
# MAIL, RCPT or DATA in clear on any connection (the backup requires
# STARTTLS too), the normal server's clear commands are exactly EHLO and
# QUIT (stripping) or EHLO and STARTTLS (injection: no handshake follows),
# the backup's connection goes on into a TLS ClientHello, and no byte
# sequence of the password is in the capture.
#
#   test_tls_pcap.sh DETOUR CERT_DIR OUTDIR
# Exit 0 pass, 1 fail, 77 skip (no tshark, or no capture permission).
set -u
detour=$1 cert=$2 out=$3
password=s3cret # what the cert-tls-* scenarios give alice

command -v tshark >/dev/null || { echo "SKIP: tshark not installed"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
rm -rf "$out" && mkdir -p "$out" || fail "cannot create $out"
export HOME=$out # tshark's profile directory

run=$("$detour" run --no-progress --pcap "$out" \
  "$cert/cert-tls-stripping.yaml" "$cert/cert-tls-injection.yaml" 2>&1)
rc=$?
if grep -q "root or CAP_NET_RAW\|cannot capture\|permission" <<<"$run" &&
  [ -z "$(find "$out" -name '*.pcap')" ]; then
  echo "SKIP: no capture permission: $(tail -n 2 <<<"$run")"
  exit 77
fi
[ $rc -eq 0 ] || fail "detour run: $run"

check() { # NAME EXPECTED-CLEAR-COMMANDS-OF-THE-NORMAL-SERVER
  local pcap=$out/$1.pcap want=$2
  [ -s "$pcap" ] || fail "$1: no capture"
  # the servers' ports, in the order the client connected: normal first
  local ports
  ports=$(tshark -r "$pcap" -Y 'tcp.flags.syn==1 && tcp.flags.ack==0' \
    -T fields -e tcp.dstport 2>/dev/null | awk '!seen[$0]++')
  local normal
  normal=$(head -n 1 <<<"$ports")
  [ "$(wc -l <<<"$ports")" -ge 2 ] || fail "$1: expected two servers, got ports: $ports"
  local dec=()
  for p in $ports; do dec+=(-d "tcp.port==$p,smtp"); done
  local cmds
  cmds=$(tshark -r "$pcap" "${dec[@]}" -Y smtp.req.command \
    -T fields -e tcp.dstport -e smtp.req.command 2>/dev/null)
  if grep -Eiq $'\t(AUTH|MAIL|RCPT|DATA)' <<<"$cmds"; then
    fail "$1: sent in clear: $(tr '\n' ' ' <<<"$cmds")"
  fi
  local got
  got=$(awk -v p="$normal" '$1 == p { printf "%s ", substr($2, 1, 4) }' <<<"$cmds")
  [ "$got" = "$want" ] || fail "$1: the normal server saw in clear '$got', expected '$want'"
  local hellos
  hellos=$(tshark -r "$pcap" "${dec[@]}" -Y 'tls.handshake.type == 1' \
    -T fields -e tcp.dstport 2>/dev/null | sort -u)
  grep -q . <<<"$hellos" || fail "$1: no TLS ClientHello to the backup"
  grep -qx "$normal" <<<"$hellos" && fail "$1: a handshake with the normal server"
  for form in "$password" "$(printf '%s' "$password" | base64)" \
    "$(printf '\0alice\0%s' "$password" | base64)"; do
    grep -aqF "$form" "$pcap" && fail "$1: the password ($form) is in the capture"
  done
  echo "ok: $1: normal server saw '$got' in clear; TLS to port(s) $(tr '\n' ' ' <<<"$hellos")"
}

check cert-tls-stripping "EHLO QUIT "
check cert-tls-injection "EHLO STAR "
echo "PASS: no AUTH and no MAIL in clear; the backup speaks TLS"
