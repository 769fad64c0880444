#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Train and export models/clutter-resnet and its bottleneck variant, in one run.

Usage (Debian's PyTorch lives only in the system interpreter; the committed files' command,
with its bounds, is in models/clutter-resnet/TRAINING.md):

    /usr/bin/python3 scripts/train_clutter.py --threads 1 [--steps N] [--seed S]
    /usr/bin/python3 scripts/train_clutter.py --bench      # time a few steps, then exit

Why this model: tailgate's advisor chooses a (variant, split) per device from its compute and
uplink. On fmnist-resnet the input (784 bytes) is the smallest tensor on the wire, so the input
is every device's best split. A camera model is the other way round: the frame is large and
later tensors are small. This one takes a 96 x 96 frame of Cluttered Fashion-MNIST
(scripts/make_clutter.py: an item at a random scale and position over sensor noise and
distractors; 9,216 bytes in u8, which LZ4 cannot shrink) and shrinks it fast.

Base model (variant 0): a multi-exit ResNet with ResNet's stem (a stride-2 conv, then a
stride-2 max pool) and three stages of one basic block each (conv-bn-relu-conv-bn + shortcut,
add, relu; the shortcut a 1x1 conv-bn where the stage strides, else the identity):
  stem   conv3x3/2  1 -> 16, maxpool 3x3/2   [16,24,24]
  layer1 block     16 -> 16   [16,24,24]  -> exit1 (conv3x3/2 -> 32, GAP, Linear)
  layer2 block /2  16 -> 32   [32,12,12]  -> exit2 (conv3x3/2 -> 64, GAP, Linear)
  layer3 block /2  32 -> 64   [64,6,6]    -> GAP, Linear: final
Bottleneck variant ("bottleneck", after FrankenSplit's shallow bottleneck injection): a small
encoder on the device (conv3x3/2 1->12, conv3x3/2 12->24, conv3x3/2 24->24, conv1x1 24->C, BN,
ReLU: [C,12,12], C = 4 by default: 576 values, u8 over [0, max] since it is non-negative)
and a decoder on the gateway (conv3x3 C->32, ConvTranspose 2x2/2 32->16, conv3x3 16->16) that
stands in for the stem and layer1; from there the base model's own exit1, layer2, exit2,
layer3 and final, the same weights (both files carry them).

Training, both at once so one run gives both files: per batch, the base's loss (0.3 CE(exit1) +
0.3 CE(exit2) + CE(final), label smoothing 0.1) plus the variant's (the same through the shared
tail) plus the MSE of the decoder's output to the base's layer1 output (detached, normalised by
its mean square) plus a small L1 rate term on the bottleneck; the bottleneck gets uniform noise
of one u8 step (per-image max / 255, the client library's quantiser) as the quantisation proxy.
AdamW (lr --lr, weight decay 1e-4), a linear warm-up of 100 steps then a cosine to zero whose
progress is the larger of steps done / --steps and CPU seconds used / --max-cpu-s: on a machine
shared at idle priority a run still ends annealed within its CPU budget (it then took fewer
steps, printed at the end, and is not bit-reproducible: the step count depends on the CPU's
speed); --max-train-s (wall) stops it outright, schedule finished or not (it says so). Samples:
--train-samples of make_clutter's training split (seed --data-seed, deterministic) cached as
u8, drawn in a seeded random order. Deterministic algorithms, --threads threads.

Export: opset 13, eval mode, BN folded by constant folding, dynamic batch, outputs exit1,
exit2, final (logits); checked against PyTorch on a few test samples with the numpy ONNX
interpreter of scripts/onnx_names.py; variants/bottleneck/reference/ holds 4 test samples and
PyTorch's logits (tests/variants_check.sh's format). The state_dict goes to /tmp.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_clutter as mc  # noqa: E402
from train_fmnist import BasicBlock  # noqa: E402  (the one ResNet block of every script)
import onnx_names  # noqa: E402

EXIT_NAMES = ["exit1", "exit2", "final"]
EXIT_WEIGHTS = [0.3, 0.3, 1.0]


def cbr(cin, cout, k, stride):
    return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


class ExitHead(nn.Module):
    """Early exit: conv3x3/2 - bn - relu - GAP - Linear (a bare GAP+Linear is too weak)."""

    def __init__(self, cin, cmid, ncls=10):
        super().__init__()
        self.conv = nn.Sequential(*cbr(cin, cmid, 3, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cmid, ncls)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.conv(x)), 1))


class Tail(nn.Module):
    """Everything after layer1: shared by the base model and the bottleneck variant."""

    def __init__(self, w):
        super().__init__()
        c1, c2, c3 = w
        self.exit1 = ExitHead(c1, 2 * c1)
        self.layer2 = BasicBlock(c1, c2, 2)
        self.exit2 = ExitHead(c2, 2 * c2)
        self.layer3 = BasicBlock(c2, c3, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c3, 10)

    def forward(self, l1):
        l2 = self.layer2(l1)
        return (self.exit1(l1), self.exit2(l2),
                self.fc(torch.flatten(self.pool(self.layer3(l2)), 1)))


class Base(nn.Module):
    def __init__(self, stem, w, tail):
        super().__init__()
        self.stem = nn.Sequential(*cbr(1, stem, 3, 2), nn.MaxPool2d(3, 2, 1))
        self.layer1 = BasicBlock(stem, w[0], 1)
        self.tail = tail

    def features(self, x):
        return self.layer1(self.stem(x))

    def forward(self, x):
        return self.tail(self.features(x))


class Bottleneck(nn.Module):
    """input -> encoder (device) -> [C,12,12] -> decoder (gateway) -> the shared tail."""

    def __init__(self, channels, w, tail):
        super().__init__()
        self.encoder = nn.Sequential(*cbr(1, 12, 3, 2), *cbr(12, 24, 3, 2), *cbr(24, 24, 3, 2),
                                     nn.Conv2d(24, channels, 1, 1, 0, bias=False),
                                     nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.decoder = nn.Sequential(*cbr(channels, 32, 3, 1),
                                     nn.ConvTranspose2d(32, w[0], 2, 2), nn.ReLU(inplace=True),
                                     *cbr(w[0], w[0], 3, 1))
        self.tail = tail

    def forward(self, x):
        return self.tail(self.decoder(self.encoder(x)))


def noisy(z, gen):
    """One u8 quantisation step of uniform noise (scale = per-image max / 255)."""
    scale = z.detach().flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1) / 255.0
    return z + (torch.rand(z.shape, generator=gen) - 0.5) * scale


def quantize_u8(z):
    scale = z.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1) / 255.0
    return torch.round(z / scale).clamp(0, 255) * scale


def samples(split, count, seed, size, cache):
    """make_clutter's first count samples of split as (u8 [N,1,S,S], int64 [N]), cached."""
    path = f"{cache}-{split}-{count}-{seed}-{size}.npz"
    if os.path.exists(path):
        d = np.load(path)
        return torch.from_numpy(d["x"]), torch.from_numpy(d["y"])
    t0 = time.time()
    x, y = mc.make(split, count, seed, size)
    xu = np.round(x * 255).astype(np.uint8)
    np.savez(path, x=xu, y=y)
    print(f"made {count} {split} samples in {time.time() - t0:.0f} s ({path})", flush=True)
    return torch.from_numpy(xu), torch.from_numpy(y)


def f32(xu):
    return xu.float().div_(255.0)


@torch.no_grad()
def evaluate(base, bott, x, y, bs=250):
    """Top-1 per exit of the base and of the variant (bottleneck as u8), on u8 samples."""
    base.eval()
    bott.eval()
    cb, cv = [0, 0, 0], [0, 0, 0]
    for i in range(0, len(x), bs):
        xb, yb = f32(x[i:i + bs]), y[i:i + bs]
        for k, o in enumerate(base(xb)):
            cb[k] += (o.argmax(1) == yb).sum().item()
        z = quantize_u8(bott.encoder(xb))
        for k, o in enumerate(bott.tail(bott.decoder(z))):
            cv[k] += (o.argmax(1) == yb).sum().item()
    return [c / len(x) for c in cb], [c / len(x) for c in cv]


def step_loss(base, bott, xb, yb, gen, rate):
    l1 = base.features(xb)
    loss = sum(w * F.cross_entropy(o, yb, label_smoothing=0.1)
               for w, o in zip(EXIT_WEIGHTS, base.tail(l1)))
    z = bott.encoder(xb)
    rec = bott.decoder(noisy(z, gen))
    loss = loss + sum(w * F.cross_entropy(o, yb, label_smoothing=0.1)
                      for w, o in zip(EXIT_WEIGHTS, bott.tail(rec)))
    t = l1.detach()
    return loss + ((rec - t) ** 2).mean() / (t ** 2).mean().clamp_min(1e-6) + rate * z.abs().mean()


def train(base, bott, x, y, args, gen):
    params = list(base.parameters()) + list(bott.encoder.parameters()) + \
        list(bott.decoder.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)
    warm = min(100, args.steps // 10 + 1)
    base.train()
    bott.train()
    t0, c0, run, done = time.time(), time.process_time(), 0.0, 0
    order = torch.randperm(len(x), generator=gen)
    pos = 0
    for s in range(args.steps):
        prog = s / args.steps
        if args.max_cpu_s:
            prog = max(prog, (time.process_time() - c0) / args.max_cpu_s)
        if prog >= 1:
            print(f"schedule done by CPU time after {s} of {args.steps} steps "
                  f"(--max-cpu-s {args.max_cpu_s})", flush=True)
            break
        if args.max_train_s and time.time() - t0 > args.max_train_s:
            print(f"stopping after {s} of {args.steps} steps: --max-train-s {args.max_train_s} "
                  f"reached (the schedule did not finish: progress {prog:.2f})", flush=True)
            break
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (s + 1) / warm) * 0.5 * (1 + np.cos(np.pi * prog))
        if pos + args.batch > len(x):
            order, pos = torch.randperm(len(x), generator=gen), 0
        idx = order[pos:pos + args.batch]
        pos += args.batch
        loss = step_loss(base, bott, f32(x[idx]), y[idx], gen, args.rate)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run = 0.98 * run + 0.02 * loss.item() if s else loss.item()
        done = s + 1
        if done % 50 == 0:
            print(f"  step {done}/{args.steps} loss {run:.3f} ({time.time() - t0:.0f} s wall, "
                  f"{time.process_time() - c0:.0f} s CPU)", flush=True)
    base.eval()
    bott.eval()
    return done, time.time() - t0


def export(model, path, size):
    model.eval()
    axes = {n: {0: "N"} for n in ["input"] + EXIT_NAMES}
    torch.onnx.export(model, torch.zeros(1, 1, size, size), path, opset_version=13,
                      input_names=["input"], output_names=EXIT_NAMES, dynamic_axes=axes,
                      do_constant_folding=True, training=torch.onnx.TrainingMode.EVAL)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)", flush=True)


def check_and_reference(model, path, xte, outdir=None):
    """The file against PyTorch (numpy ONNX interpreter); with outdir, reference/ there for
    tests/variants_check.sh (which checks every file variant; the base model's tail is the
    variant's, so its reference is not kept)."""
    x = f32(xte[:4]).contiguous()
    proto = onnx_names.load(path)
    env = onnx_names.run(proto, {"input": x.numpy()})
    with torch.no_grad():
        ref = model.eval()(x)
    for name, r in zip(EXIT_NAMES, ref):
        err = np.abs(env[name] - r.numpy()).max()
        print(f"export check {name}: max |onnx - torch| = {err:.2e} on {len(x)} test samples")
        assert err < 1e-3, f"exported {name} differs from PyTorch"
    if outdir is None:
        return
    rdir = os.path.join(outdir, "reference")
    os.makedirs(rdir, exist_ok=True)
    np.save(os.path.join(rdir, "input.npy"), np.ascontiguousarray(x.numpy(), np.float32))
    for name, r in zip(EXIT_NAMES, ref):
        np.save(os.path.join(rdir, f"{name}.npy"), np.ascontiguousarray(r.numpy(), np.float32))
    with open(os.path.join(outdir, "manifest.txt"), "w") as f:
        f.write("# PyTorch's logits for the first test samples (tests/variants_check.sh)\n")
        f.write("model model.onnx\ninput input reference/input.npy\n")
        for name in EXIT_NAMES:
            f.write(f"output {name} reference/{name}.npy\n")
        f.write("tolerance 0.0001 0.001\n")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1, help="weights, order and noise")
    ap.add_argument("--data-seed", type=int, default=1, help="make_clutter's --seed")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--train-samples", type=int, default=30000)
    ap.add_argument("--test-samples", type=int, default=2000, help="PyTorch's report only")
    ap.add_argument("--stem", type=int, default=16)
    ap.add_argument("--widths", default="16,32,64")
    ap.add_argument("--channels", type=int, default=4, help="bottleneck channels (12x12 each)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--rate", type=float, default=1e-3, help="L1 weight on the bottleneck")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-train-s", type=float, default=0, help="wall seconds; 0: no limit")
    ap.add_argument("--max-cpu-s", type=float, default=0,
                    help="CPU seconds the schedule anneals over at most; 0: steps only")
    ap.add_argument("--bench", action="store_true", help="time 10 steps and exit")
    ap.add_argument("--out", default="models/clutter-resnet")
    ap.add_argument("--cache", default="/tmp/clutter", help="sample cache prefix (not committed)")
    ap.add_argument("--state", default="/tmp/clutter-resnet.pt", help="state_dict (not committed)")
    return ap.parse_args()


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(args.seed)
    w = tuple(int(v) for v in args.widths.split(","))
    tail = Tail(w)
    base = Base(args.stem, w, tail)
    bott = Bottleneck(args.channels, w, tail)
    n_base = sum(p.numel() for p in base.parameters())
    n_var = sum(p.numel() for p in bott.parameters())
    print(f"base {n_base} parameters, bottleneck variant {n_var} (PyTorch, with BN); "
          f"bottleneck {args.channels}x12x12", flush=True)
    if args.bench:
        xb = torch.rand(args.batch, 1, args.size, args.size, generator=gen)
        yb = torch.randint(0, 10, (args.batch,), generator=gen)
        opt = torch.optim.AdamW(list(base.parameters()) + list(bott.encoder.parameters()) +
                                list(bott.decoder.parameters()), lr=1e-3)
        t0 = time.time()
        for _ in range(10):
            loss = step_loss(base, bott, xb, yb, gen, args.rate)
            opt.zero_grad()
            loss.backward()
            opt.step()
        dt = (time.time() - t0) / 10
        print(f"{dt:.3f} s per step of {args.batch} ({args.batch / dt:.0f} samples/s)")
        return 0
    t_start, cpu_start = time.time(), time.process_time()
    xtr, ytr = samples("train", args.train_samples, args.data_seed, args.size, args.cache)
    xte, yte = samples("t10k", args.test_samples, args.data_seed, args.size, args.cache)
    done, secs = train(base, bott, xtr, ytr, args, gen)
    torch.save({"base": base.state_dict(), "bottleneck": bott.state_dict()}, args.state)
    wall, cpu = time.time() - t_start, time.process_time() - cpu_start
    print(f"training: {done} steps of {args.batch} in {secs:.0f} s; whole run {wall:.0f} s wall "
          f"({wall / 60:.1f} min), {cpu:.0f} s CPU", flush=True)
    vdir = os.path.join(args.out, "variants", "bottleneck")
    os.makedirs(vdir, exist_ok=True)
    export(base, os.path.join(args.out, "model.onnx"), args.size)
    export(bott, os.path.join(vdir, "model.onnx"), args.size)
    check_and_reference(base, os.path.join(args.out, "model.onnx"), xte)
    check_and_reference(bott, os.path.join(vdir, "model.onnx"), xte, vdir)
    acc_b, acc_v = evaluate(base, bott, xte, yte)
    for n, a, b in zip(EXIT_NAMES, acc_b, acc_v):
        print(f"test accuracy (PyTorch, {len(xte)} samples) {n}: base {a * 100:.2f}%, "
              f"bottleneck (as u8) {b * 100:.2f}%", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
