#!/usr/bin/env python3
"""gen_cert_matrix.py - writes scenarios/cert/cert-r3-<stage>-<what>.yaml:
the certification profile's R3 matrix, every failure class at every stage
the wire shows (connect, greeting, EHLO, MAIL, RCPT, DATA, end of data),
with the SPEC's default reply table only (a client cannot be asked to
re-map codes) and expectations about the fake servers' records only, so
that any SMTP client can be judged by them.

The expectations come from SPEC R3/R5/R6/R9/R11, not from a run
(retry interval 2 s; times within the tolerance):
  TRANSIENT  the same server (a) again after the interval, b never used:
             a has 2 connections, the 2nd at T + 2 s (T: when the
             failure is seen: 0 s, or the configured timeout);
  SWITCH     the next server (b) at once: a 1 connection, b 1 at ~0 s;
  ABORT      no retry, no other server, no message anywhere.
The cases the other cert files cover already (refused and blackholed
connect, 421 greeting, 450/452/550 at RCPT, a reset mid-DATA) are not
repeated here.

Run from the repository root: python3 scenarios/tools/gen_cert_matrix.py
"""
import os

OUT = os.path.join(os.path.dirname(__file__), "..", "cert")

# (stage, short name, class, script rule for connection 1 of a, timeout
#  key and value the client must be told, or None, what it is)
CASES = [
    ("connect", "close", "TRANSIENT", "close", None,
     "the connection is closed right after it was accepted, before any greeting"),
    ("greeting", "silent", "TRANSIENT", "stall", ("greeting", "1s"),
     "no greeting within the configured 1 s greeting timeout (R11)"),
    ("greeting", "554", "SWITCH", '"554 5.3.2 no service here"', None,
     "a 554 greeting: service not available"),
    ("ehlo", "close", "TRANSIENT", "close", None,
     "the connection is closed instead of the EHLO reply"),
    ("ehlo", "421", "SWITCH", '"421 4.3.2 shutting down"', None,
     "421 to EHLO: service not available"),
    ("mail", "451", "TRANSIENT", '"451 4.3.0 local error, try later"', None,
     "451 to MAIL FROM: a temporary processing error"),
    ("mail", "relay-denied", "SWITCH", '"550 5.7.1 relaying denied"', None,
     "550 5.7.1 to MAIL FROM: policy (another server may accept)"),
    ("mail", "disk-full", "SWITCH", '"452 4.3.1 insufficient system storage"', None,
     "452 4.3.1 to MAIL FROM: disk full"),
    ("mail", "bad-sender", "ABORT", '"553 5.1.8 bad sender address"', None,
     "553 5.1.8 to MAIL FROM: the sender address is wrong"),
    ("rcpt", "451", "TRANSIENT", '"451 4.4.0 temporary failure"', None,
     "451 4.4.0 to RCPT TO: a temporary network error"),
    ("rcpt", "421", "SWITCH", '"421 4.3.2 shutting down"', None,
     "421 to RCPT TO: service not available"),
    ("rcpt", "syntax", "SWITCH", '"501 5.5.4 parameter not supported"', None,
     "501 5.5.4 to RCPT TO: command parameter not supported"),
    ("rcpt", "bad-address", "ABORT", '"553 5.1.3 bad recipient address syntax"', None,
     "553 5.1.3 to RCPT TO: the recipient address is wrong"),
    ("data", "451", "TRANSIENT", '"451 4.3.0 try later"', None,
     "451 to DATA: a temporary processing error"),
    ("data", "disk-full", "SWITCH", '"452 4.3.1 insufficient system storage"', None,
     "452 4.3.1 to DATA: disk full"),
    ("data", "421", "SWITCH", '"421 4.3.2 shutting down"', None,
     "421 to DATA: service not available"),
    ("eod", "451", "TRANSIENT", '"451 4.3.0 try later"', None,
     "451 after the final dot: a temporary processing error"),
    ("eod", "disk-full", "SWITCH", '"552 5.3.1 insufficient system storage"', None,
     "552 5.3.1 after the final dot: disk full"),
    ("eod", "refused", "ABORT", '"554 5.7.1 content refused"', None,
     "554 5.7.1 after the final dot: the content is refused"),
]

WHY = {
    "TRANSIENT": "wait the retry interval (2 s) and reconnect to the same, "
                 "normal server; the backup is never used",
    "SWITCH": "go to the backup at once",
    "ABORT": "stop: no retry, no backup, no message anywhere",
}
RULES = {"TRANSIENT": "[R3, R6, R9]", "SWITCH": "[R3, R5, R9]",
         "ABORT": "[R3, R9]"}


def secs(text):
    return int(text.rstrip("s"))


def expectations(stage, cls, timeout):
    t = secs(timeout[1]) if timeout else 0
    if cls == "TRANSIENT":
        # the eod case: a got the whole message once and answered 451
        first = ("\n      - { from: s@x.test, to: [r@y.test], complete: true, "
                 "code: 451 }") if stage == "eod" else ""
        return f"""  recipients: {{ r@y.test: {{ server: a }} }}
  connections: {{ a: 2, b: 0 }}
  connect_times: {{ a: [0s, {t + 2}s] }}
  received:
    a:{first}
      - {{ from: s@x.test, to: [r@y.test], complete: true, code: 250 }}
    b: []
  latency: {{ min: {t + 2}s, max: {t + 5}s }}
  tolerance: 1s
"""
    if cls == "SWITCH":
        # the eod case: a got the whole message and answered 552
        cut = ("[ { from: s@x.test, to: [r@y.test], complete: true, "
               "code: 552 } ]") if stage == "eod" else "[]"
        return f"""  recipients: {{ r@y.test: {{ server: b }} }}
  connections: {{ a: 1, b: 1 }}
  received:
    a: {cut}
    b: [ {{ from: s@x.test, to: [r@y.test], complete: true, code: 250 }} ]
  latency: {{ max: 1s }}
  tolerance: 700ms
"""
    got = ("[ { from: s@x.test, to: [r@y.test], complete: true, code: 554 } ]"
           if stage == "eod" else "[]")
    return f"""  recipients: {{ r@y.test: {{ server: none }} }}
  connections: {{ a: 1, b: 0 }}
  received: {{ a: {got}, b: [] }}
"""


def scenario(stage, short, cls, rule, timeout, what):
    name = f"cert-r3-{stage}-{short}"
    rules = RULES[cls] if not timeout else RULES[cls].replace("]", ", R11]")
    client = "  servers: [a, b]\n  retry: { interval: 2s }\n"
    if timeout:
        client += f"  timeouts: {{ {timeout[0]}: {timeout[1]} }}\n"
    body = f"""# Generated by scenarios/tools/gen_cert_matrix.py; edit the generator.
name: {name}
rules: {rules}
description: >
  {what[0].upper() + what[1:]}, on the first connection to the normal
  server: class {cls} (SPEC R3, default table). The client must {WHY[cls]}.
  Judged only by what the fake servers saw.
limit: 20s
servers:
  - name: a
    connections:
      - {{ range: 1, {stage}: {rule} }}
  - {{ name: b }}
client:
{client}messages:
  - {{ from: s@x.test, to: [r@y.test] }}
expect:
{expectations(stage, cls, timeout)}"""
    with open(os.path.join(OUT, name + ".yaml"), "w") as f:
        f.write(body)


for case in CASES:
    scenario(*case)
