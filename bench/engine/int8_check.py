#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Do ONNX Runtime's int8 and tailgate's int8 compute the same thing? (engine benchmark check)

Usage (numpy: Debian's python3-numpy):

    /usr/bin/python3 bench/engine/int8_check.py --tool build/tailgate-model --onnx M.onnx
        --calib M.calib --split NAME --qdq TAIL.qdq.onnx --inputs fashion-mnist|fashion-mnist-scaled|random
        [--n N] [--threads T] [--work DIR] [--label LABEL] [--min-agree 0.95]
        [--max-rel 0.05] [--min-cos 0.9]
    /usr/bin/python3 bench/engine/int8_check.py --tool build/tailgate-model --onnx M.onnx
        --write-random OUT.npy [--n N] [--seed S]

For one split of one model, N inputs go through:
  - the fp32 head (`tailgate-model run --head`: the split tensor; the inputs themselves at split
    'input'),
  - tailgate's int8 tail (`tailgate-model run --dtype int8 --calib`) and its fp32 tail,
  - ONNX Runtime's int8 tail: the QDQ file `tailgate-model export-qdq --split --batch` wrote,
    run by bench/engine/ort_bench.js --dump --input, a file batch at a time,
and every output the tail computes is compared, ORT int8 against tailgate int8 and each against
tailgate fp32 (and, for Fashion-MNIST, the labels):
  - top-1 class: with Fashion-MNIST inputs (a trained model) the check is that at least
    --min-agree of the inputs agree on every output;
  - the outputs themselves, for a model with random weights (inputs other than
    fashion-mnist): random weights map every input to nearly one output vector (on resnet224
    the input-dependent part is 2% of it with scaled images, 0.5% with noise), and int8
    rounding (about 0.7%) is of that size, so top-1 says little there and is only reported.
    The check: per input |ORT - tailgate| / |tailgate| (L2, median over the inputs) within
    --max-rel (the same quantization, not another), and the input-dependent parts (each
    output minus its engine's mean over the inputs) pointing the same way, median cosine of
    ORT int8's and tailgate int8's at least --min-cos (each input's own answer, not a
    neighbour's: a shuffled batch gives about 0.2).
Inputs: the first N Fashion-MNIST test images (/usr/share/datasets/fashion-mnist, pixel/255,
[N,1,28,28]); the same scaled (nearest) to the model's input size, every channel the same
(fashion-mnist-scaled: inputs a random-weight model tells apart); or N random inputs uniform
in [0, 1) of the model's input shape (seeded; i.i.d. noise images all look alike after a
global pooling).
Prints one JSON object: {"label", "split", "inputs", "n", "centered", "min_agree", "max_rel",
"min_cos", "criterion" ("top1" or "rel"), "ok", "outputs": {name: {"agree", "ort_vs_fp32",
"tg_vs_fp32", "classes" (how many distinct top-1 classes fp32 gave), "rel_ort_tg",
"rel_ort_fp32", "rel_tg_fp32", "cos_ort_tg", "cos_ort_fp32", "cos_tg_fp32", ["ort_acc",
"tg_acc", "fp32_acc"]}}} or, when a step failed, {"label", "split",
"ok": false, "error"}.
Exit status 0 when ok, 1 otherwise.
--write-random writes N random inputs of the model's input shape (uniform in [0, 1), seed S)
to OUT.npy and exits: calibration inputs for a model that has no calibration of its own.
"""

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FMNIST = "/usr/share/datasets/fashion-mnist"


def fmnist_test(n):
    """The first n test images as f32 [n,1,28,28] = pixel/255, and their labels."""
    with gzip.open(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")) as f:
        raw = f.read()
    with gzip.open(os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz")) as f:
        lab = f.read()
    count = int.from_bytes(raw[4:8], "big")
    n = min(n, count)
    x = np.frombuffer(raw, np.uint8, n * 784, 16).reshape(n, 1, 28, 28).astype(np.float32) / 255
    return x, np.frombuffer(lab, np.uint8, n, 8).astype(np.int64)


def input_shape(tool, onnx):
    """The model input's shape without its batch dim, from `tailgate-model info`."""
    out = subprocess.run([tool, "info", onnx], check=True, capture_output=True, text=True).stdout
    m = re.search(r"^\s*0\s+input\s+\[N,([0-9,]+)\]", out, re.M)
    if not m:
        raise RuntimeError(f"{onnx}: no input row in 'tailgate-model info'")
    return [int(d) for d in m.group(1).split(",")]


def random_inputs(a, seed):
    rng = np.random.default_rng(seed)
    return rng.random([a.n] + input_shape(a.tool, a.onnx), dtype=np.float32)


def fmnist_scaled(a):
    """The first n test images scaled (nearest) to the model's input [C,H,W], every channel the
    same: inputs a random-weight model tells apart (i.i.d. noise images all look alike after
    the global pooling)."""
    c, h, w = input_shape(a.tool, a.onnx)
    x, _ = fmnist_test(a.n)
    rows = (np.arange(h) * 28) // h
    cols = (np.arange(w) * 28) // w
    x = x[:, :, rows][:, :, :, cols]
    return np.ascontiguousarray(np.repeat(x, c, axis=1))


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{os.path.basename(cmd[0])} {cmd[1]}: {tail[0]}")
    return r.stdout


def outputs_npy(d):
    return {f[:-4]: np.load(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".npy")}


def outputs_bin(d, n):
    return {f[:-4]: np.fromfile(os.path.join(d, f), np.float32).reshape(n, -1)
            for f in os.listdir(d) if f.endswith(".bin")}


def rel(a, b):
    """Median over the inputs of |a - b| / |b| (L2 per input row)."""
    den = np.maximum(np.linalg.norm(b, axis=1), 1e-30)
    return float(np.median(np.linalg.norm(a - b, axis=1) / den))


def centered_cos(a, b):
    """Median over the inputs of the cosine between a's and b's input-dependent parts."""
    a, b = a - a.mean(0), b - b.mean(0)
    den = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return float(np.median((a * b).sum(1) / den))


def output_ok(r, a, n):
    if a.criterion == "top1":
        return r["agree"] >= a.min_agree * n
    return r["rel_ort_tg"] <= a.max_rel and r["cos_ort_tg"] >= a.min_cos


def compare(o, x, labels, center):
    """Top-1 agreement per output present in all three runs; with center, of each output
    minus the mean fp32 output over the inputs."""
    res = {}
    tg8, tg32, ort8 = o
    for name in sorted(set(tg8) & set(tg32) & set(ort8)):
        ref = tg32[name].reshape(x, -1).mean(0) if center else 0
        a, b, c = ((v[name].reshape(x, -1) - ref).argmax(1) for v in (ort8, tg8, tg32))
        o8, t8, f32 = (v[name].reshape(x, -1).astype(np.float64) for v in (ort8, tg8, tg32))
        r = {"agree": int((a == b).sum()), "ort_vs_fp32": int((a == c).sum()),
             "tg_vs_fp32": int((b == c).sum()), "classes": int(len(np.unique(c))),
             "rel_ort_tg": rel(o8, t8), "rel_ort_fp32": rel(o8, f32), "rel_tg_fp32": rel(t8, f32),
             "cos_ort_tg": centered_cos(o8, t8), "cos_ort_fp32": centered_cos(o8, f32),
             "cos_tg_fp32": centered_cos(t8, f32)}
        if labels is not None:
            r.update(ort_acc=int((a == labels).sum()), tg_acc=int((b == labels).sum()),
                     fp32_acc=int((c == labels).sum()))
        res[name] = r
    return res


def check(a):
    w = a.work
    shutil.rmtree(w, ignore_errors=True)	# nothing of an earlier check may be compared
    os.makedirs(w)
    labels = None
    if a.inputs == "fashion-mnist":
        x, labels = fmnist_test(a.n)
    elif a.inputs == "fashion-mnist-scaled":
        x = fmnist_scaled(a)
    else:
        x = random_inputs(a, 1)
    n = x.shape[0]
    xin, head = os.path.join(w, "x.npy"), os.path.join(w, "head.npy")
    np.save(xin, x)
    th = ["--threads", str(a.threads)]
    if a.split == "input":
        head = xin
    else:
        run([a.tool, "run", a.onnx, "--split", a.split, "--head", "--input", xin, "--output",
             head, "--batch", "32"] + th)
    dirs = {k: os.path.join(w, k) for k in ("tg8", "tg32", "ort8")}
    run([a.tool, "run", a.onnx, "--split", a.split, "--input", head, "--output-dir",
         dirs["tg8"], "--batch", "32", "--dtype", "int8", "--calib", a.calib] + th)
    run([a.tool, "run", a.onnx, "--split", a.split, "--input", head, "--output-dir",
         dirs["tg32"], "--batch", "32"] + th)
    run(["node", os.path.join(HERE, "ort_bench.js"), "--threads", str(a.threads), "--dump",
         dirs["ort8"], "--input", head, a.qdq])
    outs = compare((outputs_npy(dirs["tg8"]), outputs_npy(dirs["tg32"]),
                    outputs_bin(dirs["ort8"], n)), n, labels, a.inputs != "fashion-mnist")
    if not outs:
        raise RuntimeError("no output of the tail is in all three runs")
    a.criterion = "top1" if a.inputs == "fashion-mnist" else "rel"
    ok = all(output_ok(r, a, n) for r in outs.values())
    return {"label": a.label, "split": a.split, "inputs": a.inputs, "n": n,
            "centered": a.inputs != "fashion-mnist", "min_agree": a.min_agree,
            "max_rel": a.max_rel, "min_cos": a.min_cos, "criterion": a.criterion, "ok": ok,
            "outputs": outs}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tool", required=True)
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--calib")
    ap.add_argument("--split")
    ap.add_argument("--qdq")
    ap.add_argument("--inputs", choices=["fashion-mnist", "fashion-mnist-scaled", "random"])
    ap.add_argument("--write-random")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default="build/bench/int8check")
    ap.add_argument("--label", default="")
    ap.add_argument("--min-agree", type=float, default=0.95)
    ap.add_argument("--max-rel", type=float, default=0.05)
    ap.add_argument("--min-cos", type=float, default=0.9)
    a = ap.parse_args()
    if a.write_random:
        np.save(a.write_random, random_inputs(a, a.seed))
        return 0
    if not (a.calib and a.split and a.qdq and a.inputs):
        ap.error("--calib, --split, --qdq and --inputs are required")
    try:
        r = check(a)
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as e:
        r = {"label": a.label, "split": a.split, "ok": False, "error": str(e)}
    print(json.dumps(r), flush=True)
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
