# SPDX-License-Identifier: Apache-2.0
"""The benchmark models in PyTorch, with their split points at module boundaries.

Each model class has:
  SPLITS      split point names in execution order ("input" is the whole model);
  onnx_name(split)  the ONNX tensor torch 1.13's exporter gives that boundary (it names a node
              output "/<module scope>/<Op>_output_0"), so the C engine, ONNX Runtime and PyTorch
              run the same tail;
  tail(x, split)    the outputs that depend on the split tensor x, in graph-output order.

Used by scripts/make_bench_models.py (export) and bench/engine/torch_bench.py (the PyTorch peer).
"""

import functools
import importlib.util
import os

import torch
import torch.nn as nn

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


@functools.lru_cache(maxsize=None)
def _train_fmnist_module():
    path = os.path.join(ROOT, "scripts", "train_fmnist.py")
    spec = importlib.util.spec_from_file_location("train_fmnist", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# The ResNet basic block (named like torchvision's: conv1 bn1 relu conv2 bn2, downsample) is
# scripts/train_fmnist.py's, the one every model script here uses.
Block = _train_fmnist_module().BasicBlock


class ResNet224(nn.Module):
    """ResNet-18: 7x7/2 stem + 3x3/2 max pool, 4 stages of 2 basic blocks, GAP, Linear."""

    SPLITS = ["input", "stem", "layer1", "layer2", "layer3", "layer4", "pool"]

    def __init__(self, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2), ncls=1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 7, 2, 3, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, 1))
        cin = widths[0]
        self.blocks = blocks
        for i, (w, n) in enumerate(zip(widths, blocks)):
            layers = [Block(cin, w, 1 if i == 0 else 2)] + [Block(w, w, 1) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
            cin = w
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, ncls)

    def onnx_name(self, split):
        if split == "input":
            return "input"
        if split == "stem":
            return "/stem/stem.3/MaxPool_output_0"
        if split == "pool":
            return "/pool/GlobalAveragePool_output_0"
        k = int(split[len("layer"):])
        return f"/{split}/{split}.{self.blocks[k - 1] - 1}/relu2/Relu_output_0"

    def tail(self, x, split):
        i = self.SPLITS.index(split)
        if i < 1:
            x = self.stem(x)
        for k in range(1, 5):
            if i < k + 1:
                x = getattr(self, f"layer{k}")(x)
        if i < 6:
            x = self.pool(x)
        return [self.fc(torch.flatten(x, 1))]

    def forward(self, x):
        return self.tail(x, "input")[0]


def randomize_bn(model, seed):
    """Non-trivial BatchNorm statistics and affine terms, so folding them changes the weights."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = 0.5 + torch.rand(c, generator=g)
            m.bias.data = 0.1 * torch.randn(c, generator=g)
            m.running_mean.data = 0.1 * torch.randn(c, generator=g)
            m.running_var.data = 0.5 + torch.rand(c, generator=g)


class FmnistAdapter(nn.Module):
    """scripts/train_fmnist.py's MultiExitResNet (exits after layer1 and layer2) with split
    points; widths and blocks per stage are read off the ONNX split table by the caller."""

    SPLITS = ["input", "stem", "layer1", "layer2", "layer3", "pool"]

    def __init__(self, widths, blocks):
        super().__init__()
        self.blocks = blocks
        self.net = _train_fmnist_module().MultiExitResNet(tuple(widths), tuple(blocks))

    def onnx_name(self, split):
        if split == "input":
            return "input"
        if split == "stem":
            return "/stem/stem.2/Relu_output_0"
        if split == "pool":
            return "/pool/GlobalAveragePool_output_0"
        k = int(split[len("layer"):])
        return f"/{split}/{split}.{self.blocks[k - 1] - 1}/relu2/Relu_output_0"

    def tail(self, x, split):
        n, i, outs = self.net, self.SPLITS.index(split), []
        if i < 1:
            x = n.stem(x)
        if i < 2:
            x = n.layer1(x)
        if i < 3:
            outs.append(n.exit1(x))
            x = n.layer2(x)
        if i < 4:
            outs.append(n.exit2(x))
            x = n.layer3(x)
        if i < 5:
            x = n.pool(x)
        outs.append(n.fc(torch.flatten(x, 1)))
        return outs


def fuse_conv_bn(module):
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d attribute pair (convN/bnN,
    conv/bn, Sequential [Conv2d, BatchNorm2d]) into the convolution, as the ONNX export did, so
    PyTorch runs the same arithmetic as the other runtimes."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for m in list(module.modules()):
        if isinstance(m, nn.Sequential):
            mods = list(m)
            for j in range(len(mods) - 1):
                if isinstance(mods[j], nn.Conv2d) and isinstance(mods[j + 1], nn.BatchNorm2d):
                    m[j] = fuse_conv_bn_eval(mods[j], mods[j + 1])
                    m[j + 1] = nn.Identity()
        for cn, bn in (("conv1", "bn1"), ("conv2", "bn2"), ("conv", "bn")):
            c, b = getattr(m, cn, None), getattr(m, bn, None)
            if isinstance(c, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                setattr(m, cn, fuse_conv_bn_eval(c, b))
                setattr(m, bn, nn.Identity())
    return module
