#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Write the ONNX engine's test fixtures: small random-weight models + PyTorch references.

Usage (Debian's PyTorch lives only in the system interpreter):

    /usr/bin/python3 scripts/make_fixtures.py [--out tests/fixtures] [--only NAME] [-v]

Needs python3-torch, python3-numpy, python3-protobuf, protobuf-compiler and libonnx-dev (for
/usr/include/onnx/onnx.proto), all in scripts/deps.sh. Downloads nothing; seeded, so a rerun
gives the same references (the .onnx bytes too, with the same torch build).

For each model, tests/fixtures/<name>/ gets:
    model.onnx          exported by torch.onnx.export
    input.npy           float32, batch of 3
    output_<k>.npy      PyTorch's value of the k-th graph output
    split_<k>.npy       PyTorch's value of an intermediate tensor (a module output), see below
    manifest.txt        one entry per line, space separated, names contain no spaces:
                            model model.onnx
                            input <onnx input name> input.npy
                            output <onnx output name> output_<k>.npy
                            tensor <onnx tensor name> split_<k>.npy
                            tolerance <abs> <rel>

Tolerance: an engine value v passes against reference r when |v - r| <= abs + rel * |r|.
We use abs 1e-4, rel 1e-3: fp32 oneDNN convolutions (different summation order, possibly
Winograd-free direct/GEMM kernels) differ from PyTorch by ~1e-6 relative on these sizes, so
this leaves a wide margin while still catching any semantic error (a wrong pad, a folded BN
with the wrong epsilon, a misplaced activation all give errors > 1e-2).

Intermediate tensors: forward hooks capture every module's output in PyTorch. The module is
mapped to an ONNX tensor name from torch 1.13's scoped node names (scripts/onnx_names.py,
module_output). A mapping is recorded only if (a) exactly one tensor leaves the module's scope,
(b) the shapes agree and (c) our numpy ONNX interpreter (onnx_names.run), run on the exported
file, computes the same value as PyTorch's hook within tolerance. (c) is what keeps us honest:
in a BN-folded graph the Conv node computes conv+bn, so the PyTorch Conv module's output
does not match and is skipped. The graph outputs are checked the same way, so every fixture is
also a check that the export itself is faithful.
"""

import argparse
import os
import shutil
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_names  # noqa: E402  (sibling helper: onnx_pb2 generation, name mapping, interpreter)
from train_fmnist import BasicBlock, MultiExitResNet  # noqa: E402  (same blocks as the demo)

SEED = 20240501
BATCH = 3
TOL_ABS = 1e-4
TOL_REL = 1e-3


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------

class ResNetSmall(nn.Module):
    """ResNet-style: conv-bn-relu + MaxPool stem, a plain block, a strided block with a 1x1
    conv-bn shortcut, another plain block, GlobalAveragePool, Flatten, Linear."""

    def __init__(self, cin=3, ncls=10):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(cin, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1))
        self.layer1 = nn.Sequential(BasicBlock(8, 8, 1))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, 2), BasicBlock(16, 16, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()  # a module, so the flattened feature has a scope/name
        self.fc = nn.Linear(16, ncls)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(self.flatten(self.pool(x)))


class SqueezeExcite(nn.Module):
    """SE: AdaptiveAvgPool -> 1x1 conv -> ReLU -> 1x1 conv -> gate -> Mul. The gate is
    Hardsigmoid (MobileNetV3) or Sigmoid (MobileNetV2/EfficientNet-style SE)."""

    def __init__(self, c, r=4, gate=nn.Hardsigmoid):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, c // r, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(c // r, c, 1)
        self.gate = gate()

    def forward(self, x):
        return x * self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 block: 1x1 expand - depthwise 3x3 (groups=channels) - [SE] - 1x1 project,
    residual Add when shapes allow. `act` is nn.ReLU6 (exported as Clip) or nn.Hardswish."""

    def __init__(self, cin, cout, expand, stride, act, se, se_gate=nn.Hardsigmoid):
        super().__init__()
        mid = cin * expand
        self.expand = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), act())
        self.dw = nn.Sequential(nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False),
                                nn.BatchNorm2d(mid), act())
        self.se = SqueezeExcite(mid, gate=se_gate) if se else nn.Identity()
        self.project = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + y if self.residual else y


class Mixed(nn.Module):
    """Two branches concatenated along channels: a grouped (not depthwise) 3x3 conv, and a
    padded AvgPool2d followed by a 1x1 conv.

    count_include_pad=False on purpose: with the PyTorch default (True) torch 1.13 emits an
    explicit Pad node before AveragePool (see the avgpool_pad fixture); this way the ONNX
    AveragePool carries pads itself, with count_include_pad=0 (border windows divide by the
    number of real pixels).
    """

    def __init__(self, cin, cb):
        super().__init__()
        self.branch_a = nn.Sequential(nn.Conv2d(cin, cb, 3, 1, 1, groups=4, bias=False),
                                      nn.BatchNorm2d(cb),
                                      nn.ReLU(inplace=True))
        self.branch_b = nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False),
                                      nn.Conv2d(cin, cb, 1, bias=False), nn.BatchNorm2d(cb),
                                      nn.ReLU(inplace=True))

    def forward(self, x):
        return torch.cat([self.branch_a(x), self.branch_b(x)], 1)


class ViewFlatten(nn.Module):
    """x.view(x.size(0), -1): with a dynamic batch the exporter emits
    Shape -> Gather -> Unsqueeze -> Concat -> Reshape (the classic torchvision head)."""

    def forward(self, x):
        return x.view(x.size(0), -1)


class MobileNetSmall(nn.Module):
    def __init__(self, ncls=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.Hardswish())                                    # 20 -> 10
        self.block1 = InvertedResidual(16, 16, 3, 1, nn.ReLU6, se=True)              # residual
        self.block2 = InvertedResidual(16, 24, 3, 2, nn.Hardswish, se=False)         # 10 -> 5
        self.mixed = Mixed(24, 16)                                                   # 32 ch
        self.block3 = InvertedResidual(32, 32, 2, 1, nn.Hardswish, se=True,
                                       se_gate=nn.Sigmoid)                           # residual
        # count_include_pad=False only to avoid the exporter's Pad node; with no padding it
        # changes nothing numerically. 5x5 -> 2x2: the last row/column is dropped (floor).
        self.pool = nn.AvgPool2d(2, count_include_pad=False)                         # 5 -> 2
        self.flatten = ViewFlatten()
        self.fc = nn.Linear(32 * 2 * 2, ncls)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        x = self.block3(self.mixed(self.block2(self.block1(self.stem(x)))))
        return self.softmax(self.fc(self.flatten(self.pool(x))))


class AvgPoolPad(nn.Module):
    """PyTorch's default AvgPool2d (count_include_pad=True), as real models use it.

    torch 1.13 exports every such pool as Pad (constant 0) + AveragePool(pads=0), even when
    the padding is 0 (then the Pad node pads nothing). Covers Pad and the include-pad average.
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU(inplace=True))
        self.pool1 = nn.AvgPool2d(3, 1, 1)  # padded: border windows divide by 9
        self.pool2 = nn.AvgPool2d(2)        # Pad node with all-zero pads
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.pool2(self.pool1(self.conv(x))))))


class OpsMix(nn.Module):
    """Ops custom heads and bottlenecks use beyond the ResNet/MobileNet families: PReLU per
    channel, Mish (exported below opset 18 as Softplus -> Tanh -> Mul), torch.maximum (Max),
    a channel RMS normalisation (Pow, ReduceMean with keepdims, Add, Sqrt, Div), the spatial
    mean x.mean((2, 3)) (ReduceMean without keepdims) and LogSoftmax."""

    def __init__(self, ncls=10):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8),
                                   nn.PReLU(8))
        self.conv2 = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8),
                                   nn.Mish())
        self.fc = nn.Linear(8, ncls)
        self.logsoftmax = nn.LogSoftmax(dim=1)

    def forward(self, x):
        a = self.conv1(x)
        y = torch.maximum(self.conv2(a), a)
        y = y / (y.pow(2).mean(1, keepdim=True) + 1e-3).sqrt()
        return self.logsoftmax(self.fc(y.mean((2, 3))))


class ShuffleUnit(nn.Module):
    """ShuffleNetV2's unit: channel split (`chunk` -> Split), a 1x1 / depthwise 3x3 / 1x1
    branch on one half, Concat, channel shuffle (Reshape -> 5-D Transpose -> Reshape), then a
    crop by slicing activations (`x[:, :, 1:-1, 1:-1]` -> Slice with constant bounds) and an
    uneven `torch.split(x, [4, 12], 1)` (-> Split) put back in the other order."""

    def __init__(self, ncls=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU(inplace=True))
        self.branch = nn.Sequential(
            nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
            nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False), nn.BatchNorm2d(8),
            nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.pool = nn.AvgPool2d(4, count_include_pad=False)   # 8x8 -> 2x2 (no Pad node)
        self.fc = nn.Linear(16 * 2 * 2, ncls)

    def forward(self, x):
        x = self.stem(x)
        a, b = x.chunk(2, dim=1)
        x = torch.cat([a, self.branch(b)], 1)
        n, c, h, w = x.shape
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        x = x[:, :, 1:-1, 1:-1]
        p, q = torch.split(x, [4, 12], dim=1)
        x = torch.cat([q, p], 1)
        return self.fc(torch.flatten(self.pool(x), 1))


class Decoder(nn.Module):
    """A bottleneck decoder, what the gateway side of a split runs to restore resolution
    (FrankenSplit-style bottlenecks, autoencoder splits): a strided 2x2 encoder conv, then
    ConvTranspose2d(stride 2, padding 1, output_padding 1), a grouped ConvTranspose2d,
    nn.Upsample nearest x2 (Resize asymmetric/floor) and bilinear x2 (Resize linear,
    pytorch_half_pixel), back down by pooling to a classifier."""

    def __init__(self, ncls=10):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(3, 16, 2, 2), nn.ReLU(inplace=True))      # 8 -> 4
        self.up1 = nn.Sequential(nn.ConvTranspose2d(16, 8, 3, 2, 1, output_padding=1),
                                 nn.BatchNorm2d(8), nn.ReLU(inplace=True))           # 4 -> 8
        self.up2 = nn.ConvTranspose2d(8, 8, 3, 1, 1, groups=2)                       # 8 -> 8
        self.near = nn.Upsample(scale_factor=2, mode="nearest")                       # -> 16
        self.lin = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)  # -> 32
        self.head = nn.Sequential(nn.Conv2d(8, 8, 3, 2, 1), nn.ReLU(inplace=True),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, ncls))

    def forward(self, x):
        return self.head(self.lin(self.near(self.up2(self.up1(self.enc(x))))))


class LayerNormNet(nn.Module):
    """nn.LayerNorm as ConvNeXt uses it: over channels with the tensor permuted to channels
    last and back (Transpose, 4-D LayerNormalization on the last axis), and over the
    features before the classifier. Opset 17 exports LayerNormalization; below it the
    exporter spells it out (ReduceMean, Sub, Pow, Add, Sqrt, Div, Mul)."""

    def __init__(self, ncls=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 2, 1)
        self.ln1 = nn.LayerNorm(16)
        self.conv2 = nn.Conv2d(16, 16, 3, 1, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.ln2 = nn.LayerNorm(16)
        self.fc = nn.Linear(16, ncls)

    def forward(self, x):
        x = self.conv1(x)
        x = self.ln1(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = self.flatten(self.pool(torch.relu(self.conv2(x))))
        return self.fc(self.ln2(x))


class GeluNet(nn.Module):
    """nn.GELU (exported below opset 20 as Div, Erf, Add, Mul, Mul, which the engine fuses into
    one GELU) between convolutions, and F.gelu(x, approximate="tanh") spelled out with Tanh
    and Pow by the exporter."""

    def __init__(self, ncls=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1)
        self.act1 = nn.GELU()
        self.conv2 = nn.Conv2d(16, 16, 3, 2, 1)
        self.act2 = nn.GELU(approximate="tanh")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16, ncls)

    def forward(self, x):
        x = self.act2(self.conv2(self.act1(self.conv1(x))))
        return self.fc(self.flatten(self.pool(x)))


# name -> (constructor, input shape, export options). "bn": keep BatchNormalization nodes.
# Residual blocks of ResNetSmall to drop, alone and together (layer2.0 has a 1x1 conv shortcut:
# not droppable, and the C test checks that it is refused by name).
DROP_SETS = [["layer1.0"], ["layer2.1"], ["layer1.0", "layer2.1"]]

FIXTURES = {
    "resnet_bnfolded": dict(make=ResNetSmall, shape=(3, 16, 16), opset=13, bn=False,
                            dynamic=False, outputs=["logits"]),
    "resnet_bn": dict(make=ResNetSmall, shape=(3, 16, 16), opset=13, bn=True,
                      dynamic=True, outputs=["logits"]),
    "resnet_bn_op17": dict(make=ResNetSmall, shape=(3, 16, 16), opset=17, bn=True,
                           dynamic=True, outputs=["logits"]),
    "mobilenet": dict(make=MobileNetSmall, shape=(3, 20, 20), opset=13, bn=False,
                      dynamic=True, outputs=["probs"]),
    "mobilenet_op11": dict(make=MobileNetSmall, shape=(3, 20, 20), opset=11, bn=False,
                           dynamic=True, outputs=["probs"]),
    "mobilenet_op17": dict(make=MobileNetSmall, shape=(3, 20, 20), opset=17, bn=False,
                           dynamic=True, outputs=["probs"]),
    "multiexit": dict(make=lambda: MultiExitResNet((6, 12, 24), (1, 1, 1)), shape=(1, 28, 28),
                      opset=13, bn=False, dynamic=True, outputs=["exit1", "exit2", "final"],
                      unit_input=True),
    "opsmix": dict(make=OpsMix, shape=(3, 10, 10), opset=13, bn=False, dynamic=True,
                   outputs=["logprobs"]),
    "opsmix_bn_op17": dict(make=OpsMix, shape=(3, 10, 10), opset=17, bn=True, dynamic=True,
                           outputs=["logprobs"]),
    "shuffle": dict(make=ShuffleUnit, shape=(3, 10, 10), opset=13, bn=False, dynamic=True,
                    outputs=["logits"]),
    "shuffle_op11": dict(make=ShuffleUnit, shape=(3, 10, 10), opset=11, bn=True, dynamic=True,
                         outputs=["logits"]),
    "decoder": dict(make=Decoder, shape=(3, 8, 8), opset=13, bn=True, dynamic=True,
                    outputs=["logits"]),
    "layernorm_op17": dict(make=LayerNormNet, shape=(3, 8, 8), opset=17, bn=False,
                           dynamic=True, outputs=["logits"]),
    "layernorm_op13": dict(make=LayerNormNet, shape=(3, 8, 8), opset=13, bn=False,
                           dynamic=True, outputs=["logits"]),
    "gelu": dict(make=GeluNet, shape=(3, 8, 8), opset=13, bn=False, dynamic=True,
                 outputs=["logits"]),
    "avgpool_pad": dict(make=AvgPoolPad, shape=(3, 12, 12), opset=13, bn=False,
                        dynamic=True, outputs=["logits"]),
    # Skip-dropped variants (tailgate-model drop): ResNetSmall with BN kept or folded, opsets
    # 11 and 17; drops.txt gives the outputs of PyTorch's model with residual branches removed.
    "resnet_drop_op11": dict(make=ResNetSmall, shape=(3, 16, 16), opset=11, bn=True,
                             dynamic=True, outputs=["logits"], drops=DROP_SETS),
    "resnet_drop_op17": dict(make=ResNetSmall, shape=(3, 16, 16), opset=17, bn=True,
                             dynamic=True, outputs=["logits"], drops=DROP_SETS),
    "resnet_drop_bnfolded_op11": dict(make=ResNetSmall, shape=(3, 16, 16), opset=11, bn=False,
                                      dynamic=True, outputs=["logits"], drops=DROP_SETS),
    "resnet_drop_bnfolded_op17": dict(make=ResNetSmall, shape=(3, 16, 16), opset=17, bn=False,
                                      dynamic=True, outputs=["logits"], drops=DROP_SETS),
}


# ---------------------------------------------------------------------------------------------
# Building, exporting, checking
# ---------------------------------------------------------------------------------------------

def randomize_bn(model, shape, gen):
    """Gives every BatchNorm realistic but non-trivial parameters and running statistics.

    First the running stats are calibrated on random batches (so activations stay O(1) and the
    absolute tolerance stays meaningful), then weight/bias/mean/var are perturbed so that no
    BN is close to identity: a folding bug (eps, var vs std, forgotten mean) cannot hide.
    """
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(16, *shape, generator=gen))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0.0, 0.2, generator=gen)
                m.running_mean.add_(torch.randn(c, generator=gen) * 0.2 * m.running_var.sqrt())
                m.running_var.mul_(torch.empty(c).uniform_(0.7, 1.5, generator=gen))
                m.momentum = 0.1  # back to the default (it is exported as an attribute)
    model.eval()


def capture(model, x):
    """Runs the model with forward hooks on every submodule.

    Returns (graph outputs as a list of numpy arrays, {module name: numpy output} for modules
    called exactly once with a single tensor output, in call order). Outputs are cloned in the
    hook because inplace ReLUs overwrite them later in the forward pass.
    """
    seen, calls, hooks = {}, {}, []
    for name, mod in model.named_modules():
        if not name:
            continue

        def hook(mod, inp, out, name=name):
            calls[name] = calls.get(name, 0) + 1
            if isinstance(out, torch.Tensor):
                seen[name] = out.detach().clone().contiguous().numpy()
        hooks.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    mods = {k: v for k, v in seen.items() if calls[k] == 1}
    return [o.contiguous().numpy() for o in outs], mods


def export(model, x, path, spec):
    names = spec["outputs"]
    kw = dict(opset_version=spec["opset"], input_names=["input"], output_names=names)
    if spec["dynamic"]:
        kw["dynamic_axes"] = {n: {0: "N"} for n in ["input"] + names}
    if spec["bn"]:
        # With TrainingMode.EVAL torch 1.13 runs its eval peephole pass, which folds BN into the
        # preceding Conv whatever do_constant_folding says. PRESERVE skips that pass; with the
        # module in eval() the BatchNormalization nodes are exported in inference form (running
        # statistics; opset >= 14 also writes training_mode=0).
        kw.update(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    else:
        kw.update(training=torch.onnx.TrainingMode.EVAL, do_constant_folding=True)
    torch.onnx.export(model, x, path, **kw)


def close(ref, val):
    """The manifest's rule: |val - ref| <= abs + rel*|ref|, elementwise."""
    return ref.shape == val.shape and bool(
        np.all(np.abs(val - ref) <= TOL_ABS + TOL_REL * np.abs(ref)))


def make_fixture(name, spec, outdir, verbose):
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    model = spec["make"]()
    randomize_bn(model, spec["shape"], gen)
    if spec.get("unit_input"):  # the demo model's contract: pixels in [0, 1]
        x = torch.rand(BATCH, *spec["shape"], generator=gen)
    else:
        x = torch.randn(BATCH, *spec["shape"], generator=gen)

    d = os.path.join(outdir, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    onnx_path = os.path.join(d, "model.onnx")
    export(model, x, onnx_path, spec)
    outs, mods = capture(model, x)

    proto = onnx_names.load(onnx_path)
    g = proto.graph
    inits = {i.name for i in g.initializer}
    in_names = [i.name for i in g.input if i.name not in inits]
    out_names = [o.name for o in g.output]
    assert in_names == ["input"] and out_names == spec["outputs"], (in_names, out_names)
    if spec["bn"]:
        assert "BatchNormalization" in onnx_names.op_types(g), f"{name}: BN was folded"
    else:
        assert "BatchNormalization" not in onnx_names.op_types(g), f"{name}: BN not folded"

    # Independent check of the exported file: our float64 interpreter vs PyTorch.
    env = onnx_names.run(proto, {"input": x.numpy()})
    for oname, ref in zip(out_names, outs):
        err = np.abs(env[oname] - ref).max()
        if not close(ref, env[oname]):
            sys.exit(f"{name}: output {oname} differs from PyTorch (max abs err {err:g})")

    lines = ["model model.onnx", "input input input.npy"]
    np.save(os.path.join(d, "input.npy"), x.numpy().astype(np.float32))
    for k, (oname, ref) in enumerate(zip(out_names, outs)):
        np.save(os.path.join(d, f"output_{k}.npy"), ref.astype(np.float32))
        lines.append(f"output {oname} output_{k}.npy")

    recorded, skipped = {}, []
    for mod_name, ref in mods.items():  # call order = topological order
        tname = onnx_names.module_output(g, mod_name)
        if tname is None:
            skipped.append((mod_name, "no single tensor leaves its scope (folded or multi)"))
        elif tname in out_names or tname in recorded:
            continue  # already a graph output / same tensor as an enclosing module's output
        elif env[tname].shape != ref.shape:
            skipped.append((mod_name, f"shape {env[tname].shape} != {ref.shape}"))
        elif not close(ref, env[tname]):
            skipped.append((mod_name, f"value differs ({tname}; e.g. a folded BN)"))
        else:
            recorded[tname] = (mod_name, ref)
    for k, (tname, (mod_name, ref)) in enumerate(recorded.items()):
        np.save(os.path.join(d, f"split_{k}.npy"), ref.astype(np.float32))
        lines.append(f"tensor {tname} split_{k}.npy")
    lines.append(f"tolerance {TOL_ABS:g} {TOL_REL:g}")
    with open(os.path.join(d, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")

    if spec.get("drops"):
        model.eval()
        write_drops(model, x, d, g, spec["drops"])
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"{name}: opset {spec['opset']}, {len(recorded)} tensors, {size // 1024} KiB, "
          f"ops {onnx_names.op_counts(g)}")
    if verbose:
        for tname, (mod_name, ref) in recorded.items():
            print(f"    {mod_name:32s} -> {tname} {list(ref.shape)}")
        for mod_name, why in skipped:
            print(f"    skipped {mod_name}: {why}")
    return size


def write_drops(model, x, d, g, sets):
    """drops.txt: per drop set, the Add node names and PyTorch's outputs with those blocks'
    residual branches removed (relu2(shortcut) instead of relu2(branch + shortcut))."""
    adds = {n.name for n in g.node if n.op_type == "Add"}
    lines = []
    for k, mods in enumerate(sets):
        saved = {}
        names = []
        for mod in mods:
            blk = model.get_submodule(mod)
            parts = mod.split(".")
            name = "/" + "/".join(".".join(parts[:i + 1]) for i in range(len(parts))) + "/Add"
            assert name in adds, (name, sorted(adds))
            names.append(name)
            saved[mod] = blk.forward
            blk.forward = (lambda x, b=blk: b.relu2(x if b.downsample is None
                                                   else b.downsample(x)))
        with torch.no_grad():
            out = model(x)
        for mod in mods:
            model.get_submodule(mod).forward = saved[mod]
        np.save(os.path.join(d, f"drop_{k}.npy"), out.contiguous().numpy().astype(np.float32))
        lines.append(f"drop {','.join(names)} drop_{k}.npy")
    with open(os.path.join(d, "drops.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
    ap.add_argument("--only", help="write just this fixture")
    ap.add_argument("-v", "--verbose", action="store_true", help="list mapped and skipped modules")
    args = ap.parse_args()
    torch.set_num_threads(1)  # small models; the reference values do not depend on this
    total = 0
    for name, spec in FIXTURES.items():
        if args.only and name != args.only:
            continue
        total += make_fixture(name, spec, os.path.normpath(args.out), args.verbose)
    print(f"total {total // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
