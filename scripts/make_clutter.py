#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Cluttered Fashion-MNIST: a camera-like data set built from Debian's Fashion-MNIST.

Usage (numpy only, no torch: Debian's python3-numpy, so /usr/bin/python3):

    /usr/bin/python3 scripts/make_clutter.py --split t10k --count 2000 --out DIR      # test samples
    /usr/bin/python3 scripts/make_clutter.py --split train --count 2000 --out DIR     # training samples

writes DIR/inputs.npy (float32 [N, 1, S, S] = pixel / 255, what models/clutter-resnet takes)
and DIR/labels.npy (int64 [N]), the layout of `tailgate-model eval --eval DIR` and of
`tailgate-bench --inputs DIR`. scripts/train_clutter.py imports compose() for its training
set, so training and every evaluation see the same images.

After Cluttered MNIST (Jaderberg et al., Spatial Transformer Networks): each sample is an
S x S canvas (S = 96 by default) holding one Fashion-MNIST item, resized to a random side of
28 to 56 pixels (bilinear) at a random position, over
  * a background: a random grey level (0 to 0.25) plus a random linear gradient (up to 0.15
    across the canvas) plus per-pixel sensor noise, uniform with a random amplitude 0.10 to
    0.30: like a camera frame, and unlike a black canvas, it is not squeezed by the wire's
    LZ4 (u8 + LZ4 keeps about 99% of the bytes, CARD.md);
  * 6 distractors: 14 x 14 crops from other items of the same split, at random positions,
    with random intensity 0.4 to 1.0;
composed by maximum (a brighter pixel wins), as Cluttered MNIST's patches are. The label is
the item's. Sample i of a split depends only on (--seed, the split, i): numpy's PCG64 seeded
by SeedSequence([seed, split, i]), so any prefix or subset is reproduced exactly, in any order.
The item of sample i is image i mod 60,000 (train) or i mod 10,000 (t10k); beyond one pass
the clutter, scale and position differ.
"""

import argparse
import gzip
import os
import sys

import numpy as np

DATA_DIR = "/usr/share/datasets/fashion-mnist"
SPLIT_ID = {"train": 1, "t10k": 2}
N_DISTRACT = 6
PATCH = 14


def load_idx(path):
    """A gzipped (or plain) idx file as a numpy array (big-endian header, uint8 payload)."""
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fmnist(split, data_dir=DATA_DIR):
    """(images uint8 [N,28,28], labels uint8 [N]) of Fashion-MNIST's 'train' or 't10k'."""
    def one(kind):
        p = os.path.join(data_dir, f"{split}-{kind}-idx{3 if kind == 'images' else 1}-ubyte")
        return load_idx(p + ".gz" if os.path.exists(p + ".gz") else p)
    return one("images"), one("labels")


def resize(img, side):
    """Bilinear resize of a float [h, w] image to [side, side] (pixel centres aligned)."""
    h, w = img.shape
    ys = (np.arange(side) + 0.5) * h / side - 0.5
    xs = (np.arange(side) + 0.5) * w / side - 0.5
    y0 = np.clip(np.floor(ys).astype(int), 0, h - 1)
    x0 = np.clip(np.floor(xs).astype(int), 0, w - 1)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy = np.clip(ys - y0, 0, 1)[:, None]
    wx = np.clip(xs - x0, 0, 1)[None, :]
    top = img[y0][:, x0] * (1 - wx) + img[y0][:, x1] * wx
    bot = img[y1][:, x0] * (1 - wx) + img[y1][:, x1] * wx
    return top * (1 - wy) + bot * wy


def compose(images, i, split, seed, size=96):
    """Sample i of split: (float32 [size, size] in [0, 1], index of its item in images)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, SPLIT_ID[split], i])))
    n = len(images)
    item = i % n
    yy, xx = np.mgrid[0:size, 0:size] / size
    g = rng.uniform(-0.15, 0.15, 2)
    canvas = rng.uniform(0, 0.25) + g[0] * yy + g[1] * xx
    canvas = canvas + rng.uniform(0, rng.uniform(0.10, 0.30), (size, size))
    for _ in range(N_DISTRACT):
        src = images[rng.integers(0, n)].astype(np.float64) / 255.0
        sy, sx = rng.integers(0, 28 - PATCH + 1, 2)
        py, px = rng.integers(0, size - PATCH + 1, 2)
        patch = src[sy:sy + PATCH, sx:sx + PATCH] * rng.uniform(0.4, 1.0)
        np.maximum(canvas[py:py + PATCH, px:px + PATCH], patch,
                   out=canvas[py:py + PATCH, px:px + PATCH])
    side = int(rng.integers(28, 57))
    obj = resize(images[item].astype(np.float64) / 255.0, side)
    oy, ox = rng.integers(0, size - side + 1, 2)
    np.maximum(canvas[oy:oy + side, ox:ox + side], obj, out=canvas[oy:oy + side, ox:ox + side])
    # Quantised to 8 bits as a camera delivers it: the model sees pixel / 255.
    return (np.round(np.clip(canvas, 0, 1) * 255) / 255).astype(np.float32), item


def make(split, count, seed, size, data_dir=DATA_DIR, first=0):
    """count samples from index first: (float32 [count,1,size,size], int64 labels [count])."""
    images, labels = load_fmnist(split, data_dir)
    x = np.empty((count, 1, size, size), np.float32)
    y = np.empty(count, np.int64)
    for k in range(count):
        x[k, 0], item = compose(images, first + k, split, seed, size)
        y[k] = labels[item]
    return x, y


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=sorted(SPLIT_ID), required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--first", type=int, default=0, help="index of the first sample")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--size", type=int, default=96, help="canvas side in pixels")
    ap.add_argument("--data-dir", default=DATA_DIR)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.count < 1 or args.first < 0 or args.size < 57:
        ap.error("--count >= 1, --first >= 0, --size >= 57 (the largest item is 56 pixels)")
    x, y = make(args.split, args.count, args.seed, args.size, args.data_dir, args.first)
    os.makedirs(args.out, exist_ok=True)
    np.save(os.path.join(args.out, "inputs.npy"), x)
    np.save(os.path.join(args.out, "labels.npy"), y)
    print(f"make_clutter: {args.count} {args.split} samples from {args.first}, seed {args.seed}, "
          f"{args.size}x{args.size} -> {args.out}/inputs.npy, labels.npy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
