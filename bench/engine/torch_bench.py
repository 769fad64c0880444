#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The engine benchmark's PyTorch peer: the same tails as tailgate and ONNX Runtime, in eager
PyTorch (Debian's torch, so run it with /usr/bin/python3).

Usage:
  /usr/bin/python3 bench/engine/torch_bench.py --arch resnet224|fmnist --onnx MODEL.onnx --list
      print {"torch split": "ONNX tensor", ...} for the split points found in the model's
      split table (so the caller benchmarks the same tails in every runtime)
  /usr/bin/python3 bench/engine/torch_bench.py --arch A --onnx M.onnx --splits S,.. --weights W --check
      run one input through PyTorch, tailgate and ONNX Runtime (the extracted tail) and
      compare the outputs (only meaningful with the file's own weights)
  /usr/bin/python3 bench/engine/torch_bench.py --arch A --onnx MODEL.onnx --splits stem,layer2
      --batches 1,8 [--threads T] [--weights W.pt] [--min-time S] [--min-runs N]
      [--warmup W] [--warmup-time S]   (untimed: at least one run, then until S s or W runs)
      one JSON line per (split, batch): images_per_s (batch / median), p50_ms, p99_ms,
      cpu_util (process CPU time / wall time over the timed runs: ~T when T threads work)

The architecture comes from bench/engine/torch_models.py; sizes (fmnist: widths and blocks per stage)
and the split tensors' shapes are read off `tailgate-model info MODEL`, so nothing is assumed
about which variant was exported. The convolutions' BatchNorms are folded as the ONNX export
did, activations are channels-last (PyTorch's faster CPU layout here; the conversion of the
incoming NCHW split tensor is inside the timed region, as the engine's own reorder is), and
everything runs under torch.inference_mode() with torch.set_num_threads(T).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def split_table(tool, onnx):
    """{tensor name: [dims...] with the batch as -1} from `tailgate-model info`."""
    out = subprocess.run([tool, "info", onnx], check=True, capture_output=True, text=True).stdout
    table, on = {}, False
    for line in out.splitlines():
        if line.startswith("Split points"):
            on = True
            continue
        if on and not line.strip():
            if table:
                break
            continue
        f = line.split()
        if on and len(f) >= 3 and f[0].isdigit() and f[2].startswith("[N"):
            table[f[1]] = [-1] + [int(d) for d in f[2][1:-1].split(",")[1:]]
    return table


def build(arch, table):
    if arch == "resnet224":
        return torch_models.ResNet224()
    # fmnist: widths from the stage outputs' channels, blocks from the block indices seen.
    blocks, widths = [], []
    for k in (1, 2, 3):
        idx = [int(m.group(1)) for n in table
               for m in [re.match(rf"/layer{k}/layer{k}\.(\d+)/", n)] if m]
        if not idx:
            raise SystemExit(f"torch_bench: no /layer{k}/ split points in the model")
        blocks.append(max(idx) + 1)
        widths.append(table[f"/layer{k}/layer{k}.{max(idx)}/relu2/Relu_output_0"][1])
    return torch_models.FmnistAdapter(widths, blocks)


def load_weights(model, arch, path):
    """The same weights as the ONNX file when a state_dict is at hand; timing does not need
    them (they change no shape), so random ones otherwise."""
    if not path or not os.path.exists(path):
        return "random"
    sd = torch.load(path, map_location="cpu")
    target = model.net if arch == "fmnist" else model
    target.load_state_dict(sd)
    return path


def time_tail(model, split, shape, batch, o):
    x = torch.rand([batch] + shape[1:], generator=torch.Generator().manual_seed(1))
    fmt = torch.channels_last if x.dim() == 4 else torch.contiguous_format
    with torch.inference_mode():
        wu0 = time.perf_counter()
        for i in range(max(1, o.warmup)):  # at least one, then until --warmup-time
            if i > 0 and time.perf_counter() - wu0 >= o.warmup_time:
                break
            model.tail(x.contiguous(memory_format=fmt), split)
        lat = []
        c0, w0 = time.process_time(), time.perf_counter()
        while True:
            a = time.perf_counter()
            if len(lat) >= o.max_runs or (len(lat) >= o.min_runs and a - w0 >= o.min_time):
                break
            model.tail(x.contiguous(memory_format=fmt), split)
            lat.append(time.perf_counter() - a)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    lat.sort()

    def pct(p):
        return lat[max(0, -(-len(lat) * p // 100) - 1)]

    p50 = pct(50)
    return {"runtime": "torch", "split": split, "split_name": model.onnx_name(split),
            "batch": batch, "threads": torch.get_num_threads(), "runs": len(lat),
            "images_per_s": round(batch / p50, 1), "p50_ms": round(p50 * 1e3, 4),
            "p99_ms": round(pct(99) * 1e3, 4), "cpu_util": round(cpu / wall, 2)}


def xorshift_input(shape):
    """The input tailgate-model bench and bench/engine/ort_bench.js feed: xorshift32 in [0, 1)."""
    import numpy as np
    n = 1
    for d in shape:
        n *= d
    out, x = np.empty(n, dtype=np.float32), 2463534242
    for i in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = (x >> 8) / 16777216.0
    return out.reshape(shape)


def check(model, o, table):
    """The same outputs from PyTorch, tailgate (`tailgate-model run`) and ONNX Runtime (the
    extracted tail, bench/engine/ort_bench.js --dump) on one input, for each split: proof that the
    three runtimes time the same computation. Prints one JSON line per split."""
    import tempfile
    import numpy as np
    bad = 0
    for split in [s for s in o.splits.split(",") if s]:
        name = model.onnx_name(split)
        with tempfile.TemporaryDirectory() as d:
            x = xorshift_input([o.check_batch] + table[name][1:])
            with torch.inference_mode():
                ref = [t.numpy() for t in model.tail(torch.from_numpy(x), split)]
            np.save(f"{d}/x.npy", x)
            tail = f"{d}/tail.onnx"
            subprocess.run([o.tool, "run", o.onnx, "--split", name, "--input", f"{d}/x.npy",
                            "--output-dir", f"{d}/tg"], check=True, capture_output=True)
            subprocess.run([o.tool, "extract", o.onnx, "--split", name, "--batch",
                            str(o.check_batch), "--output", tail], check=True,
                           capture_output=True)
            ort_js = os.path.join(ROOT, "bench", "engine", "ort_bench.js")
            ort = subprocess.run(["node", ort_js, "--dump", f"{d}/ort", tail],
                                 capture_output=True, text=True)
            outs = sorted(f[:-4] for f in os.listdir(f"{d}/tg"))
            r = {"runtime": "check", "split": split, "split_name": name, "outputs": len(ref)}
            if len(outs) != len(ref):
                r["error"] = f"tailgate wrote {len(outs)} outputs, PyTorch has {len(ref)}"
            else:
                # Graph-output order is the return order; file names sort the same way only by
                # accident, so match by the shapes and take the worst over every pairing tried.
                tg = {n: np.load(f"{d}/tg/{n}.npy") for n in outs}
                names = [n for n in tg]
                diff_tg, diff_ort = 0.0, 0.0
                for k, t in enumerate(ref):
                    cands = [n for n in names if tg[n].shape == t.shape]
                    best = min(cands, key=lambda n: float(np.abs(tg[n] - t).max()))
                    names.remove(best)
                    scale = 1.0 + float(np.abs(t).max())
                    diff_tg = max(diff_tg, float(np.abs(tg[best] - t).max()) / scale)
                    f = f"{d}/ort/{best}.bin"
                    if ort.returncode == 0 and os.path.exists(f):
                        a = np.fromfile(f, dtype=np.float32).reshape(t.shape)
                        diff_ort = max(diff_ort, float(np.abs(a - t).max()) / scale)
                    else:
                        diff_ort = float("nan")
                r.update(tailgate_vs_torch=diff_tg, ort_vs_torch=diff_ort)
                if not diff_tg < 1e-3 or not diff_ort < 1e-3:
                    r["error"] = "outputs differ (relative to the largest magnitude)"
            bad += "error" in r
            print(json.dumps(r), flush=True)
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", required=True, choices=["resnet224", "fmnist"])
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--tool", default=os.path.join(ROOT, "build", "tailgate-model"))
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--check-batch", type=int, default=2)
    ap.add_argument("--splits", default="")
    ap.add_argument("--batches", default="1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weights", default="")
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--min-runs", type=int, default=5)
    ap.add_argument("--max-runs", type=int, default=100000)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--warmup-time", type=float, default=0.2)
    o = ap.parse_args()

    table = split_table(o.tool, o.onnx)
    model = build(o.arch, table)
    if o.list:
        print(json.dumps({s: model.onnx_name(s) for s in model.SPLITS
                          if model.onnx_name(s) in table}))
        return 0
    torch.set_num_threads(o.threads)
    weights = load_weights(model, o.arch, o.weights)
    model = torch_models.fuse_conv_bn(model.eval()).to(memory_format=torch.channels_last)
    if o.check:
        return check(model, o, table)
    failed = 0
    for split in [s for s in o.splits.split(",") if s]:
        name = model.onnx_name(split) if split in model.SPLITS else None
        for b in [int(v) for v in o.batches.split(",")]:
            if name not in table:
                print(json.dumps({"runtime": "torch", "split": split, "batch": b,
                                  "error": f"no split point {name} in {o.onnx}"}), flush=True)
                failed += 1
                continue
            r = time_tail(model, split, table[name], b, o)
            r["weights"] = weights
            print(json.dumps(r), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
