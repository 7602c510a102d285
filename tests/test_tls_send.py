#!/usr/bin/env python3
"""test_tls_send.py - `detour send` with STARTTLS, implicit TLS and AUTH
against SMTP servers this test writes itself with asyncio and ssl (not the
project's fake servers), with a CA made at run time by `openssl`.

Checks (SPEC R13):
  - delivery through STARTTLS + AUTH PLAIN, through AUTH LOGIN, and through
    implicit TLS; the server saw EHLO again inside TLS and the right
    credentials;
  - a primary that strips STARTTLS, injects a reply after its 220, serves
    a certificate from an unknown CA, for another name, or an expired one,
    or refuses the credentials (535): the message goes to the backup, the
    warning names the server and the reason, and the primary saw no AUTH
    and no MAIL in clear;
  - the password is in no artefact of any run (stdout, stderr, the JSON
    send log, this test's server records).

Usage: test_tls_send.py DETOUR_BINARY. Exit 0 pass, 1 fail, 77 skip.
"""
import asyncio
import base64
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading

PASSWORD = "pw-7Hq!s3cret"
USER = "u"
FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what)


# ---------------------------------------------------------------- the CA


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj",
            f"/CN=detour test {name}", cwd=d)


CA_CONF = """[ca]
default_ca = test
[test]
dir = .
database = {db}
new_certs_dir = .
serial = {serial}
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[any]
commonName = supplied
"""


def make_cert(d, ca, name, san, expired=False):
    """A server certificate for san (e.g. "DNS:localhost,IP:127.0.0.1")
    signed by ca; expired=True makes one valid only in 2020."""
    openssl("req", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
            "-addext", f"subjectAltName={san}", cwd=d)
    if not expired:
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem",
                "-CAkey", f"{ca}.key", "-CAcreateserial", "-out",
                f"{name}.pem", "-days", "2", "-copy_extensions", "copy",
                cwd=d)
        return
    with open(os.path.join(d, f"{name}.db"), "w"):
        pass
    with open(os.path.join(d, f"{name}.serial"), "w") as f:
        f.write("1000\n")
    with open(os.path.join(d, f"{name}.cnf"), "w") as f:
        f.write(CA_CONF.format(db=f"{name}.db", serial=f"{name}.serial"))
    openssl("ca", "-batch", "-config", f"{name}.cnf", "-cert", f"{ca}.pem",
            "-keyfile", f"{ca}.key", "-in", f"{name}.csr", "-out",
            f"{name}.pem", "-startdate", "20200101000000Z", "-enddate",
            "20200102000000Z", cwd=d)


# ------------------------------------------------------------ the server


class Server:
    """One SMTP server on 127.0.0.1. mode: good, strip, inject, badpass,
    login_only, implicit. Records every command line it read, and whether
    it was read inside TLS; AUTH lines are recorded as 'AUTH <mech>'."""

    def __init__(self, mode, cert, key):
        self.mode = mode
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.lines = []  # (in_tls, line)
        self.messages = []
        self.auth_ok = []
        self.tls_seen = []
        self.port = None

    async def start(self):
        ssl_ctx = self.ctx if self.mode == "implicit" else None
        self.srv = await asyncio.start_server(self.session, "127.0.0.1", 0,
                                              ssl=ssl_ctx)
        self.port = self.srv.sockets[0].getsockname()[1]

    async def session(self, reader, writer):
        in_tls = self.mode == "implicit"
        authed = False
        try:
            writer.write(b"220 tls-test ESMTP\r\n")
            await writer.drain()
            while True:
                raw = await reader.readline()
                if not raw:
                    return
                line = raw.decode("ascii", "replace").rstrip("\r\n")
                verb = line.split(" ")[0].upper()
                shown = line if verb != "AUTH" else " ".join(
                    line.split(" ")[:2])
                self.lines.append((in_tls, shown))
                if verb == "EHLO":
                    caps = ["250-tls-test", "250-PIPELINING"]
                    if not in_tls and self.mode != "strip":
                        caps.append("250-STARTTLS")
                    if in_tls:
                        caps.append("250-AUTH LOGIN" if self.mode ==
                                    "login_only" else "250-AUTH PLAIN LOGIN")
                    caps.append("250 8BITMIME")
                    writer.write(("\r\n".join(caps) + "\r\n").encode())
                elif verb == "STARTTLS" and not in_tls:
                    if self.mode == "inject":
                        writer.write(b"220 go ahead\r\n250-injected\r\n"
                                     b"250 AUTH PLAIN\r\n")
                    else:
                        writer.write(b"220 2.0.0 go ahead\r\n")
                    await writer.drain()
                    await writer.start_tls(self.ctx)
                    in_tls = True
                    ssl_obj = writer.get_extra_info("ssl_object")
                    self.tls_seen.append(
                        (ssl_obj.version(), ssl_obj.server_hostname))
                    continue
                elif verb == "AUTH":
                    authed = await self.auth(line, reader, writer)
                elif verb == "MAIL":
                    writer.write(b"250 2.1.0 ok\r\n" if authed else
                                 b"530 5.7.0 authentication required\r\n")
                elif verb == "RCPT":
                    writer.write(b"250 2.1.5 ok\r\n")
                elif verb == "DATA":
                    writer.write(b"354 go\r\n")
                    await writer.drain()
                    body = []
                    while True:
                        b = await reader.readline()
                        if not b or b == b".\r\n":
                            break
                        body.append(b)
                    self.messages.append(b"".join(body))
                    writer.write(b"250 2.0.0 queued\r\n")
                elif verb == "QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    return
                else:
                    writer.write(b"502 5.5.2 what\r\n")
                await writer.drain()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def auth(self, line, reader, writer):
        parts = line.split(" ")
        mech = parts[1].upper() if len(parts) > 1 else ""
        if mech == "PLAIN" and len(parts) == 3:
            fields = base64.b64decode(parts[2]).split(b"\0")
            user, pw = fields[1].decode(), fields[2].decode()
        elif mech == "LOGIN":
            writer.write(b"334 VXNlcm5hbWU6\r\n")
            await writer.drain()
            user = base64.b64decode(await reader.readline()).decode()
            writer.write(b"334 UGFzc3dvcmQ6\r\n")
            await writer.drain()
            pw = base64.b64decode(await reader.readline()).decode()
        else:
            writer.write(b"504 5.5.4 mechanism\r\n")
            return False
        good = user == USER and pw == PASSWORD and self.mode != "badpass"
        self.auth_ok.append((mech, user, good))
        writer.write(b"235 2.7.0 ok\r\n" if good else
                     b"535 5.7.8 bad credentials\r\n")
        return good

    def clear_lines(self):
        return [l for t, l in self.lines if not t]


class Loop:
    """An asyncio loop in a thread, for the servers."""

    def __init__(self):
        self.servers = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever,
                                       daemon=True)
        self.thread.start()

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# --------------------------------------------------------------- the runs


def send(detour, d, name, servers, tls="starttls", host="localhost",
         extra=()):
    args = [detour, "send", "--from", "a@x.test", "--to", "b@y.test",
            "--tls", tls, "--ca-file", os.path.join(d, "ca.pem"),
            "--auth-user", USER, "--auth-password-file",
            os.path.join(d, "pw"), "--retry-interval", "1s",
            "--max-attempts", "1", "--reply-timeout", "10s", "--log",
            os.path.join(d, f"{name}.jsonl"), *extra]
    for s in servers:
        args += ["--server", f"{host}:{s.port}"]
    p = subprocess.run(args, input=b"Subject: tls\n\nhello\n",
                       capture_output=True, timeout=60)
    with open(os.path.join(d, f"{name}.out"), "wb") as f:
        f.write(p.stdout)
    with open(os.path.join(d, f"{name}.err"), "wb") as f:
        f.write(p.stderr)
    return p


def expect_failover(detour, d, lp, name, bad, good, reason, host="localhost"):
    p = send(detour, d, name, [bad, good], host=host)
    err = p.stderr.decode()
    check(p.returncode == 0, f"{name}: exit {p.returncode}: {err}")
    check(len(good.messages) == 1, f"{name}: backup got the message")
    check(not bad.messages, f"{name}: primary got no message")
    clear = " ".join(bad.clear_lines())
    check("AUTH" not in clear and "MAIL" not in clear,
          f"{name}: nothing but EHLO/STARTTLS in clear: {clear}")
    want = f"configuration error: server {host}:{bad.port} refused us: {reason}"
    check(want in err, f"{name}: warning '{want}' in stderr: {err}")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    detour = sys.argv[1]
    if not shutil.which("openssl"):
        print("SKIP: no openssl command")
        return 77
    d = tempfile.mkdtemp(prefix="detour-tls-send-")
    try:
        return run(detour, d)
    finally:
        if os.environ.get("DETOUR_KEEP"):
            print("kept", d)
        else:
            shutil.rmtree(d, ignore_errors=True)


def run(detour, d):
    make_ca(d, "ca")
    make_ca(d, "other")
    make_cert(d, "ca", "good", "DNS:localhost,IP:127.0.0.1")
    make_cert(d, "ca", "wronghost", "DNS:elsewhere.test")
    make_cert(d, "other", "foreign", "DNS:localhost")
    expired = True
    try:
        make_cert(d, "ca", "expired", "DNS:localhost", expired=True)
    except subprocess.CalledProcessError as e:
        print("note: no expired certificate:", e.stderr.decode()[:200])
        expired = False
    with open(os.path.join(d, "pw"), "w") as f:
        f.write(PASSWORD + "\n")

    lp = Loop()

    def server(mode, cert="good"):
        s = Server(mode, os.path.join(d, f"{cert}.pem"),
                   os.path.join(d, f"{cert}.key"))
        lp.run(s.start())
        lp.servers.append(s)
        return s

    # 1. STARTTLS + AUTH PLAIN: delivered, EHLO again inside TLS.
    good = server("good")
    p = send(detour, d, "plain", [good])
    check(p.returncode == 0, f"plain: exit {p.returncode}: {p.stderr}")
    check(len(good.messages) == 1, "plain: message delivered")
    check(good.auth_ok == [("PLAIN", USER, True)], f"plain: {good.auth_ok}")
    check([l for t, l in good.lines if t][:1] == ["EHLO localhost"],
          f"plain: EHLO again first inside TLS: {good.lines}")
    check(good.tls_seen and good.tls_seen[0][0] in ("TLSv1.2", "TLSv1.3"),
          f"plain: TLS version {good.tls_seen}")
    check(good.clear_lines() == ["EHLO localhost", "STARTTLS"],
          f"plain: in clear only EHLO, STARTTLS: {good.clear_lines()}")
    log = open(os.path.join(d, "plain.jsonl")).read()
    check('"kind":"tls"' in log and '"kind":"auth"' in log,
          f"plain: tls and auth rows in the send log: {log[:400]}")

    # 2. AUTH LOGIN when PLAIN is not offered; the IP address path.
    login = server("login_only")
    p = send(detour, d, "login", [login], host="127.0.0.1")
    check(p.returncode == 0, f"login: exit {p.returncode}: {p.stderr}")
    check(login.auth_ok == [("LOGIN", USER, True)], f"login: {login.auth_ok}")

    # 3. Implicit TLS (RFC 8314).
    imp = server("implicit")
    p = send(detour, d, "implicit", [imp], tls="implicit")
    check(p.returncode == 0, f"implicit: exit {p.returncode}: {p.stderr}")
    check(len(imp.messages) == 1, "implicit: delivered")
    check(imp.clear_lines() == [], f"implicit: nothing in clear")

    # 4. Failover from a broken primary to a good backup.
    cases = [
        ("strip", "strip", "good", "STARTTLS not offered"),
        ("inject", "inject", "good", "plaintext after the 220 to STARTTLS"),
        ("unknown_ca", "good", "foreign", "certificate from an unknown CA"),
        ("wrong_host", "good", "wronghost", "certificate name mismatch"),
        ("badpass", "badpass", "good", "authentication failed"),
    ]
    if expired:
        cases.append(("expired", "good", "expired", "certificate expired"))
    for name, mode, cert, reason in cases:
        bad = server(mode, cert)
        backup = server("good")
        expect_failover(detour, d, lp, name, bad, backup, reason)

    # 5. No artefact holds the password or what it looks like on the wire.
    forms = [PASSWORD.encode(), base64.b64encode(PASSWORD.encode()),
             base64.b64encode(f"\0{USER}\0{PASSWORD}".encode())]
    records = repr([(s.lines, s.auth_ok) for s in lp.servers]).encode()
    files = [f for f in os.listdir(d)
             if f.endswith((".out", ".err", ".jsonl")) and f != "pw"]
    check(len(files) >= 3 * 9, f"artefacts written: {files}")
    for f in files:
        data = open(os.path.join(d, f), "rb").read()
        for form in forms:
            check(form not in data, f"password form found in {f}")
    check(all(form not in records for form in forms), "server records")
    lp.stop()
    if FAILURES:
        print(f"{len(FAILURES)} failure(s)")
        return 1
    print(f"ok: {len(cases) + 3} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
