#!/usr/bin/env python3
"""pyclient: a small SMTP client with failover of its own, the worked
example of clients/README.md (certified through pyclient.yaml, no C).
Usage: pyclient.py CONFIG FROM TO... < message; pyclient.py --version."""
import smtplib
import sys
import time


def classify(code):
    """450/451: wait and retry; 550/551/553/554: a wrong address or
    content, dropped; anything else (421, 452, 552, 5xx): the next server."""
    if code in (450, 451):
        return "retry"
    return "done" if code in (550, 551, 553, 554) else "next"


def session(server, timeout, sender, rcpts, body):
    """One attempt: (action, recipients still pending), action one of
    'done', 'next' (the next server now), 'retry' (wait, the same one)."""
    host, port = server.rsplit(":", 1)
    try:
        smtp = smtplib.SMTP(host, int(port), timeout=timeout)
    except (OSError, smtplib.SMTPException):
        return "next", rcpts  # refused, unreachable, no greeting: move on
    try:
        smtp.ehlo_or_helo_if_needed()
        code, _ = smtp.mail(sender)
        if code >= 400:
            return classify(code), rcpts
        accepted, later, action = [], [], "done"
        for rcpt in rcpts:
            code, _ = smtp.rcpt(rcpt)
            if code < 300:
                accepted.append(rcpt)
            elif classify(code) != "done":  # else a wrong address: dropped
                later, action = later + [rcpt], classify(code)
        if accepted:
            code, _ = smtp.data(body)  # the reply to the final dot
            if code >= 400:
                action, later = classify(code), accepted + later
        smtp.quit()
        return action, later
    except smtplib.SMTPResponseException as e:  # e.g. DATA refused
        return classify(e.smtp_code), rcpts
    except (OSError, smtplib.SMTPException):
        return "retry", rcpts  # dropped or silent mid-session: try later


def main(argv):
    if argv[1:] == ["--version"]:
        return print("pyclient 1.0")
    conf = dict(l.strip().split("=", 1) for l in open(argv[1]) if "=" in l)
    servers, limit = conf["servers"].split(","), int(conf["max_attempts"])
    pending, body = argv[3:], sys.stdin.buffer.read()
    index, tries = 0, [0] * len(servers)
    while pending and index < len(servers):
        tries[index] += 1
        action, pending = session(servers[index], float(conf["timeout"]),
                                  argv[2], pending, body)
        pending = [] if action == "done" else pending
        print(f"{servers[index]} attempt {tries[index]}: {action}", flush=True)
        if action == "next" or (action == "retry" and tries[index] >= limit):
            index += 1
        elif action == "retry":
            time.sleep(float(conf["retry"]))
    print("delivered" if not pending else f"gave up: {pending}", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
