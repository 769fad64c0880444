#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Make the engine benchmark's larger model: a ResNet-18-style 224x224 CNN with random weights.

Usage (Debian's PyTorch lives only in the system interpreter):

    /usr/bin/python3 scripts/make_bench_models.py [--out build/bench] [--seed 1]

Writes, under --out (not committed; `make bench-engine` makes them at bench time):
  resnet224.onnx  opset 13, eval mode, BatchNorm folded into the convolutions by the exporter's
                  constant folding, one input "input" [N,3,224,224] (N dynamic), one output
                  "logits" [N,1000];
  resnet224.pt    the state_dict, so bench/engine/torch_bench.py runs the very same weights.

The weights are random (seeded), with non-trivial BatchNorm statistics so the folding has work
to do; speed does not depend on what the weights are. The architecture and its split points
(stem, layer1..layer4, pool) live in bench/engine/torch_models.py, shared with the PyTorch peer.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench",
                                "engine"))
import torch_models  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="build/bench")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    model = torch_models.ResNet224()
    torch_models.randomize_bn(model, args.seed)
    model.eval()
    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, "resnet224.onnx")
    pt_path = os.path.join(args.out, "resnet224.pt")
    dummy = torch.zeros(1, 3, 224, 224)
    axes = {"input": {0: "N"}, "logits": {0: "N"}}
    with torch.inference_mode():
        torch.onnx.export(model, dummy, onnx_path, opset_version=13, input_names=["input"],
                          output_names=["logits"], dynamic_axes=axes, do_constant_folding=True,
                          training=torch.onnx.TrainingMode.EVAL)
    torch.save(model.state_dict(), pt_path)
    print(f"wrote {onnx_path} ({os.path.getsize(onnx_path)} bytes) and {pt_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
