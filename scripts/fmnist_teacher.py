#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The shipped fmnist-resnet as a PyTorch module, read back from its committed ONNX file.

The variants of scripts/train_sparse.py and scripts/train_bottleneck.py are distilled from the
shipped model. Its state_dict was never committed (train_fmnist.py writes it to /tmp), but the
ONNX file holds every weight: BatchNorm is folded into each Conv's weight and bias, so the
teacher here is train_fmnist.MultiExitResNet with every BatchNorm replaced by Identity and every
Conv given a bias. load() checks the rebuilt module against the file with the numpy ONNX
interpreter of scripts/onnx_names.py, so a mapping error cannot go unnoticed.

Also the shared helpers of both scripts: determinism, Fashion-MNIST, the evaluation per exit,
the export (opset 13, BN folded, dynamic batch, as the shipped model) and the reference
fixtures (.npy + manifest.txt) that tests/variants_check.sh has the engine checked against
(tests/fixtures_check.c).
"""

import os
import sys

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import onnx_names  # noqa: E402
import train_fmnist as tf  # noqa: E402

SHIPPED = os.path.join(HERE, "..", "models", "fmnist-resnet", "model.onnx")
EXIT_NAMES = tf.EXIT_NAMES

# ONNX Conv node -> module of MultiExitResNet((32, 64, 128), (1, 1, 1)) it was exported from.
CONV_NODES = {
    "/stem/stem.0/Conv": "stem.0",
    "/layer1/layer1.0/conv1/Conv": "layer1.0.conv1",
    "/layer1/layer1.0/conv2/Conv": "layer1.0.conv2",
    "/exit1/conv/Conv": "exit1.conv",
    "/layer2/layer2.0/downsample/downsample.0/Conv": "layer2.0.downsample.0",
    "/layer2/layer2.0/conv1/Conv": "layer2.0.conv1",
    "/layer2/layer2.0/conv2/Conv": "layer2.0.conv2",
    "/exit2/conv/Conv": "exit2.conv",
    "/layer3/layer3.0/downsample/downsample.0/Conv": "layer3.0.downsample.0",
    "/layer3/layer3.0/conv1/Conv": "layer3.0.conv1",
    "/layer3/layer3.0/conv2/Conv": "layer3.0.conv2",
}


def setup(seed, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True)
    return torch.Generator().manual_seed(seed)


def _fold_bn_away(model):
    """BatchNorm -> Identity and bias on every Conv: the shape of a BN-folded export."""
    for name, mod in list(model.named_modules()):
        for cname, child in list(mod.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(mod, cname, nn.Identity())
            elif isinstance(child, nn.Conv2d) and child.bias is None:
                child.bias = nn.Parameter(torch.zeros(child.out_channels))
    return model


def load(path=SHIPPED, check_images=None):
    """The shipped model (eval mode, frozen) with the weights of the ONNX file at path."""
    proto = onnx_names.load(path)
    init = {t.name: onnx_names.tensor_to_numpy(t) for t in proto.graph.initializer}
    model = _fold_bn_away(tf.MultiExitResNet((32, 64, 128), (1, 1, 1)))
    mods = dict(model.named_modules())
    seen = set()
    for n in proto.graph.node:
        if n.op_type == "Conv":
            conv = mods[CONV_NODES[n.name]]
            conv.weight.data = torch.from_numpy(init[n.input[1]].copy())
            conv.bias.data = torch.from_numpy(init[n.input[2]].copy())
            seen.add(n.name)
    assert seen == set(CONV_NODES), f"{path}: Conv nodes {sorted(seen)}"
    for fc in ("exit1.fc", "exit2.fc", "fc"):
        mods[fc].weight.data = torch.from_numpy(init[fc + ".weight"].copy())
        mods[fc].bias.data = torch.from_numpy(init[fc + ".bias"].copy())
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if check_images is not None:
        env = onnx_names.run(proto, {"input": check_images.contiguous().numpy()})
        with torch.no_grad():
            ref = model(check_images)
        for name, r in zip(EXIT_NAMES, ref):
            err = np.abs(env[name] - r.numpy()).max()
            assert err < 1e-3, f"teacher {name} differs from {path}: {err}"
        print(f"teacher: rebuilt from {path}, matches it on {len(check_images)} images", flush=True)
    return model


def data():
    """(x_train, y_train, x_test, y_test), x f32 [N,1,28,28] = pixel / 255."""
    xtr, ytr = tf.load_split("train")
    xte, yte = tf.load_split("t10k")
    return xtr, ytr, xte, yte


@torch.no_grad()
def evaluate(model, x, y, bs=1000):
    """Top-1 accuracy per output of model (a tuple of logits), in order."""
    model.eval()
    correct = None
    for i in range(0, len(x), bs):
        outs = model(x[i:i + bs])
        c = [(o.argmax(1) == y[i:i + bs]).sum().item() for o in outs]
        correct = c if correct is None else [a + b for a, b in zip(correct, c)]
    return [c / len(x) for c in correct]


def export(model, path, output_names=EXIT_NAMES):
    """As train_fmnist.export: opset 13, eval mode, BN folded by constant folding, dynamic N."""
    model.eval()
    axes = {n: {0: "N"} for n in ["input"] + list(output_names)}
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), path, opset_version=13,
                      input_names=["input"], output_names=list(output_names), dynamic_axes=axes,
                      do_constant_folding=True, training=torch.onnx.TrainingMode.EVAL)


def check_export(model, path, x, output_names=EXIT_NAMES, tol=1e-3):
    """Exported file vs PyTorch on x with the numpy ONNX interpreter (no onnxruntime here)."""
    proto = onnx_names.load(path)
    assert [o.name for o in proto.graph.output] == list(output_names)
    env = onnx_names.run(proto, {"input": x.contiguous().numpy()})
    with torch.no_grad():
        ref = model.eval()(x)
    for name, r in zip(output_names, ref):
        err = np.abs(env[name] - r.numpy()).max()
        print(f"export check {name}: max |onnx - torch| = {err:.2e} on {len(x)} test images")
        assert err < tol, f"exported {name} differs from PyTorch"
    print("ops", onnx_names.op_counts(proto.graph))


def write_reference(model, xte, outdir, n=8, output_names=EXIT_NAMES):
    """The first n test images and PyTorch's logits for them, as .npy beside the model:
    tests/variants_check.sh runs the committed file with the engine and compares."""
    with torch.no_grad():
        outs = model.eval()(xte[:n])
    ref = os.path.join(outdir, "reference")
    os.makedirs(ref, exist_ok=True)
    np.save(os.path.join(ref, "input.npy"), np.ascontiguousarray(xte[:n].numpy(), np.float32))
    for name, o in zip(output_names, outs):
        np.save(os.path.join(ref, f"{name}.npy"), np.ascontiguousarray(o.numpy(), np.float32))
    write_manifest(outdir, output_names)
    print(f"wrote {ref}/ (input and {len(outs)} outputs for {n} test images) and manifest.txt")


def write_manifest(outdir, output_names=EXIT_NAMES):
    """outdir/manifest.txt in tests/fixtures_check.c's format, naming reference/*.npy."""
    with open(os.path.join(outdir, "manifest.txt"), "w") as f:
        f.write("# PyTorch's logits for the first test images (tests/variants_check.sh)\n")
        f.write("model model.onnx\ninput input reference/input.npy\n")
        for name in output_names:
            f.write(f"output {name} reference/{name}.npy\n")
        f.write("tolerance 0.0001 0.001\n")


if __name__ == "__main__":
    # scripts/fmnist_teacher.py --manifest DIR: (re)write DIR/manifest.txt for its references.
    if len(sys.argv) == 3 and sys.argv[1] == "--manifest":
        write_manifest(sys.argv[2])
    else:
        sys.exit("usage: fmnist_teacher.py --manifest VARIANT_DIR")


def kd_loss(student, teacher, labels, t=4.0, alpha=0.7, ls=0.1):
    """Hinton's distillation: alpha * T^2 * KL(teacher_T || student_T) + (1-alpha) * CE."""
    import torch.nn.functional as F
    kl = F.kl_div(F.log_softmax(student / t, 1), F.log_softmax(teacher / t, 1),
                  reduction="batchmean", log_target=True)
    return alpha * t * t * kl + (1 - alpha) * F.cross_entropy(student, labels, label_smoothing=ls)
