#!/usr/bin/env python3
"""test_cli.py - the `detour` command's conventions and the commands people
and scripts call, run as a user would (the built binary, loopback only):

- every command answers --help (with an "Exit status:" section) and
  --version, rejects a mistyped option with one wording, a "did you mean"
  and the Try line (exit 64), and takes --opt=value like --opt value;
  `detour help CMD` is CMD --help; a near-miss command gets "did you mean";
  a bad configuration or script file is 78 in every command that reads one,
  a bad --listen 64, and each code a command returns is in its --help;
- `detour send`: -q prints nothing on success, the null sender '<>' and
  recipients as arguments work, the table fits 80 columns and says why
  (refused), one Ctrl-D on a terminal ends the message;
- `detour sendmail` (and the binary called as sendmail): -t takes To, Cc
  and Bcc, removes Bcc, -i keeps a lone '.', -f sets the envelope sender,
  servers from $DETOUR_CONFIG, sendmail's exit codes.

Usage: test_cli.py PATH/TO/detour   (CTest: cli_conventions)
Every wait is bounded; exit 0 pass, 1 fail.
"""
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

DETOUR = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "detour")
FAILURES = []
TMP = tempfile.mkdtemp(prefix="detour-cli-")

# The commands, each with one option that takes a value: a good value
# (accepted as --opt=value), and the typo of another option with the
# suggestion the parser must make.
COMMANDS = {
    "send": {"typo": ("--frm", "--from")},
    "serve": {"typo": ("--scrpt", "--script")},
    "run": {"typo": ("--fitler", "--filter")},
    "bench": {"typo": ("--mesages", "--messages")},
    "sendmail": {"typo": None},
}


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def detour(*args, stdin=b"", env=None, timeout=30, argv0=None):
    e = dict(os.environ)
    e.update(env or {})
    cmd = [argv0 or DETOUR, *args]
    r = subprocess.run(cmd, input=stdin, capture_output=True, env=e,
                       timeout=timeout)
    r.out = r.stdout.decode(errors="replace")
    r.err = r.stderr.decode(errors="replace")
    return r


def exit_codes_in_help(text):
    """The codes listed under "Exit status:"."""
    part = text.split("Exit status:", 1)
    if len(part) < 2:
        return set()
    return {int(m) for m in re.findall(r"^\s+(\d+)\s", part[1], re.M)}


def path(name):
    return os.path.join(TMP, name)


def write(name, text):
    with open(path(name), "w") as f:
        f.write(text)
    return path(name)


# ---------------------------------------------------------------------------
# One set of conventions


def test_help_version_and_typos():
    helps = {}
    for cmd, spec in COMMANDS.items():
        r = detour(cmd, "--help")
        helps[cmd] = r.out
        check(r.returncode == 0 and "Usage:" in r.out,
              "%s --help: exit 0 with Usage (rc %d)" % (cmd, r.returncode))
        codes = exit_codes_in_help(r.out)
        check(0 in codes and 64 in codes,
              "%s --help lists exit codes 0 and 64: %s" % (cmd, sorted(codes)))
        r2 = detour(cmd, "-h")
        check(r2.returncode == 0 and r2.out == r.out, "%s -h = --help" % cmd)
        r3 = detour("help", cmd)
        check(r3.returncode == 0 and r3.out == r.out,
              "detour help %s = %s --help" % (cmd, cmd))
        r = detour(cmd, "--version")
        check(r.returncode == 0 and re.match(r"detour \d+\.\d+", r.out),
              "%s --version: %r" % (cmd, r.out.strip()))
        if spec["typo"]:
            typo, near = spec["typo"]
            r = detour(cmd, typo, "x")
            want = ("detour %s: unknown option '%s'; did you mean '%s'?\n"
                    "Try 'detour %s --help'.\n" % (cmd, typo, near, cmd))
            check(r.returncode == 64 and r.err == want,
                  "%s %s: exit 64 and one wording (rc %d): %r"
                  % (cmd, typo, r.returncode, r.err))
        r = detour(cmd, "--no-such-option-at-all")
        check(r.returncode == 64 and r.err.startswith(
            "detour %s: unknown option '--no-such-option-at-all'\n" % cmd)
            and r.err.endswith("Try 'detour %s --help'.\n" % cmd),
            "%s: an unknown option: exit 64, the Try line: %r" % (cmd, r.err))
    return helps


def test_opt_equals_value(helps):
    # The same bad value given both ways gets the same answer: the
    # parser, not the command, splits --opt=value.
    cases = [
        ("send", ["--from", "a@x.test", "--to", "b@x.test",
                  "--server", "127.0.0.1:1", "--retry-interval"], "soon"),
        ("run", ["--jobs"], "0"),
        ("bench", ["--messages"], "0"),
        ("serve", ["--listen"], "nowhere"),
    ]
    for cmd, args, value in cases:
        a = detour(cmd, *args, value)
        opt = args[-1]
        b = detour(cmd, *args[:-1], opt + "=" + value)
        check(a.returncode == 64 and b.returncode == 64 and a.err == b.err,
              "%s %s=%s is %s %s (%d %d): %r" % (cmd, opt, value, opt, value,
                                                  a.returncode, b.returncode,
                                                  b.err))
        check(("'%s'" % value) in b.err,
              "%s: the message quotes the bad value: %r" % (cmd, b.err))
    # A good --opt=value is taken: run --filter=NAME selects one scenario.
    suite = os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "scenarios", "conformance")
    r = detour("run", suite, "--filter=r1-single-server", "--no-progress")
    check(r.returncode == 0 and "1 passed" in r.out,
          "run --filter=NAME runs that scenario (rc %d): %s"
          % (r.returncode, r.out[-200:]))
    # A flag does not take a value.
    r = detour("send", "--quiet=yes")
    check(r.returncode == 64 and "option '--quiet' takes no value" in r.err,
          "a flag with =value: exit 64: %r" % r.err)
    # A missing value.
    r = detour("send", "--from")
    check(r.returncode == 64 and "option '--from' needs a value" in r.err,
          "a missing value: exit 64: %r" % r.err)


def test_commands_and_top_level():
    r = detour("sned")
    check(r.returncode == 64 and
          "unknown command 'sned'; did you mean 'send'?" in r.err and
          "Try 'detour --help'." in r.err, "near-miss command: %r" % r.err)
    r = detour("help", "sreve")
    check(r.returncode == 64 and "did you mean 'serve'?" in r.err,
          "help with a near-miss command: %r" % r.err)
    r = detour("--help")
    check(r.returncode == 0 and all(c in r.out for c in COMMANDS),
          "detour --help lists every command")
    r = detour()
    check(r.returncode == 64, "no command: exit 64")


def test_same_cause_same_code(helps):
    bad = write("bad.yaml", "servers: [\"127.0.0.1:1\"]\nretry:\n  interval: xyz\n")
    r = detour("send", "--config", bad, "--from", "a@x.test", "b@x.test")
    check(r.returncode == 78 and bad + ":3:13:" in r.err,
          "send: bad config 78 with file:line:col (rc %d): %r"
          % (r.returncode, r.err))
    r = detour("sendmail", "-C", bad, "b@x.test", stdin=b"Subject: x\n\nhi\n")
    check(r.returncode == 78 and bad + ":3:13:" in r.err,
          "sendmail: bad config 78 (rc %d): %r" % (r.returncode, r.err))
    r = detour("sendmail", "b@x.test", stdin=b"hi\n",
               env={"DETOUR_CONFIG": path("missing.yaml")})
    check(r.returncode == 78 and "missing.yaml" in r.err,
          "sendmail: missing config 78 (rc %d): %r" % (r.returncode, r.err))
    script = write("bad-script.yaml", "name: x\ngreeting: hello\n")
    r = detour("serve", "--script", script)
    check(r.returncode == 78 and script + ":2:11:" in r.err,
          "serve: bad script 78 (rc %d): %r" % (r.returncode, r.err))
    broken = write("broken-scenario.yaml", "name: b\nrules: [R1]\nservers: 3\n")
    r = detour("run", broken, "--no-progress")
    check(r.returncode == 78 and broken + ":3:10:" in r.out,
          "run: a broken scenario file alone: 78 (rc %d): %r"
          % (r.returncode, r.out[-300:]))
    r = detour("serve", "--listen", "127.0.0.1:99999")
    check(r.returncode == 64 and "--listen" in r.err,
          "serve: bad --listen 64 (rc %d): %r" % (r.returncode, r.err))
    for cmd, code in (("send", 78), ("serve", 78), ("sendmail", 78),
                      ("send", 67), ("send", 75), ("sendmail", 75),
                      ("sendmail", 67), ("run", 1), ("run", 77),
                      ("run", 78)):
        check(code in exit_codes_in_help(helps[cmd]),
              "%s --help documents exit %d" % (cmd, code))


# ---------------------------------------------------------------------------
# A sink to send to


class Sink:
    def __init__(self, *extra):
        self.out = open(path("sink-%d.txt" % time.monotonic_ns()), "w+")
        self.p = subprocess.Popen([DETOUR, "serve", "--listen", "127.0.0.1:0",
                                   *extra], stdout=self.out,
                                  stderr=subprocess.STDOUT)
        self.port = None
        deadline = time.time() + 10
        while time.time() < deadline and self.p.poll() is None:
            self.out.seek(0)
            m = re.search(r"listening \S+ 127\.0\.0\.1:(\d+)", self.out.read())
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.05)

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = None
        self.out.seek(0)
        self.text = self.out.read()
        return rc


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: a refusing primary
    return port


MESSAGE = b"Subject: hello\n\nhello through the backup\n"


def run_in_pty(argv, timeout=60):
    """argv on a terminal; everything it wrote there, and its exit code."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv)
    out, status = b"", None
    deadline = time.time() + timeout
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            out += chunk
            if not chunk:
                break
    _, st = os.waitpid(pid, 0)
    os.close(fd)
    return out.decode(errors="replace"), os.waitstatus_to_exitcode(st)


def test_run_progress():
    """On a terminal the progress line names the scenario running."""
    out, rc = run_in_pty([DETOUR, "run", SUITE, "-f", "r6-"])
    names = re.findall(r"\[\d+/\d+\] \d+ failed\s+[\d.]+ s\s+(\S+\.yaml)", out)
    check(rc == 0 and names and all(n.startswith("r6-") for n in names),
          "run: the progress line names the running scenario: %s"
          % sorted(set(names)))


def test_send():
    eml = path("send-eml")
    sink = Sink("--eml-dir", eml)
    check(sink.port is not None, "sink listening")
    refused = "127.0.0.1:%d" % free_port()
    backup = "127.0.0.1:%d" % sink.port
    r = detour("send", "-q", "--server", refused, "--server", backup,
               "--from", "<>", "a@x.test", "--to=b@y.test", stdin=MESSAGE)
    check(r.returncode == 0 and r.out == "" and r.err == "",
          "send -q: silent on success (rc %d): %r %r"
          % (r.returncode, r.out, r.err))
    r = detour("send", "--server", refused, "--server", backup,
               "--from", "me@x.test", "a-much-longer-recipient@example.test",
               stdin=MESSAGE)
    lines = r.err.splitlines()
    check(r.returncode == 0 and len(lines) >= 3, "send: a table on stderr")
    check(all(len(l) <= 80 for l in lines),
          "send: the table fits 80 columns: %s" %
          max((len(l) for l in lines), default=0))
    check(any("TCP error" in l and l.rstrip().endswith("refused")
              for l in lines), "send: the detail says 'refused':\n" + r.err)
    check(re.search(r"^time \(UTC\)\s+recipient\s+server\s+result\s+detail$",
                    lines[0] if lines else "") is not None,
          "send: the header names the columns: %r" % (lines[:1],))
    r = detour("send", "-v", "--server", refused, "--server", backup,
               "--from", "me@x.test", "c@x.test", stdin=MESSAGE)
    check(r.returncode == 0 and "CONNECT" in r.err and "attempt" in r.err,
          "send -v: the class and attempt columns")
    # -q still tells about a failure.
    r = detour("send", "-q", "--server", refused, "--max-attempts", "1",
               "--from", "me@x.test", "d@x.test", stdin=MESSAGE)
    check(r.returncode == 75 and "refused" in r.err and "deferred" in r.out,
          "send -q: a failure is shown (rc %d)" % r.returncode)
    # A refused recipient: the detail names the stage and the server's
    # words; exit 67.
    script = write("rcpt550.yaml", "name: p\nlisten: 127.0.0.1:0\nrcpt:\n"
                   "  'bad@*': 550 5.1.1 no such user\n")
    refusing = subprocess.Popen([DETOUR, "serve", "-q", "-s", script],
                                stdout=subprocess.PIPE)
    line = refusing.stdout.readline().decode()
    port = line.rsplit(":", 1)[-1].strip()
    r = detour("send", "-s", "127.0.0.1:" + port, "--from", "a@x.test",
               "bad@y.test", stdin=MESSAGE)
    refusing.terminate()
    refusing.wait(timeout=10)
    check(r.returncode == 67 and re.search(
        r"SMTP 550\s+RCPT no such user", r.err) is not None,
        "send: a 550 at RCPT: exit 67, detail 'RCPT no such user':\n" + r.err)
    sink.stop()
    files = sorted(os.listdir(eml)) if os.path.isdir(eml) else []
    first = open(os.path.join(eml, files[0])).read() if files else ""
    check(len(files) == 3, "three messages written as .eml: %s" % files)
    check("Return-Path: <>" in first and "Delivered-To: a@x.test" in first
          and "Delivered-To: b@y.test" in first,
          "null sender and both recipients reached the sink:\n" + first)
    check("MAIL FROM:<>" in sink.text, "MAIL FROM:<> on the wire")


def test_one_ctrl_d():
    """On a terminal, one Ctrl-D at the start of a line ends the message."""
    sink = Sink()
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(DETOUR, [DETOUR, "send", "-q", "--server",
                          "127.0.0.1:%d" % sink.port, "--from", "a@x.test",
                          "b@x.test"])
    os.write(fd, b"Subject: tty\n\nhi\n")
    time.sleep(0.3)
    os.write(fd, b"\x04")  # one Ctrl-D
    status = None
    deadline = time.time() + 10
    while time.time() < deadline:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(st)
            break
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                os.read(fd, 4096)
            except OSError:
                pass
    if status is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    os.close(fd)
    sink.stop()
    check(status == 0, "one Ctrl-D on a terminal ends the message (exit %s)"
          % status)
    check("message from=<a@x.test>" in sink.text, "and it was delivered")


def test_sendmail():
    eml = path("sendmail-eml")
    sink = Sink("--eml-dir", eml)
    cfg = write("detour.yaml", 'servers: ["127.0.0.1:%d", "127.0.0.1:%d"]\n'
                % (free_port(), sink.port))
    env = {"DETOUR_CONFIG": cfg}
    msg = b"To: a@x.test\nBcc: b@y.test\nSubject: s\n\nhi\n"
    r = detour("sendmail", "-t", "-i", "-f", "me@x.test", stdin=msg, env=env)
    check(r.returncode == 0 and r.out == "" and r.err == "",
          "sendmail -t -i -f: exit 0, silent (rc %d): %r" % (r.returncode,
                                                              r.err))
    # Called as "sendmail" through a link, the sendmail way of options.
    link = path("sendmail")
    os.symlink(DETOUR, link)
    msg2 = (b"From: Me <me@x.test>\nTo: \"Doe, Jane\" <jane@x.test>,"
            b" group: c@x.test, (note) d@x.test;\nCc: e@x.test\n"
            b" , f@x.test\nBcc: hidden@x.test,\n  also@x.test\n"
            b"Subject: two\n\nline\n.\nafter the dot\n")
    r = detour("-oi", "-t", "-fme@x.test", "extra@x.test", stdin=msg2,
               env=env, argv0=link)
    check(r.returncode == 0, "as 'sendmail' -oi -t: exit 0 (rc %d): %r"
          % (r.returncode, r.err))
    # Without -i a lone "." ends the message.
    r = detour("sendmail", "-f", "<>", "-F", "Cron Daemon", "g@x.test",
               stdin=b"Subject: three\n\nbefore\n.\nnot sent\n", env=env)
    check(r.returncode == 0, "sendmail without -i: exit 0")
    r = detour("sendmail", "-bs", env=env)
    check(r.returncode == 64 and "-bs" in r.err, "-bs is not supported: 64")
    r = detour("sendmail", stdin=b"Subject: x\n\n", env=env)
    check(r.returncode == 64 and "no recipient" in r.err,
          "no recipient: 64: %r" % r.err)
    sink.stop()
    files = sorted(os.listdir(eml)) if os.path.isdir(eml) else []
    texts = [open(os.path.join(eml, f)).read() for f in files]
    check(len(texts) == 3, "three messages received: %s" % files)
    if len(texts) < 3:
        return
    one, two, three = texts
    check("Delivered-To: a@x.test" in one and "Delivered-To: b@y.test" in one,
          "-t: delivered to To and Bcc:\n" + one)
    check("bcc" not in one.lower() and "b@y.test" not in
          one.split("Delivered-To: b@y.test", 1)[1],
          "-t: no Bcc header in the received message:\n" + one)
    check("Return-Path: <me@x.test>" in one, "-f sets the envelope sender")
    want = {"jane@x.test", "c@x.test", "d@x.test", "e@x.test", "f@x.test",
            "hidden@x.test", "also@x.test", "extra@x.test"}
    got = set(re.findall(r"^Delivered-To: (\S+)", two, re.M))
    check(got == want, "-t parses address lists, groups, comments, folding: "
          "%s" % sorted(got ^ want))
    check("hidden@x.test" not in two.split("\n\n", 1)[0].replace(
          "Delivered-To: hidden@x.test", "") and "also@x.test\n" not in
          two.split("Subject:", 1)[0].split("Delivered-To: also@x.test")[-1],
          "a folded Bcc is removed whole")
    check("after the dot" in two, "-oi: a lone '.' does not end the message")
    check("not sent" not in three and "before" in three,
          "without -i a lone '.' ends the message")
    check('From: "Cron Daemon" <' in three and "Return-Path: <>" in three,
          "-F names the added From; -f '<>' is the null sender:\n" + three)
    check(re.search(r"^Date: ", three, re.M) is not None, "a Date is added")


SUITE = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "scenarios", "conformance")


def rules_of(f):
    with open(os.path.join(SUITE, f)) as fh:
        m = re.search(r"^rules:\s*\[([^\]]*)\]", fh.read(), re.M)
    return [r.strip() for r in m.group(1).split(",")] if m else []


def test_run():
    files = sorted(f for f in os.listdir(SUITE) if f.endswith(".yaml"))
    want = {f for f in files if any(re.fullmatch(r"R12(\D.*)?", r, re.I)
                                     for r in rules_of(f))}
    want |= {f for f in files if "dns" in f}
    r = detour("run", SUITE, "--filter", "R12", "-f", "dns", "--no-progress")
    ran = re.findall(r"^PASS\s+(\S+)", r.out, re.M)
    check(r.returncode == 0 and len(ran) == len(want) and len(want) > 3,
          "run --filter R12 -f dns: the R12 scenarios and the dns one "
          "(%d of %d)" % (len(ran), len(want)))
    check(set(ran) == {f[:-len(".yaml")] for f in want},
          "run --filter: exactly those: %s" % sorted(set(ran) ^ {
              f[:-len(".yaml")] for f in want}))
    tmp = path("suite")
    os.makedirs(tmp)
    shutil.copy(os.path.join(SUITE, "r1-single-server.yaml"), tmp)
    with open(os.path.join(tmp, "broken.yaml"), "w") as f:
        f.write("name: broken\nrules: [R1]\nservers: 3\n")
    rd = path("reports")
    os.makedirs(os.path.join(rd, "pcap"))
    for stale in ("rows.txt", "report.html", "pcap/gone.pcap", "mine.txt"):
        open(os.path.join(rd, stale), "w").write("stale")
    r = detour("run", tmp, "--report-dir", rd, "--mutate",
               "classify:connect_refused=ABORT", "--no-progress")
    check(r.returncode == 1, "run: a broken file and a failure: exit 1")
    tail = r.out.split("\nfailed:\n", 1)
    check(len(tail) == 2 and "ERROR broken.yaml" in tail[1],
          "run: failures listed again at the end:\n" + r.out[-600:])
    check(r.out.rstrip().endswith("0 passed, 1 failed, 1 error") or
          r.out.rstrip().endswith("1 passed, 0 failed, 1 error"),
          "run: ERROR counted apart from FAIL: %r" % r.out.splitlines()[-1:])
    check(not os.path.exists(os.path.join(rd, "pcap", "gone.pcap")) and
          open(os.path.join(rd, "rows.txt")).read() != "stale" and
          os.path.exists(os.path.join(rd, "mine.txt")),
          "run --report-dir: an earlier run's reports are gone, other files "
          "stay")
    html = open(os.path.join(rd, "report.html")).read()
    m = re.search(r'href="([^"#]*)#r1"', html)
    target = os.path.normpath(os.path.join(rd, m.group(1))) if m else ""
    check(m is not None and not m.group(1).startswith("/") and
          os.path.exists(target) and target.endswith("docs/rules.md"),
          "run: the HTML links rules to docs/rules.md, relatively: %s"
          % (m.group(1) if m else None))


def test_completions(helps):
    """Every long option of every command's --help is in both completion
    files, so a new option cannot be forgotten there."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = [os.path.join(root, "cli", "completions", f)
             for f in ("detour.bash", "_detour")]
    texts = [open(f).read() for f in files]
    for cmd, text in helps.items():
        for opt in sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", text))):
            if opt in ("--opt",):
                continue
            for f, t in zip(files, texts):
                check(opt in t, "%s %s is in %s" % (cmd, opt,
                                                     os.path.basename(f)))


def main():
    if not os.path.exists(DETOUR):
        print("no detour binary at", DETOUR)
        return 1
    helps = test_help_version_and_typos()
    test_opt_equals_value(helps)
    test_commands_and_top_level()
    test_completions(helps)
    test_same_cause_same_code(helps)
    test_run()
    test_run_progress()
    test_send()
    test_one_ctrl_d()
    test_sendmail()
    shutil.rmtree(TMP, ignore_errors=True)
    print("%d failure(s)" % len(FAILURES))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
