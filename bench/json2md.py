#!/usr/bin/env python3
"""json2md.py - the Markdown table of a `detour bench --json` file (the
tables in bench/README.md are made with it):

    python3 bench/json2md.py bench.json [more.json ...]

A later file's (client, fault) cells replace an earlier one's.
"""
import json
import sys


def did(r):
    names = [("primary", "primary"), ("backup", "backup"), ("bounced", "bounced"),
             ("deferred", "deferred"), ("not_sent", "not sent")]
    parts = ["%s %d" % (label, r["outcomes"][k]) for k, label in names if r["outcomes"][k]]
    text = ", ".join(parts)
    if r.get("stopped_early"):
        text += " (first 2 failed: rest skipped)"
    if r.get("timed_out"):
        text += " (timed out)"
    return text


def main(paths):
    # later files replace the (client, fault) cells of earlier ones
    d = json.load(open(paths[0]))
    rows = d["results"]
    for p in paths[1:]:
        for r in json.load(open(p))["results"]:
            same = [i for i, x in enumerate(rows)
                    if x["client"] == r["client"] and x["fault"] == r["fault"]]
            if same:
                rows[same[0]] = r
            else:
                rows.append(r)
    faults = []
    for r in rows:
        if r["fault"] not in faults:
            faults.append(r["fault"])
    print("| fault | client | N | p50 | p90 | p99 | max | x fastest | did | budget |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for f in faults:
        cells = [r for r in rows if r["fault"] == f]
        meas = [r["p50_ms"] for r in cells if r.get("measured") and r.get("ok")]
        best = min(meas) if meas else 0
        # clients not measured for the same reason: one row
        skipped = {}
        for r in cells:
            if not r.get("measured"):
                why = r["why"]
                if why.startswith(r["client"] + ": "):
                    why = why[len(r["client"]) + 2:]
                skipped.setdefault(why, []).append(r["client"])
        for r in cells:
            if not r.get("measured"):
                continue
            b = r.get("budget_ms")
            budget = "?" if b is None else "%d" % b
            if r.get("budget_note"):
                budget += " (%s)" % r["budget_note"]
            if r["ok"]:
                print("| %s | %s | %d | %.3f | %.3f | %.3f | %.3f | %.1f | %s | %s |" % (
                    f, r["client"], r["ok"], r["p50_ms"], r["p90_ms"], r["p99_ms"],
                    r["max_ms"], r["p50_ms"] / best if best else 0, did(r), budget))
            else:
                print("| %s | %s | 0 | - | - | - | - | - | %s | %s |" % (
                    f, r["client"], did(r), budget))
        for why, clients in skipped.items():
            print("| %s | %s | - | | | | | | not measured: %s | |" % (f, ", ".join(clients), why))
    tp = d.get("throughput")
    for p in paths[1:]:
        tp = json.load(open(p)).get("throughput") or tp
    if tp:
        print()
        print("Throughput of the built-in engine, %d engines, %d messages: %.0f msg/s "
              "with the primary up, %.0f msg/s with it refusing (%.2f)." % (
                  tp["concurrency"], tp["messages"], tp["up"]["per_sec"],
                  tp["down_refuse"]["per_sec"], tp["ratio"]))


if __name__ == "__main__":
    main(sys.argv[1:])
