#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# The "Confluence batching" table of docs/BENCHMARKS.md from scripts/bench_confluence.sh's rows
# (BUILD/confluence/rows.txt: "part mode rep load_before load_after key=value..."): medians
# per (part, mode), segments and auto over whole tails, then the raw rows.
# Usage: scripts/confluence_table.py ROWS
import statistics
import sys

PARTS = [
    ("r224-sat", "resnet224 fp32, splits 7/11/15, saturation (closed loop of 64)"),
    ("r224-load", "resnet224 fp32, splits 7/11/15, fixed load"),
    ("fm-sat", "fmnist int8 + exits, splits 0/4/6/8, saturation (closed loop of 256)"),
    ("fm-load", "fmnist int8 + exits, splits 0/4/6/8, fixed load, 100 ms deadlines"),
    ("fm-noexit-sat", "fmnist int8, no exits, saturation (closed loop of 256)"),
    ("fm32-sat", "fmnist fp32 + exits, saturation (closed loop of 256)"),
    ("fm32-load", "fmnist fp32 + exits, fixed load, 100 ms deadlines"),
]
MODES = ["whole", "segment", "auto"]


def parse(path):
    rows = []
    with open(path) as f:
        for line in f:
            w = line.split()
            if len(w) < 6:
                continue
            kv = dict(x.split("=", 1) for x in w[5:] if "=" in x)
            rows.append({"part": w[0], "mode": w[1], "rep": w[2], "l0": w[3], "l1": w[4],
                         **kv})
    return rows


def med(vals):
    vals = [float(v) for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, nd=1):
    return "-" if v is None else f"{v:.{nd}f}"


def early_share(r):
    ex = [int(x) for x in r.get("exits", "").split(",") if x != ""]
    ok = int(r.get("ok", 0))
    if not ex or ok == 0:
        return None
    # The final exit is the last output of the shipped models.
    return 100.0 * (ok - ex[-1]) / ok


def main():
    rows = parse(sys.argv[1])
    print("| load | mode | OK/s | p50 / p99 ms | samples per batch | batches per answer "
          "| answered early | refused | layout at the end (auto) | OK/s over whole tails |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for part, title in PARTS:
        pr = [r for r in rows if r["part"] == part]
        if not pr:
            continue
        base = med(r["ok_per_s"] for r in pr if r["mode"] == "whole")
        for mode in MODES:
            mr = [r for r in pr if r["mode"] == mode]
            if not mr:
                continue
            ok = med(r["ok_per_s"] for r in mr)
            p50 = med(r.get("p50_ms") for r in mr)
            p99 = med(r.get("p99_ms") for r in mr)
            mb = med(r["mean_batch"] for r in mr)
            bpa = med(r["batches_per_ok"] for r in mr)
            es = med(early_share(r) for r in mr)
            ref = med(int(r.get("overloaded", 0)) + int(r.get("infeasible", 0)) for r in mr)
            lay = ", ".join(r.get("layout", "?") for r in mr) if mode == "auto" else ""
            ratio = ok / base if ok is not None and base else None
            print(f"| {title} | {mode} | {fmt(ok)} | {fmt(p50)} / {fmt(p99)} | {fmt(mb)} | "
                  f"{fmt(bpa, 2)} | {fmt(es, 0) + '%' if es is not None else '-'} | "
                  f"{fmt(ref, 0)} | {lay} | {fmt(ratio, 2)} |")
    print()
    print("Rows (part, mode, rep, load average before / after, sched-bench's line):")
    print()
    with open(sys.argv[1]) as f:
        for line in f:
            print("    " + line.rstrip())


if __name__ == "__main__":
    main()
