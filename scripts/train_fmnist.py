#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Train and export tailgate's demo model: a multi-exit ResNet on Fashion-MNIST.

Usage (Debian's PyTorch lives only in the system interpreter, so call it explicitly):

    /usr/bin/python3 scripts/train_fmnist.py [--epochs N] [--seed S] [--out models/fmnist-resnet]
    /usr/bin/python3 scripts/train_fmnist.py --resume     # go on after a killed run (checkpoint in /tmp)
    /usr/bin/python3 scripts/train_fmnist.py --bench      # time a few training steps, then exit

It reads the Fashion-MNIST idx files from /usr/share/datasets/fashion-mnist (Debian package
dataset-fashion-mnist); nothing is downloaded.

Input contract (the C engine and the gateway rely on it):
  * one graph input named "input", float32, shape [N, 1, 28, 28], N dynamic;
  * pixel values are raw uint8 / 255.0, i.e. in [0, 1], with NO other normalization outside
    the model (the stem's BatchNorm, folded into the first Conv at export, absorbs the scale
    and shift a mean/std normalization would have applied);
  * graph outputs, in this order: "exit1", "exit2", "final", each raw logits [N, 10] (no
    softmax); classes are the Fashion-MNIST label indices 0..9.

Architecture: a ResNet with standard basic blocks (conv-bn-relu-conv-bn + identity or 1x1
conv-bn shortcut, add, relu); stem conv3x3 at 28x28, three stages (28x28, 14x14, 7x7; widths
32/64/128), then GlobalAveragePool + Linear for "final". Early exits branch off after stage 1
and stage 2; each exit head is a small conv3x3(stride 2)-bn-relu + GlobalAveragePool + Linear,
because a bare GAP+Linear on early features is a weak classifier. One block per stage by
default: measured on 2 cores, two blocks per stage cost ~1.5x per epoch, and within the
~25-minute budget more epochs of the smaller net reach a better accuracy.

Training: all exits jointly, loss = 0.3*CE(exit1) + 0.3*CE(exit2) + 1.0*CE(final) (label
smoothing 0.1), SGD with Nesterov momentum, weight decay 5e-4 on conv/linear weights, a
one-cycle schedule (peak lr 0.08, batch 64, 11 epochs), light augmentation (random crop with
padding 2, horizontal flip). Fixed seed, deterministic algorithms, 2 threads. A checkpoint is
written after every epoch (--ckpt, in /tmp) and --resume continues from it bit-exactly.

Export: opset 13, eval mode, constant folding on (BatchNorm folded into Conv), dynamic batch
axis on the input and all outputs. The exported file is then checked against PyTorch on 200
test images with the numpy ONNX interpreter of scripts/onnx_names.py. The state_dict goes to
/tmp (not committed).
"""

import argparse
import gzip
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA_DIR = "/usr/share/datasets/fashion-mnist"
EXIT_NAMES = ["exit1", "exit2", "final"]
EXIT_WEIGHTS = [0.3, 0.3, 1.0]


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

def load_idx(path):
    """Reads a gzipped idx file (big-endian header, uint8 payload) into a numpy array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(split):
    """Returns (images float32 [N,1,28,28] in [0,1], labels int64 [N]) for 'train' or 't10k'."""
    x = load_idx(os.path.join(DATA_DIR, f"{split}-images-idx3-ubyte.gz"))
    y = load_idx(os.path.join(DATA_DIR, f"{split}-labels-idx1-ubyte.gz"))
    # The contract: raw pixel / 255.0 and nothing else.
    x = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)
    x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.from_numpy(y.astype(np.int64))


def augment(x, gen, pad=2):
    """Random crop with zero padding `pad` and random horizontal flip, per sample.

    Done on whole batches in torch (not a DataLoader) so it is cheap and seeded by `gen`.
    """
    n, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    offs = torch.randint(0, 2 * pad + 1, (n, 2), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(x)
    # Group samples by offset so there are at most (2*pad+1)^2 slicing ops per batch.
    key = offs[:, 0] * (2 * pad + 1) + offs[:, 1]
    for k in torch.unique(key).tolist():
        idx = (key == k).nonzero(as_tuple=True)[0]
        dy, dx = divmod(k, 2 * pad + 1)
        out[idx] = xp[idx, :, dy:dy + h, dx:dx + w]
    out[flip] = out[flip].flip(3)
    return out


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    """Standard ResNet basic block; 1x1 conv-bn shortcut when shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu2(y + idt)


class ExitHead(nn.Module):
    """Early-exit classifier: conv3x3 stride 2 - bn - relu - GAP - Linear."""

    def __init__(self, cin, cmid, ncls=10):
        super().__init__()
        self.conv = nn.Conv2d(cin, cmid, 3, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(cmid)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cmid, ncls)

    def forward(self, x):
        x = self.pool(self.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(x, 1))


class MultiExitResNet(nn.Module):
    def __init__(self, widths=(32, 64, 128), blocks=(2, 2, 2), ncls=10):
        super().__init__()
        c1, c2, c3 = widths
        self.stem = nn.Sequential(
            nn.Conv2d(1, c1, 3, 1, 1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(inplace=True))
        self.layer1 = self._stage(c1, c1, blocks[0], 1)
        self.layer2 = self._stage(c1, c2, blocks[1], 2)
        self.layer3 = self._stage(c2, c3, blocks[2], 2)
        self.exit1 = ExitHead(c1, c2, ncls)
        self.exit2 = ExitHead(c2, c3, ncls)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c3, ncls)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # Zero-init the last BN of each block so every block starts as identity (standard trick,
        # helps short schedules).
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    @staticmethod
    def _stage(cin, cout, n, stride):
        layers = [BasicBlock(cin, cout, stride)]
        layers += [BasicBlock(cout, cout, 1) for _ in range(n - 1)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.stem(x)
        x = self.layer1(x)
        e1 = self.exit1(x)
        x = self.layer2(x)
        e2 = self.exit2(x)
        x = self.layer3(x)
        final = self.fc(torch.flatten(self.pool(x), 1))
        # Graph output order is the return order: exit1, exit2, final.
        return e1, e2, final


# ---------------------------------------------------------------------------------------------
# Training / evaluation
# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def evaluate(model, x, y, bs=1000):
    """Top-1 accuracy per exit, in EXIT_NAMES order."""
    model.eval()
    correct = torch.zeros(len(EXIT_NAMES), dtype=torch.long)
    for i in range(0, len(x), bs):
        outs = model(x[i:i + bs])
        for k, o in enumerate(outs):
            correct[k] += (o.argmax(1) == y[i:i + bs]).sum()
    return [c.item() / len(x) for c in correct]


def train_step(model, opt, sched, xb, yb, label_smoothing):
    outs = model(xb)
    loss = sum(w * F.cross_entropy(o, yb, label_smoothing=label_smoothing)
               for w, o in zip(EXIT_WEIGHTS, outs))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return loss.item()


def export(model, path):
    """ONNX export: opset 13, eval mode, BN folded by constant folding, dynamic batch."""
    model.eval()
    dummy = torch.zeros(1, 1, 28, 28)
    axes = {n: {0: "N"} for n in ["input"] + EXIT_NAMES}
    torch.onnx.export(model, dummy, path, opset_version=13, input_names=["input"],
                      output_names=EXIT_NAMES, dynamic_axes=axes, do_constant_folding=True,
                      training=torch.onnx.TrainingMode.EVAL)


def check_export(model, path, x):
    """Runs the exported file through scripts/onnx_names.py's numpy interpreter and compares
    every output with PyTorch on a few test images (no onnxruntime in Python here)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import onnx_names
    proto = onnx_names.load(path)
    outs = [o.name for o in proto.graph.output]
    assert outs == EXIT_NAMES, outs
    env = onnx_names.run(proto, {"input": x.contiguous().numpy()})
    with torch.no_grad():
        ref = model.eval()(x)
    for name, r in zip(EXIT_NAMES, ref):
        err = np.abs(env[name] - r.numpy()).max()
        print(f"export check {name}: max |onnx - torch| = {err:.2e} on {len(x)} test images")
        assert err < 1e-3, f"exported {name} differs from PyTorch"
    print("ops", onnx_names.op_counts(proto.graph))


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=11)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.08)
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--widths", default="32,64,128")
    ap.add_argument("--blocks", default="1,1,1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="models/fmnist-resnet")
    ap.add_argument("--state", default="/tmp/fmnist-resnet.pt", help="state_dict path (not committed)")
    ap.add_argument("--ckpt", default="/tmp/fmnist-resnet.ckpt", help="per-epoch checkpoint")
    ap.add_argument("--resume", action="store_true", help="continue from --ckpt if it exists")
    ap.add_argument("--bench", action="store_true", help="time 20 training steps and exit")
    return ap.parse_args()


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(args.seed)

    widths = tuple(int(v) for v in args.widths.split(","))
    blocks = tuple(int(v) for v in args.blocks.split(","))
    model = MultiExitResNet(widths, blocks)
    # NHWC activations make PyTorch's oneDNN convolutions ~2x faster on CPU (measured on this
    # 2-core box); it changes nothing in the math or in the exported graph.
    model = model.to(memory_format=torch.channels_last)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"model widths={widths} blocks={blocks} params={nparams}", flush=True)

    xtr, ytr = load_split("train")
    xte, yte = load_split("t10k")
    steps_per_epoch = (len(xtr) + args.batch - 1) // args.batch

    # No weight decay on BN parameters and biases (standard; they are scale/shift, not filters).
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": args.wd},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=args.lr, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch,
        pct_start=0.25, div_factor=10.0, final_div_factor=100.0)

    if args.bench:
        model.train()
        nsteps = 20
        for i in range(nsteps + 2):
            if i == 2:  # skip warm-up steps (allocator, oneDNN primitive creation)
                t0 = time.time()
            idx = torch.randint(0, len(xtr), (args.batch,), generator=gen)
            train_step(model, opt, sched, augment(xtr[idx], gen), ytr[idx], args.label_smoothing)
        dt = (time.time() - t0) / nsteps
        print(f"bench: {dt * 1000:.1f} ms/step, est {dt * steps_per_epoch:.0f} s/epoch", flush=True)
        return

    # Per-epoch checkpoint, so a run killed on a shared machine can go on with --resume and
    # still give the same weights: it holds the model, optimizer, schedule and the data RNG.
    start_epoch, wall_done, cpu_done = 0, 0.0, 0.0
    # The hyperparameters the checkpoint must agree with (not where files go).
    run_id = {k: v for k, v in vars(args).items()
              if k not in ("out", "state", "ckpt", "resume", "bench")}
    if args.resume and os.path.exists(args.ckpt):
        ck = torch.load(args.ckpt)
        if ck.get("args") != run_id:
            sys.exit(f"{args.ckpt} is from another run ({ck.get('args')}); delete it to start over")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        gen.set_state(ck["gen"])
        start_epoch, wall_done, cpu_done = ck["epoch"], ck["wall"], ck["cpu"]
        print(f"resumed from {args.ckpt} after epoch {start_epoch}", flush=True)

    t_start, cpu_start = time.time(), time.process_time()
    for epoch in range(start_epoch, args.epochs):
        model.train()
        t0 = time.time()
        perm = torch.randperm(len(xtr), generator=gen)
        tot = 0.0
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch:(s + 1) * args.batch]
            xb = augment(xtr[idx], gen)
            tot += train_step(model, opt, sched, xb, ytr[idx], args.label_smoothing)
            if epoch == start_epoch and s == 99:  # early estimate, to size the run
                est = (time.time() - t0) / 100 * steps_per_epoch
                print(f"  ~{est:.0f} s/epoch, ~{est * (args.epochs - epoch) / 60:.0f} min to go",
                      flush=True)
        acc = evaluate(model, xte, yte)
        accs = " ".join(f"{n}={a * 100:.2f}%" for n, a in zip(EXIT_NAMES, acc))
        print(f"epoch {epoch + 1}/{args.epochs} loss={tot / steps_per_epoch:.4f} "
              f"time={time.time() - t0:.0f}s test: {accs}", flush=True)
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                    "sched": sched.state_dict(), "gen": gen.get_state(), "epoch": epoch + 1,
                    "args": run_id,
                    "wall": wall_done + time.time() - t_start,
                    "cpu": cpu_done + time.process_time() - cpu_start}, args.ckpt)
    train_time = wall_done + time.time() - t_start
    # CPU time too: on a shared box the wall clock also measures everyone else's work.
    cpu_time = cpu_done + time.process_time() - cpu_start

    acc = evaluate(model, xte, yte)
    print(f"training time: {train_time:.0f} s wall ({train_time / 60:.1f} min), "
          f"{cpu_time:.0f} s CPU ({cpu_time / 60:.1f} min over {args.threads} threads)")
    for n, a in zip(EXIT_NAMES, acc):
        print(f"test accuracy (PyTorch, 10000 images) {n}: {a * 100:.2f}%")
    torch.save(model.state_dict(), args.state)
    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, "model.onnx")
    export(model, onnx_path)
    print(f"wrote {onnx_path} ({os.path.getsize(onnx_path)} bytes), state_dict {args.state}")
    check_export(model, onnx_path, xte[:200])
    return 0


if __name__ == "__main__":
    sys.exit(main())
