#!/usr/bin/env python3
"""test_serve.py - `detour serve` driven from outside by Python's smtplib and
by swaks, as any client would: its record must show each exchange, bad
scripts must name file:line:col, scripts alone must not listen beyond
loopback, and SIGTERM must stop it cleanly with the record flushed.

Usage: test_serve.py PATH/TO/detour   (CTest: fake_serve)
Every wait is bounded; exit 0 pass, 1 fail, 77 skip.
"""
import json
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time

DETOUR = sys.argv[1] if len(sys.argv) > 1 else "detour"
FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


SCRIPT = """\
servers:
  - name: primary
    listen: 127.0.0.1:0
    rcpt:
      'bad@x.test': 550 5.1.1 no such user
      '*': 250 2.1.5 ok
  - name: backup
    listen: 127.0.0.2:0
    greeting: 421 4.3.2 try later
"""


def start(tmp, script_text, *extra):
    script = os.path.join(tmp, "s.yaml")
    with open(script, "w") as f:
        f.write(script_text)
    record = os.path.join(tmp, "rec.jsonl")
    out = open(os.path.join(tmp, "out.txt"), "w+")
    p = subprocess.Popen([DETOUR, "serve", "--script", script, "--record",
                          record, *extra], stdout=out, stderr=subprocess.STDOUT)
    ports = {}
    deadline = time.time() + 10
    while time.time() < deadline and len(ports) < 2 and p.poll() is None:
        out.seek(0)
        for line in out.read().splitlines():
            w = line.split()
            if len(w) == 3 and w[0] == "listening":
                host, port = w[2].rsplit(":", 1)
                ports[w[1]] = (host, int(port))
        time.sleep(0.05)
    return p, out, record, ports


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=5)
        return None


def read_record(path):
    with open(path, encoding="latin-1") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_exchange():
    tmp = tempfile.mkdtemp(prefix="detour-serve-")
    p, out, record, ports = start(tmp, SCRIPT)
    check("primary" in ports and "backup" in ports, "both servers listening")
    if "primary" not in ports:
        out.seek(0)
        print(out.read())
        p.kill()
        return
    host, port = ports["primary"]
    check(host == "127.0.0.1" and ports["backup"][0] == "127.0.0.2",
          "loopback addresses as scripted")

    body = "Subject: smtplib\r\n\r\n.leading dot\r\nline two\r\n"
    with smtplib.SMTP(host, port, timeout=10) as s:
        refused = s.sendmail("py@client.test", ["ok@x.test", "bad@x.test"],
                             body)
    check(list(refused) == ["bad@x.test"], "smtplib: bad@x.test refused 550")

    try:
        with smtplib.SMTP(*ports["backup"], timeout=10) as s:
            s.noop()
        check(False, "backup greets 421")
    except smtplib.SMTPConnectError as e:
        check(e.smtp_code == 421, "smtplib: backup greeting 421")

    swaks = shutil.which("swaks")
    if swaks:
        r = subprocess.run([swaks, "--server", host, "--port", str(port),
                            "--from", "swaks@client.test", "--to",
                            "rcpt@x.test", "--header", "Subject: swaks",
                            "--body", "hello from swaks", "--timeout", "10"],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, "swaks delivered (rc %d)" % r.returncode)
    else:
        print("skip swaks: not installed")

    rc = stop(p)
    check(rc == 0, "SIGTERM: clean exit (rc %s)" % rc)
    ev = read_record(record)
    msgs = [e for e in ev if e["event"] == "message"]
    check(len(msgs) == (2 if swaks else 1), "record: %d messages" % len(msgs))
    m = msgs[0]
    check(m["server"] == "primary" and m["from"] == "py@client.test" and
          m["rcpts"] == ["ok@x.test"], "record: smtplib envelope")
    check(m["body"] == "Subject: smtplib\r\n\r\n.leading dot\r\nline two\r\n",
          "record: exact body after dot-unstuffing")
    if swaks:
        check(msgs[1]["from"] == "swaks@client.test" and
              "hello from swaks" in msgs[1]["body"], "record: swaks message")
    # smtplib writes verbs in lower case ("rcpt TO:<...>")
    cmds = [e["data"].upper() for e in ev if e["event"] == "command"]
    check("RCPT TO:<BAD@X.TEST>" in cmds and "QUIT" in cmds,
          "record: commands")
    replies = [e for e in ev if e["event"] == "reply"]
    check(any(r["code"] == 550 and "5.1.1" in r["data"] for r in replies),
          "record: the 550 reply")
    check(any(e["event"] == "close" and e["server"] == "backup" and
              e["by"] == "server" for e in ev), "record: backup closed by server")
    check(ev[-1]["event"] == "stop", "record flushed up to the stop")
    out.seek(0)
    text = out.read()
    check(" C: mail FROM:<py@client.test>" in text and " S: 221 " in text,
          "a line per event on stdout")
    shutil.rmtree(tmp)


def run_fail(script_text, *extra):
    tmp = tempfile.mkdtemp(prefix="detour-serve-")
    path = os.path.join(tmp, "bad.yaml")
    with open(path, "w") as f:
        f.write(script_text)
    r = subprocess.run([DETOUR, "serve", "--script", path, *extra],
                       capture_output=True, text=True, timeout=20)
    shutil.rmtree(tmp)
    return r, path


def test_bad_script():
    r, path = run_fail("name: x\ngreeting: hello\n")
    check(r.returncode == 78, "bad script: exit 78 (got %d)" % r.returncode)
    check(path + ":2:11: expected a reply" in r.stderr,
          "bad script names file:line:col: " + r.stderr.strip())


def test_no_public_listen_from_script():
    r, _ = run_fail("name: x\nlisten: 0.0.0.0:0\n")
    check(r.returncode != 0 and "use --listen" in r.stderr,
          "a script alone cannot listen on 0.0.0.0: " + r.stderr.strip())


def test_listen_override():
    tmp = tempfile.mkdtemp(prefix="detour-serve-")
    p, out, record, ports = start(tmp, "name: one\n", "--listen",
                                  "127.0.0.3:0", "--listen", "127.0.0.4:0")
    rc = stop(p)
    out.seek(0)
    lines = [l for l in out.read().splitlines() if l.startswith("listening")]
    check(len(lines) == 2 and "127.0.0.3:" in lines[0] and
          "127.0.0.4:" in lines[1], "--listen copies one server per address")
    check(rc == 0, "clean exit after --listen")
    shutil.rmtree(tmp)


def test_sink():
    """No --script: an accepting sink, like smtp-sink; --maildir keeps each
    message in a Maildir."""
    tmp = tempfile.mkdtemp(prefix="detour-serve-")
    md = os.path.join(tmp, "Maildir")
    out = open(os.path.join(tmp, "out.txt"), "w+")
    p = subprocess.Popen([DETOUR, "serve", "--listen", "127.0.0.1:0",
                          "--maildir", md], stdout=out,
                         stderr=subprocess.STDOUT)
    port = None
    deadline = time.time() + 10
    while time.time() < deadline and port is None and p.poll() is None:
        out.seek(0)
        for line in out.read().splitlines():
            w = line.split()
            if len(w) == 3 and w[0] == "listening":
                port = int(w[2].rsplit(":", 1)[1])
        time.sleep(0.05)
    check(port is not None, "sink: listening without a script")
    if port is None:
        p.kill()
        return
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        refused = s.sendmail("py@client.test", ["a@x.test", "b@x.test"],
                             "Subject: sink\r\n\r\nto the sink\r\n")
    check(refused == {}, "sink: smtplib delivered to both recipients")
    swaks = shutil.which("swaks")
    if swaks:
        r = subprocess.run([swaks, "--server", "127.0.0.1", "--port",
                            str(port), "--from", "swaks@client.test", "--to",
                            "c@x.test", "--body", "swaks to the sink",
                            "--timeout", "10"], capture_output=True,
                           text=True, timeout=30)
        check(r.returncode == 0, "sink: swaks delivered (rc %d)" % r.returncode)
    rc = stop(p)
    check(rc == 0, "sink: clean exit on SIGTERM")
    new = os.path.join(md, "new")
    files = sorted(os.listdir(new)) if os.path.isdir(new) else []
    texts = [open(os.path.join(new, f), encoding="latin-1").read()
             for f in files]
    check(len(files) == (2 if swaks else 1) and
          all(os.path.isdir(os.path.join(md, d)) for d in ("tmp", "cur")),
          "sink: one file per message in Maildir/new: %s" % files)
    check(bool(texts) and "Return-Path: <py@client.test>" in texts[0] and
          "Delivered-To: b@x.test" in texts[0] and "to the sink" in texts[0],
          "sink: the Maildir file holds the envelope and the message")
    check(not os.listdir(os.path.join(md, "tmp")) if os.path.isdir(
        os.path.join(md, "tmp")) else False, "sink: nothing left in tmp/")
    shutil.rmtree(tmp)


def test_truncated_eml():
    """A body cut at max_body is written with X-Detour-Truncated: yes."""
    tmp = tempfile.mkdtemp(prefix="detour-serve-")
    eml = os.path.join(tmp, "eml")
    p, out, record, ports = start(tmp, "name: t\nlisten: 127.0.0.1:0\n"
                                  "max_body: 10\n", "--eml-dir", eml)
    check("t" in ports, "max_body server listening")
    if "t" not in ports:
        p.kill()
        return
    with smtplib.SMTP(*ports["t"], timeout=10) as s:
        s.sendmail("a@x.test", ["b@x.test"],
                   "Subject: long\r\n\r\n" + "x" * 200 + "\r\n")
    rc = stop(p)
    files = os.listdir(eml) if os.path.isdir(eml) else []
    text = open(os.path.join(eml, files[0]), encoding="latin-1",
                newline="").read() \
        if files else ""
    head, _, body = text.partition("X-Detour-Truncated: yes\r\n")
    check(rc == 0 and len(files) == 1 and _ != "" and
          len(body.rstrip("\r\n")) <= 10,
          "a body over max_body: one .eml marked truncated, cut to 10 bytes: "
          "%r" % text[:200])
    shutil.rmtree(tmp)


def main():
    if not os.path.exists(DETOUR):
        print("no detour binary at", DETOUR)
        return 77
    test_exchange()
    test_bad_script()
    test_no_public_listen_from_script()
    test_listen_override()
    test_sink()
    test_truncated_eml()
    print("%d failure(s)" % len(FAILURES))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
