#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Train and export fmnist-resnet's bottleneck-injected variant ("bottleneck").

Usage (Debian's PyTorch lives only in the system interpreter; the committed file's two
commands, with their bounds, are in models/fmnist-resnet/variants/bottleneck/TRAINING.md):

    /usr/bin/python3 scripts/train_bottleneck.py --threads 1 [--epochs N] [--seed S]
    /usr/bin/python3 scripts/train_bottleneck.py --threads 1 --from-state --kd-steps N

Shallow variational bottleneck injection after FrankenSplit (Furutanpey et al.): the shipped
model's head up to the end of stage 1 (split 4 of its card, [32,28,28], 25,088 u8 bytes) is
replaced by a small learned encoder on the device whose output, the split tensor [C,7,7]
(C = 4: 196 values; split 8 of the file, "/encoder/body/body.11/Relu_output_0"), is what
goes on the wire (u8 + LZ4: at most 196 bytes, less where LZ4 finds runs); a light decoder on the gateway restores the stage-1 output
the shipped tail expects (its exit1, stage 2, exit2, stage 3, final are used as they are,
frozen). Only encoder and decoder are trained (~ 0.1 M parameters), by distillation from the
shipped model's stage-1 features:

  * loss = saliency-weighted MSE to the shipped model's stage-1 output + rate term.
    Saliency (FrankenSplit's saliency-guided distortion): per image and position, the
    magnitude of the gradient of the shipped model's final-exit loss with respect to its
    stage-1 output, summed over channels, normalised to mean 1 and mixed half-half with a
    uniform weight. Justification: to first order the change of the task loss caused by a
    feature error e is <grad, e>, so errors where the tail is sensitive cost accuracy and
    errors elsewhere hardly do; the uniform half keeps every position reconstructed.
    Computed once per cached image (one backward of the frozen tail), so training never
    backpropagates through the tail.
  * "variational" part: during training the bottleneck gets additive uniform noise of one
    u8 quantisation step (scale = per-image max / 255, as the client library's u8 quantiser
    sets it: affine over [0, max] for a non-negative tensor), the usual differentiable proxy
    of quantisation; the rate term is a small L1 penalty on the bottleneck (zeros make runs
    LZ4 can take).

Then, optionally (--kd-steps N, also from a saved state with --from-state), end to end: the
encoder and decoder learn the shipped model's answers through the frozen tail, on augmented
training images with the shipped model run on the fly: every exit's distillation loss (T = 4,
alpha = 0.7 with label-smoothed CE; weights 0.3/0.3/1.0 as the shipped model's training) plus
the normalised feature MSE to its stage-1 output and the rate term, the bottleneck noised as
above; Adam from --kd-lr, cosine, bounded by --max-kd-s. The feature stage alone stops short of
the accuracy: it matches features, not the answers the tail gives from them.

Training data: a seeded subset of the training images (--images), augmented by a horizontal
flip (the teacher's features of flipped images are cached too). Adam, cosine schedule.
Export: opset 13, BN folded, dynamic batch, as the shipped model: input -> encoder ->
"bottleneck" -> decoder -> shipped tail -> exit1, exit2, final. Checked against PyTorch with the
numpy ONNX interpreter; 8 test images and PyTorch's logits go to variants/bottleneck/reference/.
"""

import argparse
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fmnist_teacher as ft  # noqa: E402
import train_fmnist as tf  # noqa: E402


def cbr(cin, cout, k, stride):
    return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


class Encoder(nn.Module):
    """Device side: 28x28 -> C x 7x7, non-negative (ReLU) so u8 quantises it over [0, max]."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(*cbr(1, 32, 3, 1), *cbr(32, 32, 3, 2), *cbr(32, 48, 3, 2),
                                  nn.Conv2d(48, channels, 1, 1, 0, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.body(x)


class Decoder(nn.Module):
    """Gateway side: C x 7x7 -> the shipped model's stage-1 output [32,28,28] (after ReLU)."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(
            *cbr(channels, 64, 3, 1), *cbr(64, 64, 3, 1),
            nn.ConvTranspose2d(64, 48, 2, 2), nn.ReLU(inplace=True),
            *cbr(48, 32, 3, 1),
            nn.ConvTranspose2d(32, 32, 2, 2), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 1, 1, 0), nn.ReLU(inplace=True))

    def forward(self, z):
        return self.body(z)


class BottleneckNet(nn.Module):
    """input -> encoder -> bottleneck -> decoder -> the shipped model's tail after stage 1."""

    def __init__(self, teacher, channels):
        super().__init__()
        self.encoder = Encoder(channels)
        self.decoder = Decoder(channels)
        self.exit1, self.layer2, self.exit2 = teacher.exit1, teacher.layer2, teacher.exit2
        self.layer3, self.pool, self.fc = teacher.layer3, teacher.pool, teacher.fc

    def tail(self, l1):
        e1 = self.exit1(l1)
        l2 = self.layer2(l1)
        e2 = self.exit2(l2)
        return e1, e2, self.fc(torch.flatten(self.pool(self.layer3(l2)), 1))

    def forward(self, x):
        return self.tail(self.decoder(self.encoder(x)))


def quantize_u8(z):
    """What the client library does to a non-negative tensor per request: u8 affine over
    [0, max] (zero point 0), round half to even; back to f32."""
    scale = z.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1) / 255.0
    return torch.round(z / scale).clamp(0, 255) * scale


def noisy(z, gen):
    scale = z.detach().flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1) / 255.0
    u = torch.rand(z.shape, generator=gen) - 0.5
    return z + u * scale


def saliency(teacher, l1, y, bs=250):
    """|d CE(final) / d stage-1 output| summed over channels, per image normalised to mean 1."""
    out = []
    for i in range(0, len(l1), bs):
        f = l1[i:i + bs].clone().requires_grad_(True)
        loss = F.cross_entropy(teacher_tail(teacher, f), y[i:i + bs], reduction="sum")
        (g,) = torch.autograd.grad(loss, f)
        s = g.abs().sum(1, keepdim=True)
        out.append(s / s.flatten(1).mean(1).clamp_min(1e-12).view(-1, 1, 1, 1))
    return torch.cat(out)


def teacher_tail(t, l1):
    return t.fc(torch.flatten(t.pool(t.layer3(t.layer2(l1))), 1))


@torch.no_grad()
def evaluate(model, x, y, quant, bs=500):
    """Top-1 per exit, with the bottleneck quantised to u8 (quant) or in f32; mean bottleneck
    zeros (share)."""
    model.eval()
    correct, zeros = [0, 0, 0], 0.0
    for i in range(0, len(x), bs):
        z = model.encoder(x[i:i + bs])
        zeros += (z == 0).float().mean().item() * len(z)
        if quant:
            z = quantize_u8(z)
        for k, o in enumerate(model.tail(model.decoder(z))):
            correct[k] += (o.argmax(1) == y[i:i + bs]).sum().item()
    return [c / len(x) for c in correct], zeros / len(x)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--channels", type=int, default=4, help="bottleneck channels (7x7 each)")
    ap.add_argument("--images", type=int, default=1500, help="training images distilled on")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--rate", type=float, default=1e-3, help="L1 weight on the bottleneck")
    ap.add_argument("--no-saliency", action="store_true", help="plain MSE (for comparison)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-eval", action="store_true", help="skip the PyTorch test-set passes")
    ap.add_argument("--max-train-s", type=float, default=0,
                    help="start no epoch after this many seconds of training (0: no limit)")
    ap.add_argument("--from-state", action="store_true",
                    help="skip the feature stage: load encoder and decoder from --state")
    ap.add_argument("--kd-steps", type=int, default=0, help="end-to-end distillation batches")
    ap.add_argument("--kd-lr", type=float, default=5e-4)
    ap.add_argument("--max-kd-s", type=float, default=0,
                    help="end the end-to-end stage after this many seconds (0: no limit)")
    ap.add_argument("--out", default="models/fmnist-resnet/variants/bottleneck")
    ap.add_argument("--state", default="/tmp/fmnist-bottleneck.pt", help="state_dict (not committed)")
    return ap.parse_args()


def finetune_kd(model, teacher, xtr, ytr, args, gen):
    """End to end through the frozen tail (its parameters are the teacher's, not trained)."""
    params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    opt = torch.optim.Adam(params, lr=args.kd_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.kd_steps)
    model.encoder.train()
    model.decoder.train()
    t0 = time.time()
    for s in range(args.kd_steps):
        if args.max_kd_s and time.time() - t0 > args.max_kd_s:
            print(f"stopping after {s} steps: --max-kd-s {args.max_kd_s} reached", flush=True)
            break
        idx = torch.randint(0, len(xtr), (args.batch,), generator=gen)
        xb, yb = tf.augment(xtr[idx], gen), ytr[idx]
        with torch.no_grad():
            l1_t = teacher.layer1(teacher.stem(xb))
            tout = teacher(xb)
        z = model.encoder(xb)
        rec = model.decoder(noisy(z, gen))
        loss = sum(w * ft.kd_loss(o, t, yb)
                   for w, o, t in zip(tf.EXIT_WEIGHTS, model.tail(rec), tout))
        loss = loss + ((rec - l1_t) ** 2).mean() / (l1_t ** 2).mean() + args.rate * z.abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (s + 1) % 20 == 0:
            print(f"  kd step {s + 1}/{args.kd_steps} loss={loss.item():.4f} "
                  f"({time.time() - t0:.0f} s)", flush=True)
    model.eval()


def main():
    args = parse_args()
    gen = ft.setup(args.seed, args.threads)
    t_start, cpu_start = time.time(), time.process_time()
    xtr, ytr, xte, yte = ft.data()
    teacher = ft.load(check_images=xte[:100])
    model = BottleneckNet(teacher, args.channels)
    enc_p = sum(p.numel() for p in model.encoder.parameters())
    dec_p = sum(p.numel() for p in model.decoder.parameters())
    print(f"bottleneck: {args.channels}x7x7, encoder {enc_p} + decoder {dec_p} parameters "
          "(PyTorch, with BN)", flush=True)

    if args.from_state:
        st = torch.load(args.state)
        model.encoder.load_state_dict(st["encoder"])
        model.decoder.load_state_dict(st["decoder"])
        print(f"encoder and decoder from {args.state}", flush=True)
    else:
        feature_stage(model, teacher, xtr, ytr, args, gen, t_start)
    if args.kd_steps:
        finetune_kd(model, teacher, xtr, ytr, args, gen)
    torch.save({"encoder": model.encoder.state_dict(), "decoder": model.decoder.state_dict()},
               args.state)
    wall, cpu = time.time() - t_start, time.process_time() - cpu_start
    print(f"training time: {wall:.0f} s wall ({wall / 60:.1f} min), {cpu:.0f} s CPU", flush=True)
    # Export and references first: on a starved machine the PyTorch test passes come last.
    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, "model.onnx")
    model.eval()
    ft.export(model, onnx_path)
    print(f"wrote {onnx_path} ({os.path.getsize(onnx_path)} bytes)", flush=True)
    ft.check_export(model, onnx_path, xte[:64])
    ft.write_reference(model, xte, args.out)
    if not args.no_eval:
        acc_f, zeros = evaluate(model, xte, yte, quant=False)
        acc_q, _ = evaluate(model, xte, yte, quant=True)
        print(f"bottleneck zeros: {zeros * 100:.1f}% of values (test set)")
        for n, a, b in zip(ft.EXIT_NAMES, acc_f, acc_q):
            print(f"test accuracy (PyTorch, 10000 images) {n}: {a * 100:.2f}% "
                  f"(bottleneck as u8: {b * 100:.2f}%)", flush=True)
    return 0


def feature_stage(model, teacher, xtr, ytr, args, gen, t_start):
    """Saliency-weighted feature distillation on cached stage-1 outputs (the docstring)."""
    sel = torch.randperm(len(xtr), generator=gen)[:args.images]
    x = torch.cat([xtr[sel], xtr[sel].flip(3)])
    y = torch.cat([ytr[sel], ytr[sel]])
    with torch.no_grad():
        l1 = torch.cat([teacher.layer1(teacher.stem(x[i:i + 500]))
                        for i in range(0, len(x), 500)])
    if args.no_saliency:
        w = torch.ones(len(x), 1, 28, 28)
    else:
        # One backward of the tail per image, on the unflipped half; a flipped image takes
        # its original's map, flipped (an approximation: it halves the cost).
        half = len(x) // 2
        sal = saliency(teacher, l1[:half], y[:half])
        w = 0.5 + 0.5 * torch.cat([sal, sal.flip(3)])
    print(f"cached stage-1 features{'' if args.no_saliency else ' and saliency'} of "
          f"{len(x)} images ({time.time() - t_start:.0f} s)", flush=True)
    denom = (l1 ** 2).mean()

    params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    opt = torch.optim.Adam(params, lr=args.lr)
    steps = args.epochs * ((len(x) + args.batch - 1) // args.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    t_train = time.time()
    for epoch in range(args.epochs):
        if args.max_train_s and time.time() - t_train > args.max_train_s:
            print(f"stopping after {epoch} epochs: --max-train-s {args.max_train_s} reached")
            break
        model.encoder.train()
        model.decoder.train()
        t0, tot, n = time.time(), 0.0, len(x)
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, args.batch):
            idx = perm[s:s + args.batch]
            z = model.encoder(x[idx])
            rec = model.decoder(noisy(z, gen))
            loss = (w[idx] * (rec - l1[idx]) ** 2).mean() / denom + args.rate * z.abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(idx)
        print(f"epoch {epoch + 1}/{args.epochs} loss={tot / n:.4f} ({time.time() - t0:.0f} s)",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
