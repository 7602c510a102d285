#!/usr/bin/env python3
"""gen_stage_matrix.py - writes scenarios/conformance/r3-<stage>-<class>.yaml:
each SPEC R3 class at each SMTP stage (greeting, EHLO, MAIL, RCPT, DATA,
end of data), with the action SPEC R3 asks for spelled out as expectations.

The expectations come from SPEC, not from a run:
  CONNECT, SWITCH  next server (b) at once: the failure row and b's row
                   share the same time;
  TRANSIENT        the same server (a) again after the retry interval (3m),
                   b never contacted;
  ABORT            no retry, no other server, the recipient is aborted.
Where the default table has no reply of a class at a stage, the scenario
re-maps one through `classify:` (SPEC: "the table is data").

Run from the repository root: python3 scenarios/tools/gen_stage_matrix.py
"""
import os

OUT = os.path.join(os.path.dirname(__file__), "..", "conformance")

# stage -> class -> (script rule for connection 1 of server a,
#                    the result the log row shows (glob),
#                    classify overrides, extra client keys)
T = {
    "greeting": {
        "TRANSIENT": ("stall", "SMTP timeout", {}, "timeouts: { greeting: 1m }"),
        "SWITCH": ("421 4.3.2 try another server", "SMTP 421 4.3.2 *", {}, ""),
        "ABORT": ("554 5.3.2 no service", "SMTP 554 5.3.2 *", {"greeting:554": "ABORT"}, ""),
        "CONNECT": ("421 4.3.2 go away", "SMTP 421 4.3.2 *", {"greeting:421": "CONNECT"}, ""),
    },
    "ehlo": {
        "TRANSIENT": ("close", "SMTP connection closed", {}, ""),
        "SWITCH": ("421 4.3.2 shutting down", "SMTP 421 4.3.2 *", {}, ""),
        "ABORT": ("421 4.3.2 shutting down", "SMTP 421 4.3.2 *", {"ehlo:421": "ABORT"}, ""),
        "CONNECT": ("421 4.3.2 shutting down", "SMTP 421 4.3.2 *", {"ehlo:421": "CONNECT"}, ""),
    },
    "mail": {
        "TRANSIENT": ("451 4.3.0 local error, try later", "SMTP 451 4.3.0 *", {}, ""),
        "SWITCH": ("550 5.7.1 relaying denied", "SMTP 550 5.7.1 *", {}, ""),
        "ABORT": ("553 5.1.8 bad sender address", "SMTP 553 5.1.8 *", {}, ""),
        "CONNECT": ("550 5.7.1 relaying denied", "SMTP 550 5.7.1 *", {"mail:550": "CONNECT"}, ""),
    },
    "rcpt": {
        "TRANSIENT": ("450 4.2.1 mailbox busy", "SMTP 450 4.2.1 *", {}, ""),
        "SWITCH": ("452 4.3.1 insufficient system storage", "SMTP 452 4.3.1 *", {}, ""),
        "ABORT": ("550 5.1.1 no such user", "SMTP 550 5.1.1 *", {}, ""),
        "CONNECT": ("452 4.3.1 insufficient system storage", "SMTP 452 4.3.1 *", {"rcpt:452": "CONNECT"}, ""),
    },
    "data": {
        "TRANSIENT": ("451 4.3.0 try later", "SMTP 451 4.3.0 *", {}, ""),
        "SWITCH": ("452 4.3.1 insufficient system storage", "SMTP 452 4.3.1 *", {}, ""),
        "ABORT": ("554 5.6.0 refused", "SMTP 554 5.6.0 *", {"data:554": "ABORT"}, ""),
        "CONNECT": ("452 4.3.1 insufficient system storage", "SMTP 452 4.3.1 *", {"data:452": "CONNECT"}, ""),
    },
    "eod": {
        "TRANSIENT": ("451 4.3.0 try later", "SMTP 451 4.3.0 *", {}, ""),
        "SWITCH": ("552 5.3.1 insufficient system storage", "SMTP 552 5.3.1 *", {}, ""),
        "ABORT": ("554 5.7.1 content refused", "SMTP 554 5.7.1 *", {}, ""),
        "CONNECT": ("552 5.3.1 insufficient system storage", "SMTP 552 5.3.1 *", {"eod:552": "CONNECT"}, ""),
    },
}

WHY = {
    "TRANSIENT": "wait the retry interval and reconnect to the same server",
    "SWITCH": "go to the next server at once",
    "CONNECT": "go to the next server at once, no waiting",
    "ABORT": "stop: no retry, no other server, tell the sender",
}


def scenario(stage, cls, rule, result, overrides, extra):
    name = f"r3-{stage}-{cls.lower()}"
    fail_t = "1m" if rule == "stall" else "0s"
    if cls == "TRANSIENT":
        retry_t = "4m" if fail_t == "1m" else "3m"
        rules = "[R2, R3, R6, R8]"
        log = [f"{{ t: {fail_t}, server: a, result: \"{result}\", class: TRANSIENT, attempt: 1 }}",
               f"{{ t: {retry_t}, server: a, result: SMTP OK, attempt: 2 }}"]
        out = "{ outcome: delivered, server: a }"
        status, code, conns = "delivered", 0, "{ a: 2, b: 0 }"
        times = f"\n  connect_times: {{ a: [0s, {retry_t}] }}"
    elif cls == "ABORT":
        rules = "[R2, R3, R8, R9]"
        log = [f"{{ t: {fail_t}, server: a, result: \"{result}\", class: ABORT, attempt: 1 }}"]
        out = "{ outcome: aborted }"
        status, code, conns, times = "aborted", 67, "{ a: 1, b: 0 }", ""
    else:
        rules = "[R2, R3, R5, R8]"
        log = [f"{{ t: {fail_t}, server: a, result: \"{result}\", class: {cls}, attempt: 1 }}",
               f"{{ t: {fail_t}, server: b, result: SMTP OK, attempt: 1 }}"]
        out = "{ outcome: delivered, server: b }"
        status, code, conns, times = "delivered", 0, "{ a: 1, b: 1 }", ""
    rule_yaml = rule if rule in ("stall", "close", "reset") else f"\"{rule}\""
    client = ["servers: [a, b]", "retry: { interval: 3m, max_attempts: 10 }"]
    if overrides:
        client.append("classify: { " + ", ".join(f"\"{k}\": {v}" for k, v in overrides.items()) + " }")
    if extra:
        client.append(extra)
    rt = "\nrealtime: false   # a 3m retry: virtual time only" if cls == "TRANSIENT" else ""
    where = "a re-mapped reply (classify:)" if overrides else "the default table"
    body = f"""# Generated by scenarios/tools/gen_stage_matrix.py; edit the generator.
name: {name}
rules: {rules}{rt}
description: >
  {cls} at the {stage} stage ({where}): {WHY[cls]}.
servers:
  - name: a
    connections:
      - {{ range: 1, {stage}: {rule_yaml} }}
  - {{ name: b }}
client:
""" + "".join(f"  {c}\n" for c in client) + f"""messages:
  - {{ from: s@x.test, to: [r@y.test] }}
expect:
  status: {status}
  exit: {code}
  recipients: {{ r@y.test: {out} }}
  log:
""" + "".join(f"    - {l}\n" for l in log) + f"""  connections: {conns}{times}
"""
    with open(os.path.join(OUT, name + ".yaml"), "w") as f:
        f.write(body)


for stage, classes in T.items():
    for cls, spec in classes.items():
        scenario(stage, cls, *spec)
