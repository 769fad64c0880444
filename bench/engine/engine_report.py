#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Turn the engine benchmark's raw measurements into its table (standard library only).

Usage: bench/engine/engine_report.py RESULTS.jsonl META.json [--doc docs/BENCHMARKS.md]
       bench/engine/engine_report.py --check-note ARCH CHECK.jsonl WEIGHTS

RESULTS.jsonl: one JSON object per measurement, as scripts/bench_engine.sh writes them:
  {"arch", "split", "split_name", "batch", "runtime": tailgate|tailgate_int8|ort|torch,
   "rep", "images_per_s", "p50_ms", "p99_ms", "runs", "cpu_util"?} or {..., "error": "..."}
META.json: {"command", "date", "cpu", "cores", "threads", "reps", "peak": {peak's JSON},
  "flops": {"arch/split": FLOPs per image}, "versions": {...}, "load": [...], "notes": [...]}

Prints the markdown section and, with --doc, puts it into that file between the markers
<!-- bench-engine:begin --> and <!-- bench-engine:end --> (appended when absent). Medians over
the repetitions; p50/p99 are the medians of each run's own percentiles.
"""

import json
import statistics
import sys

RUNTIMES = ["tailgate", "tailgate_int8", "ort", "torch"]
BEGIN, END = "<!-- bench-engine:begin -->", "<!-- bench-engine:end -->"


def med(xs):
    return statistics.median(xs) if xs else None


def fmt_ips(v):
    if v is None:
        return "n/a"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def fmt_ms(v):
    return "n/a" if v is None else f"{v:.3g}"


def summarize(rows):
    """(arch, split, batch, runtime) -> dict of medians, or {"error": text}."""
    groups = {}
    for r in rows:
        groups.setdefault((r["arch"], r["split"], r["batch"], r["runtime"]), []).append(r)
    out = {}
    for k, rs in groups.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            out[k] = {"error": rs[0]["error"]}
            continue
        out[k] = {"ips": med([r["images_per_s"] for r in ok]),
                  "p50": med([r["p50_ms"] for r in ok]),
                  "p99": med([r["p99_ms"] for r in ok]),
                  "n": len(ok),
                  "cpu": med([r["cpu_util"] for r in ok if "cpu_util" in r])}
    return out


def cell(s, key):
    if s is None:
        return "n/a"
    if "error" in s:
        return "failed"
    return fmt_ips(s["ips"]) if key == "ips" else f"{fmt_ms(s['p50'])} / {fmt_ms(s['p99'])}"


def ratio(a, b):
    if not a or not b or "error" in a or "error" in b:
        return "n/a"
    return f"{a['ips'] / b['ips']:.2f}"


def peak_frac(s, flops, peak_gflops):
    if not s or "error" in s or not flops or not peak_gflops:
        return "n/a"
    return f"{100 * s['ips'] * flops / (peak_gflops * 1e9):.0f}%"


def report(rows, meta):
    S = summarize(rows)
    peak = meta.get("peak", {})
    # The denominator: one core's measured peak times the threads. peak's all-thread figure is
    # shown too, but on a shared machine it is what the other tenants left over.
    pk32 = peak.get("fp32_gflops_1t", 0) * meta["threads"] if peak else None
    pk8 = peak.get("int8_gops_1t", 0) * meta["threads"] if peak else None
    lines = ["## Engine: tailgate vs ONNX Runtime vs PyTorch", ""]
    lines += [f"Command: `{meta['command']}`  ",
              f"Date: {meta['date']}  ",
              f"Machine: {meta['cpu']}, {meta['cores']} cores; {meta['threads']} threads "
              f"for every runtime; medians of {meta['reps']} repetitions, runtimes "
              "interleaved.  "]
    if peak:
        lines.append(f"Peak (bench/engine/peak.c, AVX-512 on registers): fp32 FMA "
                     f"{peak['fp32_gflops_1t']:.0f} GFLOP/s on one thread "
                     f"({peak['fp32_gflops']:.0f} measured on {peak['threads']} at once), int8 "
                     f"VPDPBUSD {peak['int8_gops_1t']:.0f} GOP/s on one thread "
                     f"({peak['int8_gops']:.0f} on {peak['threads']}). % peak below uses one "
                     f"thread's fp32 figure x {meta['threads']} threads = {pk32:.0f} GFLOP/s.  ")
    v = meta.get("versions", {})
    if v:
        lines.append("Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".  ")
    if meta.get("load"):
        lines.append("Load average (1 min) before / after: " +
                     " / ".join(str(x) for x in meta["load"]) + ".")
    lines.append("")
    lines += ["Images/s = batch / median latency of one run; p50/p99 = latency of one run "
              "of the batch (ms); % peak = images/s x tail FLOPs per image / fp32 peak. "
              "tailgate: `tailgate-model bench`; ORT: onnxruntime-node, CPU EP, the tail "
              "written by `tailgate-model extract`; PyTorch: eager, inference_mode, "
              "channels-last, BN folded. tailgate int8: `tailgate-model bench --dtype int8` "
              "(n/a where it does not exist); without a .calib sidecar it calibrates on "
              "synthetic inputs, so its column is speed only; its % peak is of the int8 "
              "(VPDPBUSD) peak.", ""]
    archs = []
    for r in rows:
        if r["arch"] not in archs:
            archs.append(r["arch"])
    for arch in archs:
        splits, batches = [], []
        for r in rows:
            if r["arch"] == arch:
                if r["split"] not in splits:
                    splits.append(r["split"])
                if r["batch"] not in batches:
                    batches.append(r["batch"])
        batches.sort()
        path = meta.get("models", {}).get(arch)
        lines += [f"### {arch}" + (f" (`{path}`)" if path else ""), ""]
        lines.append("| split (tail GFLOP/img) | batch | tailgate fp32 img/s | p50 / p99 ms | "
                     "tailgate int8 img/s | ORT img/s | p50 / p99 ms | PyTorch img/s | "
                     "p50 / p99 ms | tailgate / ORT | tailgate / PyTorch | "
                     "% peak tg / tg int8 / ORT / PT |")
        lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
                     "---: | ---: |")
        for sp in splits:
            fl = meta.get("flops", {}).get(f"{arch}/{sp}")
            name = next((r.get("split_name") for r in rows
                         if r["arch"] == arch and r["split"] == sp and r.get("split_name")), sp)
            label = f"{sp} (`{name}`, {fl / 1e9:.3g})" if fl and name != sp else \
                f"{sp} ({fl / 1e9:.3g})" if fl else sp
            for b in batches:
                g = {rt: S.get((arch, sp, b, rt)) for rt in RUNTIMES}
                if all(x is None for x in g.values()):
                    continue
                lines.append(
                    f"| {label} | {b} | {cell(g['tailgate'], 'ips')} | "
                    f"{cell(g['tailgate'], 'lat')} | {cell(g['tailgate_int8'], 'ips')} | "
                    f"{cell(g['ort'], 'ips')} | {cell(g['ort'], 'lat')} | "
                    f"{cell(g['torch'], 'ips')} | {cell(g['torch'], 'lat')} | "
                    f"{ratio(g['tailgate'], g['ort'])} | {ratio(g['tailgate'], g['torch'])} | "
                    f"{peak_frac(g['tailgate'], fl, pk32)} / "
                    f"{peak_frac(g['tailgate_int8'], fl, pk8)} / {peak_frac(g['ort'], fl, pk32)} / "
                    f"{peak_frac(g['torch'], fl, pk32)} |")
                label = ""
        lines.append("")
        # On a shared machine the median is what the other tenants left; the best repetition
        # is the nearest to an idle machine (cpu_util ~ threads there), so it is shown too.
        best = {}
        for r in rows:
            if r["arch"] == arch and "error" not in r:
                k = (r["split"], r["batch"], r["runtime"])
                best[k] = max(best.get(k, 0), r["images_per_s"])
        lines += [f"Best of the {meta['reps']} repetitions, images/s (tailgate fp32 / int8 / "
                  "ORT / PyTorch, then tailgate / ORT):", ""]
        lines.append("| split | " + " | ".join(f"batch {b}" for b in batches) + " |")
        lines.append("| --- |" + " ---: |" * len(batches))
        for sp in splits:
            cells = []
            for b in batches:
                v = [best.get((sp, b, rt)) for rt in RUNTIMES]
                rr = f"{v[0] / v[2]:.2f}" if v[0] and v[2] else "n/a"
                cells.append(" / ".join(fmt_ips(x) for x in v) + f" ({rr})")
            lines.append(f"| {sp} | " + " | ".join(cells) + " |")
        lines.append("")
        # Geometric mean of the ratios, per batch: one number per batch size to remember.
        gm = []
        for b in batches:
            rs = [S[(arch, sp, b, "tailgate")]["ips"] / S[(arch, sp, b, "ort")]["ips"]
                  for sp in splits
                  if "error" not in S.get((arch, sp, b, "tailgate"), {"error": 1})
                  and "error" not in S.get((arch, sp, b, "ort"), {"error": 1})]
            if rs:
                gm.append(f"batch {b}: {statistics.geometric_mean(rs):.2f}")
        if gm:
            lines += ["tailgate / ORT, geometric mean over the splits: " + ", ".join(gm) + ".",
                      ""]
    cpu = {}
    for (arch, sp, b, rt), s in S.items():
        if s and "error" not in s and s.get("cpu") is not None:
            cpu.setdefault(rt, []).append(s["cpu"])
    if cpu:
        lines += ["CPU time / wall time during the timed runs (median over all rows; "
                  f"{meta['threads']} = every requested thread busy or spinning): " +
                  ", ".join(f"{rt} {med(v):.2f}" for rt, v in sorted(cpu.items())) + ".", ""]
    # Per repetition: how much CPU ORT and PyTorch got (THREADS = the machine was theirs).
    reps = sorted({r["rep"] for r in rows if "rep" in r})
    per = []
    for rep in reps:
        got = [f"{rt} {med([r['cpu_util'] for r in rows if r.get('rep') == rep and r['runtime'] == rt and 'cpu_util' in r]):.2f}"
               for rt in ("ort", "torch")
               if any(r.get("rep") == rep and r["runtime"] == rt and "cpu_util" in r for r in rows)]
        if got:
            per.append(f"repetition {rep}: " + ", ".join(got))
    if per:
        lines += ["CPU time / wall time per repetition (medians): " + "; ".join(per) + ".", ""]
    errs = sorted({(k[0], k[1], k[3], s["error"]) for k, s in S.items() if s and "error" in s})
    if errs:
        lines += ["Failed measurements:", ""]
        lines += [f"- {a} {sp} {rt}: {e}" for a, sp, rt, e in errs[:20]]
        lines.append("")
    lines += [f"- {n}" for n in meta.get("notes", [])]
    return "\n".join(lines).rstrip() + "\n"


def put_doc(path, section):
    try:
        with open(path) as f:
            doc = f.read()
    except FileNotFoundError:
        doc = "# Benchmarks\n"
    block = f"{BEGIN}\n{section}{END}\n"
    if BEGIN in doc and END in doc:
        a, b = doc.index(BEGIN), doc.index(END) + len(END)
        doc = doc[:a] + block.rstrip("\n") + doc[b:]
    else:
        doc = doc.rstrip("\n") + "\n\n" + block
    with open(path, "w") as f:
        f.write(doc if doc.endswith("\n") else doc + "\n")


def check_note(arch, path, weights):
    """One line on bench/engine/torch_bench.py --check's results (JSON lines in path)."""
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.startswith("{")]
    ok = [r for r in rows if "error" not in r]

    def worst(k):
        return max((r[k] for r in ok), default=float("nan"))

    errs = "".join(f"; {r['split']}: {r['error']}" for r in rows if "error" in r)
    return (f"{arch}: one input through all three runtimes ({weights}) at {len(rows)} splits: "
            f"{len(ok)} agree; largest difference relative to the output's magnitude: "
            f"tailgate vs PyTorch {worst('tailgate_vs_torch'):.1e}, ORT vs PyTorch "
            f"{worst('ort_vs_torch'):.1e}{errs}.")


def main():
    args = sys.argv[1:]
    if args and args[0] == "--check-note":
        print(check_note(*args[1:4]))
        return 0
    doc = None
    if "--doc" in args:
        i = args.index("--doc")
        doc = args[i + 1]
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    with open(args[0]) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    with open(args[1]) as f:
        meta = json.load(f)
    section = report(rows, meta)
    sys.stdout.write(section)
    if doc:
        put_doc(doc, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
