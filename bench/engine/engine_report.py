#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Turn the engine benchmark's raw measurements into its table (standard library only).

Usage: bench/engine/engine_report.py RESULTS.jsonl META.json [--doc docs/BENCHMARKS.md]
       bench/engine/engine_report.py --check-note ARCH CHECK.jsonl WEIGHTS
       bench/engine/engine_report.py --agree-line JSON | --profile-line JSON | --failed META.json

RESULTS.jsonl: one JSON object per measurement, as scripts/bench_engine.sh writes them:
  {"arch", "split", "split_name", "batch", "runtime": tailgate|tailgate_int8|ort|ort_int8|torch,
   "rep", "images_per_s", "p50_ms", "p99_ms", "runs", "cpu_util"?} or {..., "error": "..."}
META.json: {"command", "date", "cpu", "cores", "threads", "reps", "peak": {peak's JSON},
  "flops": {"arch/split": FLOPs per image}, "versions": {...}, "load": [...], "notes": [...],
  "calib": {arch: file}, "int8_agree": [bench/engine/int8_check.py's lines, "label" arch/split],
  "ort_profile": [ort_bench.js --profile's lines with arch, split, batch, "quantized" (the
  Conv/Gemm export-qdq quantized)]}
The two int8 checks: ORT int8 and tailgate int8 agree (int8_check.py's "ok": top-1 on a trained
model, the outputs' distance on a random-weight one), and ORT ran int8 kernels for every
Conv/Gemm export-qdq quantized and no fp32 Conv/Gemm. A failed one is a "CHECK FAILED:" line
(--agree-line, --profile-line print one as each check runs, --failed all of them again) and
marks its cells in the table with "(!)".

Prints the markdown section and, with --doc, puts it into that file between the markers
<!-- bench-engine:begin --> and <!-- bench-engine:end --> (appended when absent). Medians over
the repetitions; p50/p99 are the medians of each run's own percentiles.
"""

import json
import statistics
import sys

RUNTIMES = ["tailgate", "tailgate_int8", "ort", "ort_int8", "torch"]
MARK = " (!)"
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


def rel_text(r, lab):
    """An int8_check.py result on a random-weight model: how close the outputs are; (text, ok)."""
    n = r["n"]
    src = {"fashion-mnist-scaled": "Fashion-MNIST test images scaled to the input",
           "random": "random inputs"}.get(r["inputs"], r["inputs"])
    parts = [f"{name}: |ORT - tailgate| / |tailgate| {o['rel_ort_tg']:.2%} (each vs tailgate "
             f"fp32: ORT {o['rel_ort_fp32']:.2%}, tailgate {o['rel_tg_fp32']:.2%}), cosine of "
             f"the input-dependent parts {o['cos_ort_tg']:.3f} (vs fp32: ORT "
             f"{o['cos_ort_fp32']:.3f}, tailgate {o['cos_tg_fp32']:.3f}), top-1 agreement "
             f"{o['agree']}/{n}" for name, o in r["outputs"].items()]
    head = "" if r["ok"] else "CHECK FAILED: "
    want = (f"; wanted <= {r['max_rel']:.0%} and cosine >= {r['min_cos']}" if not r["ok"]
            else "")
    return (f"{head}{lab}: ORT int8 and tailgate int8 outputs, medians over {n} {src} (random "
            "weights: every input gives nearly one output vector, so top-1 says little): " +
            "; ".join(parts) + f"{want}."), r["ok"]


def agree_text(r):
    """One line on an int8_check.py result; (text, ok)."""
    lab = r.get("label") or r.get("split", "?")
    if "error" in r:
        return f"CHECK FAILED: {lab}: the int8 agreement check did not run: {r['error']}", False
    if r.get("criterion") == "rel":
        return rel_text(r, lab)
    n = r["n"]
    src = ("Fashion-MNIST test images" if r["inputs"] == "fashion-mnist"
           else "random inputs (random weights: nothing real to classify" +
           ("; top-1 of each output minus the mean fp32 output over the inputs, as random "
            "weights put every input in one class" if r.get("centered") else "") + ")")
    parts = []
    for name, o in r["outputs"].items():
        t = f"{name} {o['agree']}/{n}"
        cl = f"{o['classes']} distinct classes in fp32; " if "classes" in o else ""
        if "ort_acc" in o:
            t += f" (accuracy ORT {o['ort_acc']}, tailgate {o['tg_acc']}, fp32 {o['fp32_acc']})"
        else:
            t += (f" ({cl}each vs tailgate fp32: ORT {o['ort_vs_fp32']}, tailgate "
                  f"{o['tg_vs_fp32']})")
        parts.append(t)
    head = "" if r["ok"] else "CHECK FAILED: "
    want = f"; wanted >= {r['min_agree']:.0%} on every output" if not r["ok"] else ""
    return (f"{head}{lab}: ORT int8 and tailgate int8 agree on top-1 for " + ", ".join(parts) +
            f" of {n} {src}{want}."), r["ok"]


def profile_ok(r):
    return ("error" not in r and r.get("fp32_convgemm", 1) == 0 and r.get("int8_convgemm", 0) > 0
            and r["int8_convgemm"] == r.get("quantized", r["int8_convgemm"]))


def profile_text(r):
    """One line on an ort_bench.js --profile result; (text, ok)."""
    lab = f"{r.get('arch', '?')}/{r.get('split', '?')} batch {r.get('batch', '?')}"
    if "error" in r:
        return f"CHECK FAILED: {lab}: ORT's profile could not be read: {r['error']}", False
    ops = ", ".join(f"{k} {v}" for k, v in sorted(r["profile"].items(), key=lambda kv: -kv[1]))
    ok = profile_ok(r)
    q = f" of {r['quantized']} Conv/Gemm quantized" if "quantized" in r else ""
    text = (f"{lab}: ORT ran {r['int8_convgemm']} int8 Conv/Gemm kernels{q}, "
            f"{r['fp32_convgemm']} fp32 Conv/Gemm (nodes by operator: {ops})")
    if not ok:
        text = ("CHECK FAILED: " + text + ": ORT did not run all of the quantized Conv/Gemm "
                "in int8" + (" (it ran fp32 kernels on DequantizeLinear outputs)"
                             if r["fp32_convgemm"] else "") + ".")
    return text + ("" if not ok else "."), ok


def failed_checks(meta):
    out = []
    for r in meta.get("int8_agree", []):
        t, ok = agree_text(r)
        if not ok:
            out.append(t)
    for r in meta.get("ort_profile", []):
        t, ok = profile_text(r)
        if not ok:
            out.append(t)
    return out


def check_marks(meta):
    """(arch, split, batch or None, runtime) whose cells a failed check marks."""
    marks = set()
    for r in meta.get("int8_agree", []):
        if not r.get("ok"):
            a, _, sp = (r.get("label") or "?/?").partition("/")
            marks |= {(a, sp, None, "ort_int8"), (a, sp, None, "tailgate_int8")}
    for r in meta.get("ort_profile", []):
        if not profile_ok(r):
            marks.add((r.get("arch"), r.get("split"), r.get("batch"), "ort_int8"))
    return marks


def marked(marks, arch, sp, b, rt):
    return (arch, sp, None, rt) in marks or (arch, sp, b, rt) in marks


def check_lines(meta, arch):
    """The int8 checks of one model, for its section: agreement per split, then the kernels
    ORT ran, once per split when every batch ran the same."""
    lines = []
    for r in meta.get("int8_agree", []):
        if (r.get("label") or "").partition("/")[0] == arch:
            lines.append("- " + agree_text(r)[0])
    by_split = {}
    for r in meta.get("ort_profile", []):
        if r.get("arch") == arch:
            by_split.setdefault(r.get("split"), []).append(r)
    for sp, rs in by_split.items():
        texts = [profile_text(r) for r in rs]
        same = all("error" not in r and r.get("profile") == rs[0].get("profile") and
                   r.get("quantized") == rs[0].get("quantized") for r in rs)
        if same and texts and all(ok for _, ok in texts):
            bs = "/".join(str(r["batch"]) for r in rs)
            lines.append("- " + texts[0][0].replace(f"batch {rs[0]['batch']}", f"batch {bs}"))
        else:
            lines += ["- " + t for t, _ in texts]
    return lines


def report(rows, meta):
    S = summarize(rows)
    peak = meta.get("peak", {})
    # The denominator: one core's measured peak times the threads. peak's all-thread figure is
    # shown too, but on a shared machine it is what the other tenants left over.
    pk32 = peak.get("fp32_gflops_1t", 0) * meta["threads"] if peak else None
    pk8 = peak.get("int8_gops_1t", 0) * meta["threads"] if peak else None
    lines = ["## Engine: tailgate vs ONNX Runtime vs PyTorch", ""]
    marks = check_marks(meta)
    failed = failed_checks(meta)
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
    if meta.get("quiet_note"):
        lines += ["", meta["quiet_note"]]
    if meta.get("loaded_note"):
        lines += ["", meta["loaded_note"]]
    lines.append("")
    lines += ["Images/s = batch / median latency of one run; p50/p99 = latency of one run "
              "of the batch (ms); % peak = images/s x tail FLOPs per image / fp32 peak. "
              "tailgate: `tailgate-model bench`; ORT: onnxruntime-node, CPU EP, the tail "
              "written by `tailgate-model extract`; PyTorch: eager, inference_mode, "
              "channels-last, BN folded. tailgate int8: `tailgate-model bench --dtype int8 "
              "--calib C`; ORT int8: the same ORT on the QDQ tail `tailgate-model export-qdq "
              "--calib C --split S --batch B` writes (tailgate's quantization: u8 activations, "
              "s8 per-channel weights), so both int8 columns run one quantization; C: " +
              (", ".join(f"{a} `{c}`" for a, c in meta.get("calib", {}).items()) or "none") +
              ". % peak of the int8 columns is of the int8 (VPDPBUSD) peak. "
              f"{MARK.strip()} marks a cell whose int8 check failed (see Checks).", ""]
    if failed:
        lines += ["**CHECK FAILED** (" + str(len(failed)) + "):", ""]
        lines += [f"- {t}" for t in failed] + [""]
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
                     "tailgate int8 img/s | ORT img/s | p50 / p99 ms | ORT int8 img/s | "
                     "PyTorch img/s | p50 / p99 ms | tailgate / ORT | tailgate int8 / ORT int8 | "
                     "tailgate / PyTorch | % peak tg / tg int8 / ORT / ORT int8 / PT |")
        lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
                     "---: | ---: | ---: | ---: |")
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
                m = {rt: MARK if marked(marks, arch, sp, b, rt) else "" for rt in RUNTIMES}
                r8 = ratio(g['tailgate_int8'], g['ort_int8'])
                lines.append(
                    f"| {label} | {b} | {cell(g['tailgate'], 'ips')} | "
                    f"{cell(g['tailgate'], 'lat')} | "
                    f"{cell(g['tailgate_int8'], 'ips')}{m['tailgate_int8']} | "
                    f"{cell(g['ort'], 'ips')} | {cell(g['ort'], 'lat')} | "
                    f"{cell(g['ort_int8'], 'ips')}{m['ort_int8']} | "
                    f"{cell(g['torch'], 'ips')} | {cell(g['torch'], 'lat')} | "
                    f"{ratio(g['tailgate'], g['ort'])} | "
                    f"{r8}{MARK if r8 != 'n/a' and (m['ort_int8'] or m['tailgate_int8']) else ''} | "
                    f"{ratio(g['tailgate'], g['torch'])} | "
                    f"{peak_frac(g['tailgate'], fl, pk32)} / "
                    f"{peak_frac(g['tailgate_int8'], fl, pk8)} / {peak_frac(g['ort'], fl, pk32)} / "
                    f"{peak_frac(g['ort_int8'], fl, pk8)} / {peak_frac(g['torch'], fl, pk32)} |")
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
                  "ORT / ORT int8 / PyTorch, then tailgate / ORT and tailgate int8 / ORT int8):",
                  ""]
        lines.append("| split | " + " | ".join(f"batch {b}" for b in batches) + " |")
        lines.append("| --- |" + " ---: |" * len(batches))
        for sp in splits:
            cells = []
            for b in batches:
                v = [best.get((sp, b, rt)) for rt in RUNTIMES]
                rr = f"{v[0] / v[2]:.2f}" if v[0] and v[2] else "n/a"
                r8 = f"{v[1] / v[3]:.2f}" if v[1] and v[3] else "n/a"
                cells.append(" / ".join(fmt_ips(x) for x in v) + f" ({rr}; {r8})")
            lines.append(f"| {sp} | " + " | ".join(cells) + " |")
        lines.append("")
        # Geometric mean of the ratios, per batch: one number per batch size to remember.
        for num, den, what in (("tailgate", "ort", "tailgate / ORT"),
                               ("tailgate_int8", "ort_int8", "tailgate int8 / ORT int8")):
            gm = []
            for b in batches:
                rs = [S[(arch, sp, b, num)]["ips"] / S[(arch, sp, b, den)]["ips"]
                      for sp in splits
                      if "error" not in S.get((arch, sp, b, num), {"error": 1})
                      and "error" not in S.get((arch, sp, b, den), {"error": 1})]
                if rs:
                    gm.append(f"batch {b}: {statistics.geometric_mean(rs):.2f}")
            if gm:
                lines += [f"{what}, geometric mean over the splits: " + ", ".join(gm) + ".", ""]
        chk = check_lines(meta, arch)
        if chk:
            lines += [f"Checks ({arch}, int8):", ""] + chk + [""]
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
               for rt in ("ort", "ort_int8", "torch")
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
    if len(args) == 2 and args[0] in ("--agree-line", "--profile-line"):
        fn = agree_text if args[0] == "--agree-line" else profile_text
        print("bench-engine: " + fn(json.loads(args[1]))[0])
        return 0
    if len(args) == 2 and args[0] == "--failed":
        with open(args[1]) as f:
            failed = failed_checks(json.load(f))
        for t in failed:
            print("bench-engine: " + t)
        if not failed:
            print("bench-engine: int8 checks: all passed")
        return 1 if failed else 0
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
