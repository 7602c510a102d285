#!/usr/bin/env bash
# test_serve_tls_tshark.sh - a STARTTLS+AUTH session through `detour serve`,
# captured on lo with dumpcap and read back by tshark (Debian package
# tshark): the capture must show the SMTP dialogue in clear up to STARTTLS
# and its 220, then a TLS handshake (ClientHello with the SNI, ServerHello)
# on the same connection, and no AUTH, MAIL or password in clear.
#
#   test_serve_tls_tshark.sh DETOUR OUTDIR
# Exit 0 pass, 1 fail, 77 skip (no tshark/dumpcap/swaks+TLS, or no
# capture permission).
set -u
detour=$1
out=$2
password='Tshark-pw-77!'

for tool in tshark dumpcap swaks; do
  command -v $tool >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done
perl -MIO::Socket::SSL -e1 2>/dev/null || { echo "SKIP: swaks without IO::Socket::SSL"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

rm -rf "$out" && mkdir -p "$out" || fail "cannot create $out"
export HOME=${TMPDIR:-/tmp} # tshark wants a writable profile directory
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }
trap cleanup EXIT

cat >"$out/s.yaml" <<EOF
name: submission
listen: 127.0.0.1:0
tls: starttls
auth: { offer: after_tls, users: { alice: '$password' } }
EOF
"$detour" serve --script "$out/s.yaml" --tls-dir "$out/ca" --quiet >"$out/serve.out" 2>&1 &
pids+=($!)
port=
for _ in $(seq 100); do
  port=$(sed -n 's/^listening submission 127.0.0.1:\([0-9]*\)$/\1/p' "$out/serve.out")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || fail "detour serve did not start: $(cat "$out/serve.out")"

pcap="$out/starttls.pcap"
dumpcap -q -i lo -f "tcp port $port" -w "$pcap" >"$out/dumpcap.err" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  grep -q "Capturing on" "$out/dumpcap.err" 2>/dev/null && break
  if ! kill -0 "${pids[1]}" 2>/dev/null; then
    echo "SKIP: dumpcap cannot capture on lo: $(cat "$out/dumpcap.err")"
    exit 77
  fi
  sleep 0.1
done
grep -q "Capturing on" "$out/dumpcap.err" || { echo "SKIP: dumpcap did not start"; exit 77; }

swaks --server localhost --port "$port" --to rcpt@x.test --from a@x.test \
  --tls --tls-verify --tls-ca-path "$out/ca/ca.pem" --tls-sni localhost --auth PLAIN \
  --auth-user alice --auth-password "$password" --timeout 10 >"$out/swaks.out" 2>&1 ||
  fail "swaks did not deliver: $(tail -5 "$out/swaks.out")"
sleep 0.5 # let dumpcap write the last packets
kill -INT "${pids[1]}"
wait "${pids[1]}" 2>/dev/null
[ -s "$pcap" ] || fail "no capture"

decode=(-d "tcp.port==$port,smtp")
# smtp.req.command holds only 4 characters of STARTTLS ("STAR") in
# tshark 4.0: the verbs come from the command line's first word.
tshark -r "$pcap" "${decode[@]}" -T fields -e frame.number -e smtp.command_line \
  -e smtp.response.code -e tls.handshake.type -e tls.handshake.extensions_server_name \
  >"$out/fields.txt" 2>"$out/tshark.err" || fail "tshark: $(cat "$out/tshark.err")"

# frame numbers of the milestones, in capture order
first() { awk -F'\t' "$1 { print \$1; exit }" "$out/fields.txt"; }
ehlo=$(first '$2 ~ /^EHLO /')
starttls=$(first '$2 ~ /^STARTTLS/')
ready=$(awk -F'\t' 'seen && $3 == "220" { print $1; exit } $2 ~ /^STARTTLS/ { seen = 1 }' "$out/fields.txt")
hello=$(first '$4 ~ /(^|,)1(,|$)/')
server_hello=$(first '$4 ~ /(^|,)2(,|$)/')
sni=$(awk -F'\t' '$5 != "" { print $5; exit }' "$out/fields.txt")
[ -n "$ehlo" ] || fail "no EHLO in clear"
[ -n "$starttls" ] || fail "no STARTTLS in clear"
[ -n "$ready" ] || fail "no 220 after STARTTLS"
[ -n "$hello" ] && [ "$hello" -gt "$ready" ] || fail "no ClientHello after the 220 (frame '$hello', 220 at $ready)"
[ -n "$server_hello" ] && [ "$server_hello" -gt "$hello" ] || fail "no ServerHello after the ClientHello"
[ "$sni" = localhost ] || fail "SNI '$sni', expected localhost"
clear=$(awk -F'\t' '$2 != "" { split($2, w, /[ \\]/); print w[1] }' "$out/fields.txt" | tr '\n' ' ')
[ "$clear" = "EHLO STARTTLS " ] || fail "commands seen in clear: '$clear' (expected EHLO STARTTLS)"
# The raw capture holds every byte sent: a password in clear would be there.
b64=$(printf '\0alice\0%s' "$password" | base64)
grep -aqF "$password" "$pcap" && fail "the password is in the capture in clear"
grep -aqF "$b64" "$pcap" && fail "the AUTH PLAIN base64 is in the capture in clear"
echo "PASS: EHLO (frame $ehlo), STARTTLS ($starttls), 220 ($ready) in clear, then ClientHello ($hello, SNI $sni) and ServerHello ($server_hello); nothing else in clear"
