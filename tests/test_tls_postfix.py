#!/usr/bin/env python3
"""test_tls_postfix.py - `detour send --tls starttls --ca-file ca.pem`
delivers through a real Postfix smtpd that requires STARTTLS
(smtpd_tls_security_level = encrypt), a private instance this test makes:
its own config dir, queue and log file, smtpd on a free 127.0.0.1 port,
every message discarded after it was accepted, a certificate from a CA the
test makes with `openssl` at run time. Then the same send with a CA file
that does not know the certificate must fail with the "certificate from
an unknown CA" warning and nothing accepted.

Postfix has no SASL backend here (Cyrus and Dovecot are not installed),
so AUTH is checked against the asyncio server of test_tls_send.py instead.

Usage: test_tls_postfix.py DETOUR_BINARY. Exit 0 pass, 1 fail, 77 skip
(no postfix, not root, or the instance does not start: the reason is
printed).
"""
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time

POSTFIX = "/usr/sbin/postfix"


def skip(why):
    print("SKIP:", why)
    return 77


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_pki(d):
    for ca in ("ca", "other"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                f"{ca}.key", "-out", f"{ca}.pem", "-days", "2", "-subj",
                f"/CN=detour postfix test {ca}", cwd=d)
    openssl("req", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "smtpd.key",
            "-out", "smtpd.csr", "-subj", "/CN=localhost", "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1", cwd=d)
    openssl("x509", "-req", "-in", "smtpd.csr", "-CA", "ca.pem", "-CAkey",
            "ca.key", "-CAcreateserial", "-out", "smtpd.pem", "-days", "2",
            "-copy_extensions", "copy", cwd=d)
    os.chmod(os.path.join(d, "smtpd.key"), 0o600)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


MAIN_CF = """# detour test: a private Postfix that requires STARTTLS (generated)
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
myhostname = tls-postfix.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relay_domains = y.test
default_transport = discard
relay_transport = discard
smtpd_tls_security_level = encrypt
smtpd_tls_cert_file = {d}/smtpd.pem
smtpd_tls_key_file = {d}/smtpd.key
smtpd_tls_loglevel = 1
smtp_dns_support_level = disabled
biff = no
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
"""

MASTER_CF = """127.0.0.1:{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
proxymap unix - - n - - proxymap
discard unix - - n - - discard
error unix - - n - - error
retry unix - - n - - error
showq unix n - n - - showq
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
tlsmgr unix - - n 1000? 1 tlsmgr
postlog unix-dgram n - n - 1 postlogd
"""


def postfix(etc, verb):
    return subprocess.run([POSTFIX, "-c", etc, verb], capture_output=True,
                          timeout=60)


def wait_port(port, limit=20.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def send(detour, d, port, ca, name):
    p = subprocess.run(
        [detour, "send", "--server", f"localhost:{port}", "--tls",
         "starttls", "--ca-file", os.path.join(d, ca), "--from", "a@x.test",
         "--to", "b@y.test", "--max-attempts", "1", "--reply-timeout", "20s",
         "--log", os.path.join(d, f"{name}.jsonl")],
        input=b"Subject: via postfix\n\nhello\n", capture_output=True,
        timeout=120)
    return p


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    detour = sys.argv[1]
    if not os.path.exists(POSTFIX):
        return skip("postfix is not installed (scripts/setup.sh)")
    if os.geteuid() != 0:
        return skip("a private Postfix instance needs root")
    if not shutil.which("openssl"):
        return skip("no openssl command")
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return skip("no postfix user")
    d = tempfile.mkdtemp(prefix="detour-tls-postfix-")
    etc = os.path.join(d, "etc")
    started = False
    try:
        os.chmod(d, 0o755)
        for sub in ("etc", "queue", "data"):
            os.mkdir(os.path.join(d, sub), 0o755)
        pw = pwd.getpwnam("postfix")
        os.chown(os.path.join(d, "data"), pw.pw_uid, pw.pw_gid)
        make_pki(d)
        port = free_port()
        with open(os.path.join(etc, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(d=d))
        with open(os.path.join(etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=port))
        r = postfix(etc, "start")
        started = True
        if r.returncode != 0 or not wait_port(port):
            return skip("the private Postfix did not start: " +
                        (r.stderr or r.stdout).decode()[:300])
        return run(detour, d, port)
    finally:
        if started:
            postfix(etc, "stop")
            time.sleep(0.5)
        if os.environ.get("DETOUR_KEEP"):
            print("kept", d)
        else:
            shutil.rmtree(d, ignore_errors=True)


def run(detour, d, port):
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)
            print("FAIL:", what)

    p = send(detour, d, port, "ca.pem", "good")
    err = p.stderr.decode()
    check(p.returncode == 0, f"delivered through Postfix: exit "
          f"{p.returncode}: {err} {p.stdout.decode()}")
    log = open(os.path.join(d, "good.jsonl")).read()
    check('"kind":"tls"' in log, f"a tls row in the send log: {log[:300]}")
    maillog = ""
    for _ in range(50):  # postlogd writes asynchronously
        try:
            maillog = open(os.path.join(d, "maillog")).read()
        except OSError:
            pass
        if "from=<a@x.test>" in maillog:
            break
        time.sleep(0.1)
    check("TLS connection established from localhost" in maillog,
          "Postfix logged the TLS connection")
    check("from=<a@x.test>" in maillog, "Postfix accepted the message")

    p = send(detour, d, port, "other.pem", "foreign")
    err = p.stderr.decode()
    check(p.returncode == 75, f"unknown CA: not delivered (75), got "
          f"{p.returncode}")
    check("refused us: certificate from an unknown CA" in err,
          f"unknown CA warning: {err}")
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("ok: delivered through Postfix smtpd with STARTTLS; an unknown CA "
          "is refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
