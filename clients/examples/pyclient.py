#!/usr/bin/env python3
"""pyclient: a small SMTP client with failover of its own, the worked
example of clients/README.md (certified through pyclient.yaml, no C).
Usage: pyclient.py CONFIG FROM TO... < message; pyclient.py --version."""
import smtplib
import socket
import sys
import time

VERSION = "pyclient 1.0"


def classify(code):
    """SPEC R3 in short: 450/451 wait and retry, 421/452/552 and other
    4xx or 5xx the next server, 550/551/553/554 a wrong address or
    content: dropped."""
    if code in (450, 451):
        return "retry"
    return "done" if code in (550, 551, 553, 554) else "next"


def session(server, timeout, sender, rcpts, body):
    """One attempt. Returns (action, recipients still pending): action is
    'done', 'next' (try the next server now) or 'retry' (wait, same one)."""
    host, port = server.rsplit(":", 1)
    try:
        smtp = smtplib.SMTP(host, int(port), timeout=timeout)
    except (OSError, smtplib.SMTPException):
        return "next", rcpts  # refused, unreachable, no greeting: move on
    try:
        smtp.ehlo_or_helo_if_needed()
        code, _ = smtp.mail(sender)
        if code >= 400:
            action = classify(code)
            return action, [] if action == "done" else rcpts
        accepted, later, action = [], [], "done"
        for rcpt in rcpts:
            code, _ = smtp.rcpt(rcpt)
            if code < 300:
                accepted.append(rcpt)
            elif classify(code) != "done":  # else a wrong address: dropped
                later.append(rcpt)
                action = classify(code)
        if accepted:
            code, _ = smtp.data(body)  # the reply to the final dot
            if code >= 400:
                action, later = classify(code), accepted + later
        smtp.quit()
        return action, [] if action == "done" else later
    except smtplib.SMTPResponseException as e:  # e.g. DATA refused
        action = classify(e.smtp_code)
        return action, [] if action == "done" else rcpts
    except (OSError, smtplib.SMTPException):
        return "retry", rcpts  # dropped or silent mid-session: try again later


def main(argv):
    if argv[1:] == ["--version"]:
        print(VERSION)
        return 0
    conf = dict(l.strip().split("=", 1) for l in open(argv[1]) if "=" in l)
    servers = conf["servers"].split(",")
    retry, limit = float(conf["retry"]), int(conf["max_attempts"])
    timeout = float(conf["timeout"])
    pending, body = argv[3:], sys.stdin.buffer.read()
    index, tries = 0, [0] * len(servers)
    while pending and index < len(servers):
        tries[index] += 1
        action, pending = session(servers[index], timeout, argv[2], pending, body)
        print(f"{servers[index]} attempt {tries[index]}: {action}", flush=True)
        if action == "next" or (action == "retry" and tries[index] >= limit):
            index += 1
        elif action == "retry":
            time.sleep(retry)
    print("delivered" if not pending else f"gave up: {pending}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
