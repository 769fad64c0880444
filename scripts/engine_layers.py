#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Where a tail's time goes, layer by layer, in tailgate and in ONNX Runtime side by side.

The engine benchmark (scripts/bench_engine.sh) says how fast each runtime runs a tail; this
says why one is slower: it times the same tail (model, split, batch, dtype) in

  - tailgate: `tailgate-model bench` with ONEDNN_VERBOSE=1, every primitive oneDNN executed
    with its time; the last whole run of the plan is found as the period of the sequence
    (a run executes the same primitives in the same order), and each primitive's time is the
    median over the last --runs periods;
  - ONNX Runtime: bench/engine/ort_bench.js --profile on the tail `tailgate-model extract`
    (f32) or `tailgate-model export-qdq` (int8: tailgate's quantization, ORT's int8 kernels)
    writes; each node's time is the median over --runs profiled runs after a first one;

and prints the time of each kind of work (convolutions, reorders and quantize/dequantize,
pooling, element-wise, inner product / Gemm) in each, then the convolutions in execution
order (each runtime's own order: they need not match row by row; ORT's node names say which
ONNX Conv it is), with the GFLOP/s each reaches.

Usage: scripts/engine_layers.py MODEL.onnx --split S --batch B [--dtype f32|int8]
           [--calib C] [--threads T] [--runs N] [--build build] [--json]
Run on a quiet machine: the two runtimes are timed one after the other.
"""

import argparse
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# oneDNN primitive kind -> the kind of work; ORT op type -> the same.
DNNL_KIND = {"convolution": "conv", "deconvolution": "conv", "reorder": "reorder/quant",
             "pooling": "pool", "pooling_v2": "pool", "eltwise": "eltwise", "binary": "eltwise",
             "sum": "eltwise", "inner_product": "gemm", "matmul": "gemm",
             "softmax": "other", "softmax_v2": "other", "concat": "other"}
ORT_KIND = {"Conv": "conv", "FusedConv": "conv", "NchwcConv": "conv", "QLinearConv": "conv",
            "ConvInteger": "conv",
            "QuantizeLinear": "reorder/quant", "DequantizeLinear": "reorder/quant",
            "ReorderInput": "reorder/quant", "ReorderOutput": "reorder/quant",
            "Transpose": "reorder/quant",
            "MaxPool": "pool", "AveragePool": "pool", "GlobalAveragePool": "pool",
            "NchwcMaxPool": "pool", "NchwcGlobalAveragePool": "pool", "QLinearGlobalAveragePool":
            "pool", "QLinearAveragePool": "pool",
            "Add": "eltwise", "Relu": "eltwise", "QLinearAdd": "eltwise", "Sum": "eltwise",
            "Gemm": "gemm", "FusedGemm": "gemm", "QGemm": "gemm", "MatMul": "gemm",
            "QLinearMatMul": "gemm"}
KINDS = ["conv", "reorder/quant", "pool", "eltwise", "gemm", "other"]


def run(cmd, env=None):
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"engine_layers: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return p


def conv_flops(desc):
    """2 x MACs of a oneDNN convolution from its problem descriptor (mbX_gX_icXocX_ih..)."""
    d = dict((k, int(v)) for k, v in re.findall(r"([a-z]+)(\d+)", desc))
    g = d.get("g", 1)
    oh, ow = d.get("oh", 1), d.get("ow", 1)
    kh, kw = d.get("kh", 1), d.get("kw", 1)
    return 2 * d.get("mb", 1) * d["oc"] * (d["ic"] // g) * oh * ow * kh * kw


def period(keys):
    """The length of the repeating run at the end of keys (the plan's last whole run)."""
    for p in range(1, len(keys) // 2 + 1):
        if keys[-p:] == keys[-2 * p:-p]:
            return p
    return len(keys)


def tailgate_layers(a, tool):
    cmd = [tool, "bench", a.model, "--split", a.split, "--batch", str(a.batch), "--threads",
           str(a.threads), "--dtype", a.dtype, "--iters", str(a.runs + 2), "--warmup", "2"]
    if a.calib:
        cmd += ["--calib", a.calib]
    env = dict(os.environ, ONEDNN_VERBOSE="1")
    out = run(cmd, env).stdout.splitlines()
    rows = []
    for line in out:
        f = line.split(",")
        if len(f) < 5 or f[0] != "onednn_verbose" or f[1] != "exec":
            continue
        try:
            ms = float(f[-1])
        except ValueError:
            continue
        rows.append((f[3], f[4], f[-2], ms))	# kind, implementation, problem, ms
    if not rows:
        sys.exit("engine_layers: no ONEDNN_VERBOSE exec lines (is libdnnl built with verbose?)")
    keys = [r[:3] for r in rows]
    p = period(keys)
    n = min(a.runs, len(rows) // p)
    layers = []
    for i in range(p):
        times = [rows[len(rows) - (k + 1) * p + i][3] for k in range(n)]
        kind, impl, desc, _ = rows[len(rows) - p + i]
        layers.append({"kind": DNNL_KIND.get(kind, "other"), "op": f"{kind} {impl}",
                       "desc": desc, "ms": statistics.median(times),
                       "flops": conv_flops(desc) if kind == "convolution" else 0})
    return layers


def ort_file(a, tool, tmp):
    f = os.path.join(tmp, "tail.onnx")
    if a.dtype == "int8":
        cmd = [tool, "export-qdq", a.model, "--split", a.split, "--batch", str(a.batch),
               "--output", f]
        if a.calib:
            cmd += ["--calib", a.calib]
    else:
        cmd = [tool, "extract", a.model, "--split", a.split, "--batch", str(a.batch),
               "--output", f]
    run(cmd)
    return f


def ort_layers(a, tool):
    with tempfile.TemporaryDirectory(prefix="engine_layers.") as tmp:
        f = ort_file(a, tool, tmp)
        prof = os.path.join(tmp, "prof")
        run(["node", "bench/engine/ort_bench.js", "--threads", str(a.threads), "--profile",
             prof, "--profile-runs", str(a.runs + 1), f])
        files = sorted(glob.glob(os.path.join(prof, "*.json")), key=os.path.getmtime)
        if not files:
            sys.exit("engine_layers: ORT wrote no profile")
        ev = json.load(open(files[-1]))
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in ev
                  if e.get("cat") == "Session" and e.get("name") == "model_run")
    if not runs:
        sys.exit("engine_layers: no model_run in ORT's profile")
    runs = runs[1:] or runs		# the first run pays for first-touch allocations
    times, op = {}, {}
    for e in ev:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        if not any(t0 <= e["ts"] <= t1 for t0, t1 in runs):
            continue
        name = e["name"][:-len("_kernel_time")]
        times.setdefault(name, []).append(e["dur"] / 1000.0)
        op[name] = e.get("args", {}).get("op_name", "?")
    return [{"kind": ORT_KIND.get(op[n], "other"), "op": op[n], "desc": n,
             "ms": statistics.median(t)} for n, t in times.items()]


def totals(layers):
    t = {k: 0.0 for k in KINDS}
    for r in layers:
        t[r["kind"]] += r["ms"]
    return t


def report(a, tg, ort):
    tt, ot = totals(tg), totals(ort)
    print(f"{a.model} split {a.split} batch {a.batch} {a.dtype}, {a.threads} threads "
          f"(median of {a.runs} runs per primitive or node in each)\n")
    print("| work | tailgate ms | ORT ms | tailgate / ORT |")
    print("| --- | ---: | ---: | ---: |")
    for k in KINDS + ["total"]:
        x = sum(tt.values()) if k == "total" else tt[k]
        y = sum(ot.values()) if k == "total" else ot[k]
        if x == 0 and y == 0:
            continue
        r = f"{x / y:.2f}" if y > 0 else "-"
        print(f"| {k} | {x:.3f} | {y:.3f} | {r} |")
    tc = [r for r in tg if r["kind"] == "conv"]
    oc = [r for r in ort if r["kind"] == "conv"]
    print(f"\nConvolutions in execution order ({len(tc)} in tailgate, {len(oc)} in ORT):\n")
    print("| # | oneDNN problem | tailgate impl | tailgate ms | GFLOP/s | ORT node | ORT ms | "
          "GFLOP/s | tailgate / ORT |")
    print("| ---: | --- | --- | ---: | ---: | --- | ---: | ---: | ---: |")
    for i in range(max(len(tc), len(oc))):
        t = tc[i] if i < len(tc) else None
        o = oc[i] if i < len(oc) else None
        fl = t["flops"] if t else 0
        cells = [str(i + 1), t["desc"] if t else "", t["op"].split(" ", 1)[1] if t else "",
                 f"{t['ms']:.3f}" if t else "", f"{fl / t['ms'] / 1e6:.0f}" if t and t["ms"] else "",
                 f"{o['op']} {o['desc']}" if o else "", f"{o['ms']:.3f}" if o else "",
                 f"{fl / o['ms'] / 1e6:.0f}" if o and o["ms"] and fl else "",
                 f"{t['ms'] / o['ms']:.2f}" if t and o and o["ms"] else ""]
        print("| " + " | ".join(cells) + " |")
    other = [r for r in tg if r["kind"] != "conv"]
    print("\ntailgate's other primitives, largest first:\n")
    for r in sorted(other, key=lambda r: -r["ms"])[:12]:
        print(f"- {r['op']} {r['desc']}: {r['ms']:.3f} ms")
    print("\nORT's other nodes, largest first:\n")
    for r in sorted([r for r in ort if r["kind"] != "conv"], key=lambda r: -r["ms"])[:12]:
        print(f"- {r['op']} {r['desc']}: {r['ms']:.3f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--split", required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--dtype", choices=["f32", "int8"], default="f32")
    ap.add_argument("--calib")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--build", default="build")
    ap.add_argument("--json", action="store_true", help="print both layer lists as JSON")
    a = ap.parse_args()
    if a.batch < 1 or a.runs < 1 or a.threads < 1:
        sys.exit("engine_layers: --batch, --runs and --threads must be at least 1")
    tool = os.path.join(a.build, "tailgate-model")
    tg, ort = tailgate_layers(a, tool), ort_layers(a, tool)
    if a.json:
        json.dump({"tailgate": tg, "ort": ort}, sys.stdout, indent=1)
        print()
    else:
        report(a, tg, ort)


if __name__ == "__main__":
    main()
