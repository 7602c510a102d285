#!/usr/bin/env python3
"""bench_network_peers.py - an external client measured over the simulated
network: `detour bench --network lan --client builtin,postfix --faults
refuse --messages 3 --json F` must give Postfix's refuse row 3 samples, all
3 messages taken by the backup (not "not measured"), each no faster than
the round trip the profile puts on a server's link (1 ms: the path went
through the simulation).

While the bench runs, every process of the client's instance (TMPDIR is a
folder of the test's own, so the instance's folder is known) is looked at:
each must be in the run's client namespace (/run/netns/dt-*-c), none in
the test's own network namespace, and Postfix's own processes (master,
qmgr, smtp, ...) in a private PID namespace (the manifest's isolation).
Afterwards nothing of the instance is left: folder, processes, mounts.

  bench_network_peers.py DETOUR SOURCE_DIR OUTDIR

Exits 77 with the reason when not root, the network simulation cannot run
here (the bench then says so and runs on loopback) or Postfix is not
installed.
"""
import json
import os
import shutil
import subprocess
import sys
import time

POSTFIX = ("master", "qmgr", "pickup", "smtp", "smtpd", "cleanup",
           "trivial-rewrite", "bounce", "anvil", "tlsmgr", "scache")
LAN_RTT_MS = 1.0  # bench/networks/lan.yaml: servers { delay: 1ms }


def skip(why):
    print("SKIP: " + why)
    sys.exit(77)


def fail(why):
    print("FAIL: " + why)
    sys.exit(1)


def ns_inode(path):
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def client_namespaces():
    """Inodes of the simulated runs' client namespaces now."""
    try:
        names = [n for n in os.listdir("/run/netns") if n.endswith("-c")]
    except OSError:
        return set()
    return {ns_inode("/run/netns/" + n) for n in names} - {None}


def names_instance(pid, tmp):
    """Its command line or environment names the instance's folder
    (TMPDIR/detour-postfix-XXXXXX): every command of the instance has
    DETOUR_CLIENT_DIR; Postfix's daemons, whose master cleans the
    environment, keep MAIL_CONFIG (a folder in it)."""
    mark = os.path.join(tmp, "detour-postfix-").encode()
    for what in ("cmdline", "environ"):
        with open("/proc/%s/%s" % (pid, what), "rb") as f:
            if mark in f.read():
                return True
    return False


def instance_processes(tmp):
    """(pid, comm, netns inode, pidns inode) of the instance's processes
    (names_instance)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/comm" % pid) as f:
                comm = f.read().strip()
            if not names_instance(pid, tmp):
                continue
            net = ns_inode("/proc/%s/ns/net" % pid)
            pidns = ns_inode("/proc/%s/ns/pid" % pid)
        except OSError:
            continue  # gone meanwhile
        if net is not None and pidns is not None:
            found.append((int(pid), comm, net, pidns))
    return found


def watch(bench, tmp):
    """Samples the instance's processes until the bench exits (bounded by
    its own timeout). Returns (samples, client namespaces seen)."""
    seen, clients = {}, set()
    while bench.poll() is None:
        clients |= client_namespaces()
        for p in instance_processes(tmp):
            seen.setdefault((p[0], p[1]), p)
        time.sleep(0.02)
    return list(seen.values()), clients


def check_processes(seen, clients):
    own_net = ns_inode("/proc/self/ns/net")
    own_pid = ns_inode("/proc/self/ns/pid")
    postfix = [p for p in seen if p[1] in POSTFIX]
    if not postfix:
        fail("no Postfix process of the instance was seen during the run "
             "(seen: %s)" % sorted({p[1] for p in seen}))
    for pid, comm, net, pidns in seen:
        if net == own_net:
            fail("%s (pid %d) runs in the test's own network namespace, not "
                 "the client's" % (comm, pid))
        if net not in clients:
            fail("%s (pid %d) is in a network namespace that is not a "
                 "simulated run's client namespace" % (comm, pid))
    for pid, comm, net, pidns in postfix:
        if pidns == own_pid:
            fail("Postfix's %s (pid %d) is not isolated: it shares the "
                 "test's PID namespace" % (comm, pid))
    print("%d processes of the instance seen, all in the client namespace; "
          "Postfix's (%s) in a private PID namespace"
          % (len(seen), " ".join(sorted({p[1] for p in postfix}))))


def row(doc, client, fault):
    for r in doc["results"]:
        if r["client"] == client and r["fault"] == fault:
            return r
    fail("no %s %s row in the JSON" % (client, fault))


def check_rows(doc):
    if not doc.get("network"):
        skip("the bench ran on loopback: %s" % doc.get("network_note"))
    if doc["network"] != "lan":
        fail("network %r, expected lan" % doc["network"])
    for client in ("builtin", "postfix"):
        r = row(doc, client, "refuse")
        if not r.get("measured"):
            fail("%s refuse not measured: %s" % (client, r.get("why")))
        samples = r.get("samples_ms", [])
        if len(samples) != 3 or r["ok"] != 3 or r["outcomes"]["backup"] != 3:
            fail("%s refuse: %d samples, %s ok, outcomes %s; expected 3 on "
                 "the backup" % (client, len(samples), r["ok"], r["outcomes"]))
        if min(samples) < LAN_RTT_MS:
            fail("%s refuse: a sample of %.3f ms is below the network's "
                 "round trip (%.1f ms)" % (client, min(samples), LAN_RTT_MS))
        print("%s refuse over lan: 3/3 to the backup, p50 %.3f ms"
              % (client, r["p50_ms"]))


def check_nothing_left(tmp):
    left = os.listdir(tmp)
    if left:
        fail("left in TMPDIR: %s" % left)
    procs = instance_processes(tmp)
    if procs:
        fail("processes left: %s" % procs)
    with open("/proc/self/mountinfo") as f:
        mounts = [l for l in f if tmp in l]
    if mounts:
        fail("mounts left: %s" % mounts)


def main():
    detour, source, out = sys.argv[1:4]
    if os.geteuid() != 0:
        skip("not root (the simulated network and Postfix's isolation need "
             "it)")
    if not os.access("/usr/sbin/postfix", os.X_OK):
        skip("Postfix is not installed (Debian package postfix)")
    shutil.rmtree(out, ignore_errors=True)
    tmp = os.path.join(out, "tmp")
    os.makedirs(tmp)
    os.chmod(out, 0o755)
    os.chmod(tmp, 0o755)  # Postfix drops root and walks into it
    js = os.path.join(out, "lan.json")
    env = dict(os.environ, TMPDIR=tmp)
    with open(os.path.join(out, "bench.out"), "w") as log:
        bench = subprocess.Popen(
            ["timeout", "240", detour, "bench", "--network", "lan",
             "--client", "builtin,postfix", "--faults", "refuse",
             "--messages", "3", "--throughput-concurrency", "0",
             "--json", js],
            cwd=source, env=env, stdout=log, stderr=subprocess.STDOUT)
        seen, clients = watch(bench, tmp)
    with open(os.path.join(out, "bench.out")) as f:
        text = f.read()
    if bench.returncode != 0 or not os.path.exists(js):
        print(text)
        fail("the bench exited %d" % bench.returncode)
    with open(js) as f:
        doc = json.load(f)
    check_rows(doc)
    check_processes(seen, clients)
    check_nothing_left(tmp)
    print("PASS")


if __name__ == "__main__":
    main()
