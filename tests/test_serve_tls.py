#!/usr/bin/env python3
"""test_serve_tls.py - `detour serve` with STARTTLS, implicit TLS and AUTH,
driven by clients nobody here wrote: swaks (Perl, IO::Socket::SSL) and
Python's smtplib/ssl. Both must deliver through the good servers, trusting
only the run-local CA that `--tls-dir` makes, and fail the right way on
every TLS/AUTH catalogue entry. The record must show the TLS version,
cipher, SNI, certificate and AUTH user, and never the password or its
base64.

Usage: test_serve_tls.py PATH/TO/detour   (CTest: fake_serve_tls)
Every wait is bounded; exit 0 pass, 1 fail, 77 skip.
"""
import base64
import json
import os
import shutil
import signal
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time

DETOUR = sys.argv[1] if len(sys.argv) > 1 else "detour"
PASSWORD = "Pw-9x!tls-secret"
FAILURES = []

FAULTS = ["starttls_stripped", "starttls_454", "tls_alert", "tls_drop",
          "cert_expired", "cert_self_signed", "cert_wrong_host",
          "cert_unknown_ca", "tls_old_only", "starttls_injection",
          "auth_535", "auth_454", "auth_534", "auth_required"]


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def script():
    auth = "    auth: { users: { alice: '%s' } }\n" % PASSWORD
    text = "servers:\n"
    text += "  - name: good\n    listen: 127.0.0.1:0\n    tls: starttls\n" + auth
    text += "  - name: implicit\n    listen: 127.0.0.1:0\n    tls: implicit\n" + auth
    for f in FAULTS:
        text += "  - name: %s\n    listen: 127.0.0.1:0\n    tls: starttls\n" \
            "    fault: %s\n" % (f, f)
        text += auth
    return text


def start(tmp):
    path = os.path.join(tmp, "s.yaml")
    with open(path, "w") as f:
        f.write(script())
    record = os.path.join(tmp, "rec.jsonl")
    out = open(os.path.join(tmp, "out.txt"), "w+")
    p = subprocess.Popen([DETOUR, "serve", "--script", path, "--record", record,
                          "--tls-dir", os.path.join(tmp, "ca")],
                         stdout=out, stderr=subprocess.STDOUT)
    ports, ca = {}, None
    deadline = time.time() + 15
    while time.time() < deadline and len(ports) < 2 + len(FAULTS) \
            and p.poll() is None:
        out.seek(0)
        for line in out.read().splitlines():
            w = line.split()
            if len(w) == 3 and w[0] == "listening":
                ports[w[1]] = int(w[2].rsplit(":", 1)[1])
            if len(w) == 2 and w[0] == "tls-ca":
                ca = w[1]
        time.sleep(0.05)
    return p, out, record, ports, ca


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=5)
        return None


# ---------------------------------------------------------------------------
# Python's smtplib

def verifying(ca):
    return ssl.create_default_context(cafile=ca)


def smtplib_send(port, ca, implicit=False, login=True, password=PASSWORD):
    """Deliver one message; returns None or the exception raised."""
    try:
        if implicit:
            s = smtplib.SMTP_SSL("localhost", port, timeout=10,
                                 context=verifying(ca))
        else:
            s = smtplib.SMTP("localhost", port, timeout=10)
            s.ehlo()
            s.starttls(context=verifying(ca))
            s.ehlo()
        if login:
            s.login("alice", password)
        s.sendmail("py@client.test", ["rcpt@x.test"],
                   "Subject: smtplib\r\n\r\nhello from smtplib\r\n")
        s.quit()
        return None
    except Exception as e:  # the failure is what we check
        return e


def test_smtplib(ports, ca):
    check(smtplib_send(ports["good"], ca) is None,
          "smtplib: starttls(), login(), sendmail() through 'good'")
    check(smtplib_send(ports["implicit"], ca, implicit=True) is None,
          "smtplib: SMTP_SSL (implicit TLS) through 'implicit'")
    e = smtplib_send(ports["good"], ca, password="wrong")
    check(isinstance(e, smtplib.SMTPAuthenticationError) and
          e.smtp_code == 535, "smtplib: wrong password gets 535 (%r)" % e)

    e = smtplib_send(ports["starttls_stripped"], ca)
    check(isinstance(e, smtplib.SMTPNotSupportedError),
          "starttls_stripped: smtplib refuses to go on (%r)" % e)
    e = smtplib_send(ports["starttls_454"], ca)
    check(isinstance(e, smtplib.SMTPResponseException) and e.smtp_code == 454,
          "starttls_454: smtplib sees 454 (%r)" % e)
    e = smtplib_send(ports["tls_alert"], ca)
    check(isinstance(e, ssl.SSLError) and "HANDSHAKE_FAILURE" in str(e).upper(),
          "tls_alert: smtplib gets the handshake_failure alert (%r)" % e)
    e = smtplib_send(ports["tls_drop"], ca)
    check(isinstance(e, (ssl.SSLError, ConnectionError,
                         smtplib.SMTPServerDisconnected)) and
          not isinstance(e, ssl.SSLCertVerificationError),
          "tls_drop: smtplib's handshake fails (%r)" % e)
    for fault, code in (("cert_expired", 10), ("cert_self_signed", 18),
                        ("cert_unknown_ca", 20), ("cert_wrong_host", 62)):
        e = smtplib_send(ports[fault], ca)
        check(isinstance(e, ssl.SSLCertVerificationError) and
              e.verify_code == code,
              "%s: smtplib rejects the certificate, verify code %d (%r)" %
              (fault, code, e))
    e = smtplib_send(ports["tls_old_only"], ca)
    check(isinstance(e, ssl.SSLError) and
          "VERSION" in str(e).upper(),
          "tls_old_only: smtplib (TLS 1.2+) refuses TLS 1.0/1.1 (%r)" % e)
    # smtplib drops its plaintext buffer at STARTTLS: immune, it delivers.
    e = smtplib_send(ports["starttls_injection"], ca)
    check(e is None, "starttls_injection: smtplib discards the injected "
          "reply and delivers (%r)" % e)
    for fault, code in (("auth_535", 535), ("auth_454", 454),
                        ("auth_534", 534)):
        e = smtplib_send(ports[fault], ca)
        check(isinstance(e, smtplib.SMTPAuthenticationError) and
              e.smtp_code == code, "%s: smtplib login() gets %d (%r)" %
              (fault, code, e))
    e = smtplib_send(ports["auth_required"], ca, login=False)
    check(isinstance(e, smtplib.SMTPSenderRefused) and e.smtp_code == 530,
          "auth_required: MAIL without AUTH gets 530 (%r)" % e)
    check(smtplib_send(ports["auth_required"], ca) is None,
          "auth_required: with login() it delivers")


# ---------------------------------------------------------------------------
# swaks

def swaks(port, ca, *opts, auth=True, password=PASSWORD):
    cmd = ["swaks", "--server", "localhost", "--port", str(port),
           "--from", "swaks@client.test", "--to", "rcpt@x.test",
           "--header", "Subject: swaks", "--body", "hello from swaks",
           "--timeout", "10", "--tls-verify", "--tls-ca-path", ca, *opts]
    if auth:
        cmd += ["--auth", "PLAIN", "--auth-user", "alice",
                "--auth-password", password]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    return r.returncode, r.stdout.decode("latin-1")


def sent(out, verb):
    """Did swaks send `verb` (its sent lines start ' -> ' or ' ~> ')?"""
    return (" -> " + verb) in out or (" ~> " + verb) in out


def test_swaks(ports, ca):
    rc, out = swaks(ports["good"], ca, "--tls")
    check(rc == 0 and "235 2.7.0" in out,
          "swaks --tls --auth PLAIN through 'good' (rc %d)" % rc)
    rc, out = swaks(ports["implicit"], ca, "--tlsc")
    check(rc == 0 and "235 2.7.0" in out,
          "swaks --tlsc (implicit) --auth PLAIN through 'implicit' (rc %d)" %
          rc)
    rc, out = swaks(ports["good"], ca, "--tls", password="wrong")
    check(rc != 0 and "535 5.7.8" in out,
          "swaks: wrong password gets 535 (rc %d)" % rc)
    rc, out = swaks(ports["starttls_stripped"], ca, "--tls")
    check(rc != 0 and not sent(out, "STARTTLS") and not sent(out, "AUTH")
          and not sent(out, "MAIL"),
          "starttls_stripped: swaks --tls stops, no AUTH, no MAIL (rc %d)" % rc)
    rc, out = swaks(ports["starttls_454"], ca, "--tls")
    check(rc != 0 and "454 4.7.0" in out and not sent(out, "MAIL"),
          "starttls_454: swaks sees 454 and stops (rc %d)" % rc)
    for fault in ("tls_alert", "tls_drop", "cert_expired", "cert_self_signed",
                  "cert_unknown_ca", "tls_old_only"):
        rc, out = swaks(ports[fault], ca, "--tls")
        check(rc != 0 and "TLS startup failed" in out and
              not sent(out, "AUTH") and not sent(out, "MAIL"),
              "%s: swaks --tls --tls-verify fails the handshake, sends "
              "neither AUTH nor MAIL (rc %d)" % (fault, rc))
    # swaks 20201014 (Debian 12) verifies the chain but not the host name
    # (--tls-verify-host came later): what it does here is a finding about
    # that client, so it is printed; either way it must have been served
    # the wrong-host certificate.
    rc, out = swaks(ports["cert_wrong_host"], ca, "--tls")
    print("note cert_wrong_host: swaks %s" %
          ("delivered: it does not check the host name" if rc == 0 else
           "refused the certificate (rc %d)" % rc))
    check("CN=wrong.host.invalid" in out or "TLS startup failed" in out,
          "cert_wrong_host: swaks got the wrong-host certificate")
    # Response injection: a client that keeps its plaintext buffer across
    # STARTTLS reads the injected 250 as the answer to its first command
    # inside TLS ('<~' marks what swaks thinks came over TLS). Reported,
    # not asserted: it is the client under test that is wrong or right.
    rc, out = swaks(ports["starttls_injection"], ca, "--tls")
    fooled = "<~  250 2.0.0 injected before the handshake" in out
    print("note starttls_injection: swaks %s (rc %d)" %
          ("took the injected 250 as its EHLO reply inside TLS (vulnerable)"
           if fooled else "ignored the injected reply", rc))
    check(fooled or rc == 0, "starttls_injection: swaks either delivered or "
          "visibly read the injected reply")
    for fault, code in (("auth_535", "535 5.7.8"), ("auth_454", "454 4.7.0"),
                        ("auth_534", "534 5.7.9")):
        rc, out = swaks(ports[fault], ca, "--tls")
        check(rc != 0 and code in out and not sent(out, "MAIL"),
              "%s: swaks sees %s, sends no MAIL (rc %d)" % (fault, code, rc))
    rc, out = swaks(ports["auth_required"], ca, "--tls", auth=False)
    check(rc != 0 and "530 5.7.0" in out,
          "auth_required: swaks without --auth gets 530 (rc %d)" % rc)


# ---------------------------------------------------------------------------
# The record

def test_record(record, out_path, ca_dir, swaks_ran):
    with open(record, encoding="latin-1") as f:
        text = f.read()
    events = [json.loads(line) for line in text.splitlines() if line.strip()]
    tls = [e for e in events if e["event"] == "tls" and e["server"] == "good"]
    check(any("version=TLSv1.3" in e["data"] and "sni=localhost" in e["data"]
              and "cert=server" in e["data"] and "cipher=" in e["data"]
              for e in tls), "record: TLS version, cipher, SNI, certificate")
    check(any(e["event"] == "tls" and e["server"] == "cert_expired" and
              "cert=expired" in e["data"] for e in events),
          "record: the expired certificate was served")
    check(any(e["event"] == "tls" and e["server"] == "tls_old_only" and
              e["data"].startswith("handshake failed") for e in events),
          "record: tls_old_only handshakes failed")
    auth = [e["data"] for e in events if e["event"] == "auth"]
    check("mechanism=PLAIN user=alice password=match" in auth and
          "mechanism=PLAIN user=alice password=mismatch" in auth,
          "record: AUTH mechanism, user, match and mismatch")
    msgs = [e for e in events if e["event"] == "message"
            and e["server"] == "good"]
    want = 2 if swaks_ran else 1
    check(len(msgs) == want, "record: %d messages on 'good' (%d)" %
          (want, len(msgs)))
    with open(out_path, encoding="latin-1") as f:
        printed = f.read()
    secrets = [PASSWORD,
               base64.b64encode(("\0alice\0" + PASSWORD).encode()).decode(),
               base64.b64encode(PASSWORD.encode()).decode()]
    for s in secrets:
        check(s not in text and s not in printed,
              "neither record nor output holds %s" %
              ("the password" if s == PASSWORD else "base64 " + s[:6] + "..."))
    mode = os.stat(os.path.join(ca_dir, "server.key")).st_mode & 0o777
    check(mode == 0o600, "test CA key is 0600 (%o)" % mode)


def main():
    if not shutil.which(DETOUR) and not os.path.exists(DETOUR):
        print("skip: no detour binary")
        return 77
    tmp = tempfile.mkdtemp(prefix="detour-serve-tls-")
    p, out, record, ports, ca = start(tmp)
    swaks_ran = False
    try:
        check(ca is not None and os.path.exists(ca),
              "detour serve --tls-dir printed tls-ca and made it")
        check(len(ports) == 2 + len(FAULTS), "all servers listening (%d)" %
              len(ports))
        if ca and len(ports) == 2 + len(FAULTS):
            test_smtplib(ports, ca)
            if shutil.which("swaks") and subprocess.run(
                    ["perl", "-MIO::Socket::SSL", "-e1"]).returncode == 0:
                test_swaks(ports, ca)
                swaks_ran = True
            else:
                print("skip swaks: swaks or IO::Socket::SSL not installed")
    finally:
        rc = stop(p)
    check(rc == 0, "SIGTERM: exit 0 (%r)" % rc)
    test_record(record, out.name, os.path.join(tmp, "ca"), swaks_ran)
    out.close()
    if not FAILURES:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("kept %s for inspection" % tmp)
    print("%d failure(s)" % len(FAILURES))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
