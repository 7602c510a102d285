#!/usr/bin/env bash
# test_reports_tshark.sh - captures read by tshark (Debian package tshark).
# report_demo --pcap captures a loopback exchange in which the primary
# answers 421 and the backup accepts; tshark must decode the SMTP commands
# (on the fake servers' non-standard ports, via -d) and show that the
# backup's port sent "250 ... queued". Then every *.pcap under the extra
# folders given (e.g. a run's --pcap DIR) must open in tshark.
#
#   test_reports_tshark.sh REPORT_DEMO OUTDIR [PCAP_DIR...]
# Exit 0 pass, 1 fail, 77 skip (no tshark, or no capture permission).
set -u
demo=$1
out=$2
shift 2

if ! command -v tshark >/dev/null; then
  echo "SKIP: tshark not installed (Debian package: tshark)"
  exit 77
fi
fail() { echo "FAIL: $*"; exit 1; }

rm -rf "$out" && mkdir -p "$out" || fail "cannot create $out"
line=$("$demo" --pcap "$out")
rc=$?
if [ $rc -eq 77 ]; then
  echo "SKIP: $line"
  exit 77
fi
[ $rc -eq 0 ] || fail "report_demo --pcap failed: $line"
echo "$line"
pcap=$(sed -n 's/.*pcap=\([^ ]*\).*/\1/p' <<<"$line")
primary=$(sed -n 's/.*primary=\([0-9]*\).*/\1/p' <<<"$line")
backup=$(sed -n 's/.*backup=\([0-9]*\).*/\1/p' <<<"$line")
[ -s "$pcap" ] || fail "no capture file"

# tshark wants a writable home for its profile; keep it out of the way.
export HOME=${TMPDIR:-/tmp}
decode=(-d "tcp.port==$primary,smtp" -d "tcp.port==$backup,smtp")
cmds=$(tshark -r "$pcap" "${decode[@]}" -Y smtp.req.command \
  -T fields -e smtp.req.command 2>"$out/tshark.err") || fail "tshark: $(cat "$out/tshark.err")"
for c in EHLO MAIL RCPT DATA QUIT; do
  grep -qx "$c" <<<"$cmds" || fail "SMTP command $c not found by tshark (got: $(tr '\n' ' ' <<<"$cmds"))"
done
accepted=$(tshark -r "$pcap" "${decode[@]}" \
  -Y 'smtp.response.code == 250 && smtp.rsp.parameter contains "queued"' \
  -T fields -e tcp.srcport 2>>"$out/tshark.err")
[ "$accepted" = "$backup" ] || fail "the acceptance came from port '$accepted', expected the backup $backup"
refused=$(tshark -r "$pcap" "${decode[@]}" -Y 'smtp.response.code == 421' \
  -T fields -e tcp.srcport 2>>"$out/tshark.err")
[ "$refused" = "$primary" ] || fail "the 421 came from port '$refused', expected the primary $primary"

n=0
for d in "$@"; do
  while IFS= read -r -d '' f; do
    tshark -r "$f" -c 1 >/dev/null 2>"$out/tshark.err" || fail "tshark cannot read $f: $(cat "$out/tshark.err")"
    n=$((n + 1))
  done < <(find "$d" -name '*.pcap' -print0)
done
echo "PASS: tshark decodes the SMTP dialogue; backup port $backup accepted; $n more capture(s) read"
