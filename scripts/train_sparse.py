#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Train and export fmnist-resnet's predefined-sparse variant ("sparse").

Usage (Debian's PyTorch lives only in the system interpreter; run it at nice 19):

    nice -n 19 /usr/bin/python3 scripts/train_sparse.py [--epochs N] [--seed S]
    nice -n 19 /usr/bin/python3 scripts/train_sparse.py --export-only   # random weights, to time
    nice -n 19 /usr/bin/python3 scripts/train_sparse.py --bench         # time training steps

Predefined sparsity: the connectivity is fixed before training and never changes. Every 3x3
convolution of the shipped model (both convs of each residual block and each exit head's conv)
becomes a grouped convolution: G groups means each output channel reads C_in/G input channels,
a block-diagonal weight with (G-1)/G of its connections absent. Groups per stage are 4, 4, 8
(stage widths 32, 64, 128), exit heads 4 and 8. What mixes the groups is dense and cheap: the
stem (1 input channel), the 1x1 shortcut convolutions of stages 2 and 3 (dense, 1.6 M FLOPs of
the variant's ~20 M) and the exits' Linear layers. No channel shuffle: measured on tailgate's
engine, the Reshape/Transpose/Reshape of a shuffle costs three reorders of the whole tensor each
time and took away a third of the speed-up (see the variant's TRAINING.md); the dense 1x1
shortcuts mix the groups once per stage instead, for free in speed.

The structure is what oneDNN runs: a Conv with attribute group, BatchNorm folded at export, so
the FLOPs and parameters saved are real at run time (no masks, no zeros stored).

Training: distillation from the shipped model (rebuilt from models/fmnist-resnet/model.onnx by
scripts/fmnist_teacher.py), each exit from the teacher's same exit (T = 4, alpha = 0.7, plus
label-smoothed CE), exit weights 0.3/0.3/1.0 as the shipped model. Weights start from the
shipped model's folded weights restricted to the block-diagonal pattern (the connections the
sparsity keeps), the dense layers (stem, shortcuts, Linear) from the shipped model as they are:
fine-tuning instead of training from scratch, which fits a schedule of a few epochs on 2 shared
cores. SGD Nesterov, one-cycle, augmentation as train_fmnist.py (crop pad 2, flip).

Export: opset 13, BN folded, dynamic batch, as the shipped model; the file is checked against
PyTorch with the numpy ONNX interpreter, and the first 8 test images with PyTorch's logits are
written to variants/sparse/reference/ for tests/variants_check.sh.
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


class MaskedConv2d(nn.Conv2d):
    """A dense Conv2d whose weight is multiplied by a fixed 0/1 block-diagonal mask: the same
    function as nn.Conv2d(groups=G), used for training only. Measured with Debian's torch 1.13
    on this machine: a grouped conv's forward + backward (batch 128) took 2.5-8.7 s a step
    (its CPU path for groups is a slow fallback), the dense one a few hundred ms; at export
    the kept blocks become a real grouped conv (to_grouped)."""

    def __init__(self, cin, cout, k, stride, pad, groups, bias=False):
        super().__init__(cin, cout, k, stride, pad, bias=bias)
        self.sparse_groups = groups
        co, ci = cout // groups, cin // groups
        mask = torch.zeros(cout, cin, 1, 1)
        for g in range(groups):
            mask[g * co:(g + 1) * co, g * ci:(g + 1) * ci] = 1.0
        self.register_buffer("mask", mask)

    def forward(self, x):
        return self._conv_forward(x, self.weight * self.mask, self.bias)

    def to_grouped(self):
        g = self.sparse_groups
        conv = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride,
                         self.padding, groups=g, bias=self.bias is not None)
        co, ci = self.out_channels // g, self.in_channels // g
        with torch.no_grad():
            for k in range(g):
                conv.weight[k * co:(k + 1) * co] = self.weight[k * co:(k + 1) * co,
                                                               k * ci:(k + 1) * ci]
            if self.bias is not None:
                conv.bias.copy_(self.bias)
        return conv


def gconv(cin, cout, k, stride, groups, masked):
    if masked:
        return MaskedConv2d(cin, cout, k, stride, k // 2, groups)
    return nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)


def to_grouped(model):
    """Every MaskedConv2d replaced by the grouped Conv2d it stands for (in place)."""
    for mod in list(model.modules()):
        for name, child in list(mod.named_children()):
            if isinstance(child, MaskedConv2d):
                setattr(mod, name, child.to_grouped())
    return model


class SparseBlock(nn.Module):
    """Basic block with grouped 3x3 convs; dense 1x1 conv-bn shortcut when the shape changes."""

    def __init__(self, cin, cout, stride, groups, masked):
        super().__init__()
        self.conv1 = gconv(cin, cout, 3, stride, groups, masked)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = gconv(cout, cout, 3, 1, groups, masked)
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


class SparseExit(nn.Module):
    def __init__(self, cin, cmid, groups, masked, ncls=10):
        super().__init__()
        self.conv = gconv(cin, cmid, 3, 2, groups, masked)
        self.bn = nn.BatchNorm2d(cmid)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cmid, ncls)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.relu(self.bn(self.conv(x)))), 1))


class SparseResNet(nn.Module):
    """The shipped topology (module names too) with predefined-sparse 3x3 convolutions."""

    def __init__(self, groups=(4, 4, 8), exit_groups=(4, 8), widths=(32, 64, 128), ncls=10,
                 masked=False):
        super().__init__()
        c1, c2, c3 = widths
        self.stem = nn.Sequential(
            nn.Conv2d(1, c1, 3, 1, 1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(inplace=True))
        self.layer1 = nn.Sequential(SparseBlock(c1, c1, 1, groups[0], masked))
        self.layer2 = nn.Sequential(SparseBlock(c1, c2, 2, groups[1], masked))
        self.layer3 = nn.Sequential(SparseBlock(c2, c3, 2, groups[2], masked))
        self.exit1 = SparseExit(c1, c2, exit_groups[0], masked, ncls)
        self.exit2 = SparseExit(c2, c3, exit_groups[1], masked, ncls)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c3, ncls)

    def forward(self, x):
        x = self.stem(x)
        x = self.layer1(x)
        e1 = self.exit1(x)
        x = self.layer2(x)
        e2 = self.exit2(x)
        x = self.layer3(x)
        return e1, e2, self.fc(torch.flatten(self.pool(x), 1))


@torch.no_grad()
def init_from_teacher(student, teacher):
    """Each student conv takes the teacher's folded weight on the connections it keeps (the
    block-diagonal of a grouped conv), its BN the teacher's bias as shift; Linear as is."""
    tm = dict(teacher.named_modules())
    sm = dict(student.named_modules())
    for name, conv in sm.items():
        if not isinstance(conv, nn.Conv2d):
            continue
        tconv = tm[name]
        g = getattr(conv, "sparse_groups", conv.groups)
        co, ci = conv.out_channels // g, conv.in_channels // g
        if isinstance(conv, MaskedConv2d):
            conv.weight.copy_(tconv.weight * conv.mask)
        else:
            for k in range(g):
                conv.weight[k * co:(k + 1) * co] = tconv.weight[k * co:(k + 1) * co,
                                                                k * ci:(k + 1) * ci]
        bn_name = name.replace("conv", "bn") if "conv" in name else None
        if name == "stem.0":
            bn_name = "stem.1"
        elif name.endswith("downsample.0"):
            bn_name = name[:-1] + "1"
        bn = sm[bn_name]
        bn.weight.fill_(1.0)
        bn.bias.copy_(tconv.bias)
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0)
    for name in ("exit1.fc", "exit2.fc", "fc"):
        sm[name].weight.copy_(tm[name].weight)
        sm[name].bias.copy_(tm[name].bias)


@torch.no_grad()
def run_batched(fn, x, bs=500):
    """fn over x in batches (eval mode is the caller's), outputs concatenated (tuples too)."""
    outs = [fn(x[i:i + bs]) for i in range(0, len(x), bs)]
    if isinstance(outs[0], tuple):
        return tuple(torch.cat(o) for o in zip(*outs))
    return torch.cat(outs)


@torch.no_grad()
def teacher_features(t, x):
    """The shipped model's tensors at every block boundary, and its logits per exit."""
    def f(xb):
        s = t.stem(xb)
        l1 = t.layer1(s)
        l2 = t.layer2(l1)
        l3 = t.layer3(l2)
        return s, l1, l2, l3, t.exit1(l1), t.exit2(l2), t.fc(torch.flatten(t.pool(l3), 1))
    return run_batched(f, x)


def fit(name, module, params, inputs, loss_fn, epochs, batch, lr, gen):
    """Adam with a cosine schedule over the cached tensors: module(inputs[i]) -> loss_fn."""
    n = len(inputs)
    steps = epochs * ((n + batch - 1) // batch)
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    t0, k = time.time(), 0
    for epoch in range(epochs):
        module.train()
        perm = torch.randperm(n, generator=gen)
        tot = 0.0
        for s in range(0, n, batch):
            idx = perm[s:s + batch]
            loss = loss_fn(module(inputs[idx]), idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(idx)
            k += 1
        print(f"  {name} epoch {epoch + 1}/{epochs} loss={tot / n:.4f} "
              f"({time.time() - t0:.0f} s)", flush=True)
    module.eval()


def nmse(y, t):
    """Mean squared error relative to the target's mean square: comparable across tensors."""
    return ((y - t) ** 2).mean() / (t ** 2).mean().clamp_min(1e-8)


def distill_blockwise(student, teacher, x, y, args, gen):
    """Each sparse part learns the shipped model's mapping, in network order, from the
    student's own upstream output (so it also learns to correct what came before): block
    outputs by normalised MSE, exits (and the final Linear with stage 3) by distillation of
    the teacher's logits of the same exit. Stem is the teacher's (dense, 1 input channel)."""
    s_t, l1_t, l2_t, l3_t, e1_t, e2_t, f_t = teacher_features(teacher, x)
    print(f"teacher features of {len(x)} training images cached", flush=True)
    student.eval()
    ep, bs, lr = args.epochs, args.batch, args.lr

    def kd(out, idx, tgt):
        return ft.kd_loss(out, tgt[idx], y[idx])

    fit("layer1", student.layer1, student.layer1.parameters(), s_t,
        lambda o, i: nmse(o, l1_t[i]), ep, bs, lr, gen)
    s1 = run_batched(student.layer1, s_t)
    fit("exit1", student.exit1, student.exit1.parameters(), s1,
        lambda o, i: kd(o, i, e1_t), ep, bs, lr, gen)
    fit("layer2", student.layer2, student.layer2.parameters(), s1,
        lambda o, i: nmse(o, l2_t[i]), ep, bs, lr, gen)
    s2 = run_batched(student.layer2, s1)
    fit("exit2", student.exit2, student.exit2.parameters(), s2,
        lambda o, i: kd(o, i, e2_t), ep, bs, lr, gen)
    tail = nn.ModuleDict({"layer3": student.layer3, "fc": student.fc})

    def tail_fwd(inp):
        l3 = student.layer3(inp)
        return l3, student.fc(torch.flatten(student.pool(l3), 1))
    tail.forward = tail_fwd
    fit("layer3+fc", tail, tail.parameters(), s2,
        lambda o, i: nmse(o[0], l3_t[i]) + kd(o[1], i, f_t), ep, bs, lr, gen)


def e2e_optimizer(student, args):
    """SGD Nesterov; weight decay (--e2e-wd) on conv and Linear weights only, as the shipped
    model's recipe (train_fmnist.py): not on BN and biases."""
    decay = [p for p in student.parameters() if p.ndim > 1]
    no_decay = [p for p in student.parameters() if p.ndim <= 1]
    return torch.optim.SGD([{"params": decay, "weight_decay": args.e2e_wd},
                            {"params": no_decay, "weight_decay": 0.0}],
                           lr=args.e2e_lr, momentum=0.9, nesterov=True)


def finetune_e2e(student, teacher, xtr, ytr, args, gen, xte=None, yte=None):
    """The whole student, all exits by distillation (0.3/0.3/1.0), on augmented images with
    the teacher run on the fly: --e2e-cycles cycles of --e2e-steps batches, each a cosine from
    --e2e-lr to 0 (warm restarts). Each cycle ends annealed and its state is saved as
    STATE.cK, so a run stopped by --max-train-s (or by hand) leaves the last whole cycle: the
    schedule never depends on how much CPU the process got, and the first K cycles of a run
    are the same whatever its --e2e-cycles. With xte, the test accuracy per exit is printed
    after each cycle (a log of the trajectory; the exported state is the last cycle's)."""
    cl = args.train_form == "grouped"
    t0 = time.time()
    for c in range(args.e2e_cycles):
        opt = e2e_optimizer(student, args)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.e2e_steps)
        student.train()
        for s in range(args.e2e_steps):
            if args.max_train_s and time.time() - t0 > args.max_train_s:
                print(f"stopping in cycle {c + 1} after {s} steps: --max-train-s "
                      f"{args.max_train_s} reached; this cycle is not saved", flush=True)
                student.eval()
                return c
            idx = torch.randint(0, len(xtr), (args.batch,), generator=gen)
            xb, yb = tf.augment(xtr[idx], gen), ytr[idx]
            if cl:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.no_grad():
                tout = teacher(xb)
            loss = sum(w * ft.kd_loss(o, t, yb)
                       for w, o, t in zip(tf.EXIT_WEIGHTS, student(xb), tout))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if (s + 1) % 50 == 0:
                print(f"  e2e cycle {c + 1}/{args.e2e_cycles} step {s + 1}/{args.e2e_steps} "
                      f"loss={loss.item():.4f} ({time.time() - t0:.0f} s, "
                      f"{time.process_time():.0f} s CPU)", flush=True)
        student.eval()
        torch.save(student.state_dict(), f"{args.state}.c{c + 1}")
        torch.save(student.state_dict(), args.state)
        msg = f"cycle {c + 1} done ({time.time() - t0:.0f} s): state {args.state}.c{c + 1}"
        if xte is not None:
            acc = ft.evaluate(student, xte, yte)
            msg += ", test " + " ".join(f"{n} {a * 100:.2f}%" for n, a in zip(ft.EXIT_NAMES, acc))
        print(msg, flush=True)
    return args.e2e_cycles


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--images", type=int, default=3000, help="training images distilled on")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per part")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3, help="Adam, cosine to 0, per part")
    ap.add_argument("--e2e-steps", type=int, default=0, help="end-to-end fine-tune batches")
    ap.add_argument("--e2e-lr", type=float, default=0.01)
    ap.add_argument("--e2e-cycles", type=int, default=1,
                    help="cosine cycles of --e2e-steps each, the state saved after each")
    ap.add_argument("--e2e-wd", type=float, default=0.0, help="weight decay of conv/Linear")
    ap.add_argument("--train-form", choices=("masked", "grouped"), default="masked",
                    help="end to end on masked dense convs (as the 2026-12-07 runs) or on the "
                    "grouped convs themselves, channels-last (faster here)")
    ap.add_argument("--cycle-eval", action="store_true",
                    help="test accuracy after each cycle (a log; nothing is chosen by it)")
    ap.add_argument("--max-train-s", type=float, default=0,
                    help="end the end-to-end fine-tune after this many seconds (0: no limit)")
    ap.add_argument("--groups", default="4,4,8")
    ap.add_argument("--exit-groups", default="4,8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="models/fmnist-resnet/variants/sparse")
    ap.add_argument("--state", default="/tmp/fmnist-sparse.pt", help="state_dict (not committed)")
    ap.add_argument("--from-state", action="store_true", help="skip block-wise, load --state")
    ap.add_argument("--export-only", action="store_true", help="export untrained, for timing")
    ap.add_argument("--no-eval", action="store_true", help="skip the PyTorch test-set pass")
    return ap.parse_args()


def main():
    args = parse_args()
    gen = ft.setup(args.seed, args.threads)
    groups = tuple(int(v) for v in args.groups.split(","))
    egroups = tuple(int(v) for v in args.exit_groups.split(","))
    student = SparseResNet(groups, egroups, masked=not args.export_only)
    nparams = sum(p.numel() for p in to_grouped(SparseResNet(groups, egroups)).parameters())
    print(f"sparse: groups={groups} exit groups={egroups} params={nparams} (PyTorch, with BN)",
          flush=True)
    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, "model.onnx")
    if args.export_only:
        ft.export(student, onnx_path)
        print(f"wrote {onnx_path} (untrained)")
        return 0

    t_start, cpu_start = time.time(), time.process_time()
    xtr, ytr, xte, yte = ft.data()
    teacher = ft.load(check_images=xte[:100])
    init_from_teacher(student, teacher)
    if args.from_state:
        state = torch.load(args.state)
        if not any(k.endswith(".mask") for k in state):
            student = to_grouped(student)	# a state saved by --train-form grouped
        student.load_state_dict(state)
    else:
        sel = torch.randperm(len(xtr), generator=gen)[:args.images]
        distill_blockwise(student, teacher, xtr[sel], ytr[sel], args, gen)
        torch.save(student.state_dict(), args.state)
    if args.e2e_steps and args.train_form == "grouped":
        student = to_grouped(student).to(memory_format=torch.channels_last)
        teacher = teacher.to(memory_format=torch.channels_last)
    if args.e2e_steps:
        done = finetune_e2e(student, teacher, xtr, ytr, args, gen,
                            *((xte, yte) if args.cycle_eval else ()))
        if done < args.e2e_cycles:
            if args.e2e_cycles > 1:
                print(f"exporting cycle {done}'s state: the unfinished cycle is not annealed")
                if done == 0:
                    return 1
                student.load_state_dict(torch.load(f"{args.state}.c{done}"))
            else:	# one cycle stopped by time: saved as it is (the 2026-12-07 runs)
                torch.save(student.state_dict(), args.state)
    wall, cpu = time.time() - t_start, time.process_time() - cpu_start
    print(f"training time: {wall:.0f} s wall ({wall / 60:.1f} min), {cpu:.0f} s CPU", flush=True)
    student = to_grouped(student).to(memory_format=torch.contiguous_format)
    # Export and references first: on a starved machine the PyTorch test pass comes last.
    ft.export(student, onnx_path)
    print(f"wrote {onnx_path} ({os.path.getsize(onnx_path)} bytes)", flush=True)
    ft.check_export(student, onnx_path, xte[:64])
    ft.write_reference(student, xte, args.out)
    if not args.no_eval:
        acc = ft.evaluate(student, xte, yte)
        for n, a in zip(ft.EXIT_NAMES, acc):
            print(f"test accuracy (PyTorch, 10000 images) {n}: {a * 100:.2f}%", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
