#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Fine-tune fmnist-resnet with stochastic depth on its droppable block ("droptrained").

Usage (Debian's PyTorch lives only in the system interpreter):

    /usr/bin/python3 scripts/train_droptrained.py [--steps N] [--drop P] [--seed S]
        [--out models/fmnist-resnet/variants]

The shipped model has one droppable residual block (`tailgate-model blocks`: layer1.0, an
identity shortcut; layer2.0 and layer3.0 have strided 1x1 projections and are not droppable),
and dropping it costs 78.7 points (nob1: 13.71%): the model was never trained without it.
Stochastic depth (Huang et al. 2016, as layer drop) trains a network in which any block may be
skipped: here each training sample skips layer1.0's residual branch with probability --drop
(the block's output is then its input, exactly what `tailgate-model drop` computes: the Add
replaced by its shortcut, and the ReLU after it is the identity on the post-ReLU stem output),
so one set of weights serves both ways.

Start: the shipped model's weights (scripts/fmnist_teacher.py rebuilds it from the ONNX file,
BN folded into biased convs), every parameter trainable. Loss: for every exit, distillation from
the shipped model run on the same augmented batch (T = 4, alpha = 0.7 with label-smoothed CE;
exit weights 0.3/0.3/1.0 as the shipped model's training), whether the sample's branch was
dropped or not: the student learns to give the shipped model's answers both ways. SGD Nesterov,
cosine from --lr, batch 64, crop + flip augmentation (train_fmnist.augment), bounded by
--max-train-s. No BatchNorm (folded), so eval and train compute the same function.

Writes OUT/droptrained/ (the whole model: the same graph and node names as the shipped file)
and OUT/droptrained_nob1/ (the same weights with layer1.0's branch removed, exported from
PyTorch): model.onnx, and reference/ + manifest.txt (8 test images and PyTorch's logits) that
tests/variants_check.sh has the engine checked against. Prints the test accuracy per exit of
both, in PyTorch.
"""

import argparse
import os
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fmnist_teacher as ft  # noqa: E402
import train_fmnist as tf  # noqa: E402


class StochasticBlock(nn.Module):
    """A BasicBlock whose residual branch is skipped per sample with probability p while
    training, always (dropped=True) or never (eval, dropped=False)."""

    def __init__(self, block, p, gen):
        super().__init__()
        assert block.downsample is None, "only an identity-shortcut block can be dropped"
        self.block, self.p, self.gen, self.dropped = block, p, gen, False

    def forward(self, x):
        if self.dropped:
            return x	# the Add's output replaced by its shortcut; relu(x) == x after the stem
        b = self.block
        y = b.bn2(b.conv2(b.relu1(b.bn1(b.conv1(x)))))
        if self.training and self.p > 0:
            keep = (torch.rand(x.shape[0], 1, 1, 1, generator=self.gen) >= self.p).to(x.dtype)
            y = y * keep
        return torch.relu(y + x)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=1000, help="batches")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--drop", type=float, default=0.5, help="probability a sample skips the block")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-train-s", type=float, default=0,
                    help="stop after this many seconds of training (0: no limit)")
    ap.add_argument("--no-eval", action="store_true", help="skip the PyTorch test-set passes")
    ap.add_argument("--out", default="models/fmnist-resnet/variants")
    ap.add_argument("--state", default="/tmp/fmnist-droptrained.pt", help="state_dict (not committed)")
    ap.add_argument("--from-state", action="store_true",
                    help="start from --state (a previous run's), not from the shipped weights")
    return ap.parse_args()


def train(student, teacher, xtr, ytr, args, gen):
    opt = torch.optim.SGD([p for p in student.parameters() if p.requires_grad], lr=args.lr,
                          momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    student.train()
    t0 = time.time()
    for s in range(args.steps):
        if args.max_train_s and time.time() - t0 > args.max_train_s:
            print(f"stopping after {s} steps: --max-train-s {args.max_train_s} reached", flush=True)
            break
        idx = torch.randint(0, len(xtr), (args.batch,), generator=gen)
        xb, yb = tf.augment(xtr[idx], gen), ytr[idx]
        with torch.no_grad():
            tout = teacher(xb)
        loss = sum(w * ft.kd_loss(o, t, yb)
                   for w, o, t in zip(tf.EXIT_WEIGHTS, student(xb), tout))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (s + 1) % 20 == 0:
            print(f"  step {s + 1}/{args.steps} loss={loss.item():.4f} ({time.time() - t0:.0f} s)",
                  flush=True)
    student.eval()


def main():
    args = parse_args()
    gen = ft.setup(args.seed, args.threads)
    t_start, cpu_start = time.time(), time.process_time()
    xtr, ytr, xte, yte = ft.data()
    teacher = ft.load(check_images=xte[:100])
    student = ft.load()
    for p in student.parameters():
        p.requires_grad_(True)
    sb = StochasticBlock(student.layer1[0], args.drop, gen)
    student.layer1[0] = sb
    if args.from_state:
        student.load_state_dict(torch.load(args.state))
        print(f"weights from {args.state}", flush=True)
    print(f"droptrained: layer1.0 skipped with probability {args.drop} per sample, "
          f"{args.steps} steps of {args.batch}, lr {args.lr}", flush=True)
    train(student, teacher, xtr, ytr, args, gen)
    torch.save(student.state_dict(), args.state)
    wall, cpu = time.time() - t_start, time.process_time() - cpu_start
    print(f"training time: {wall:.0f} s wall ({wall / 60:.1f} min), {cpu:.0f} s CPU", flush=True)

    for name, dropped in (("droptrained", False), ("droptrained_nob1", True)):
        sb.dropped = dropped
        # The whole model is exported with the plain block back in place: the same graph and
        # node names as the shipped file (so `tailgate-model blocks` and drop= see it alike).
        student.layer1[0] = sb if dropped else sb.block
        out = os.path.join(args.out, name)
        os.makedirs(out, exist_ok=True)
        path = os.path.join(out, "model.onnx")
        ft.export(student, path)
        print(f"wrote {path} ({os.path.getsize(path)} bytes)", flush=True)
        ft.check_export(student, path, xte[:64])
        ft.write_reference(student, xte, out)
        student.layer1[0] = sb
    if not args.no_eval:
        for name, dropped in (("droptrained", False), ("droptrained_nob1", True)):
            sb.dropped = dropped
            acc = ft.evaluate(student, xte, yte)
            for n, a in zip(ft.EXIT_NAMES, acc):
                print(f"test accuracy (PyTorch, 10000 images) {name} {n}: {a * 100:.2f}%",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
