#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Read ONNX files without the `onnx` Python package, and map PyTorch modules to ONNX tensors.

Debian has no python3-onnx, but it ships the schema (/usr/include/onnx/onnx.proto, package
libonnx-dev), protoc (protobuf-compiler) and the protobuf runtime (python3-protobuf). At run
time we compile the schema into a temporary directory and import the generated onnx_pb2.

Usage as a tool (prints op counts, inputs, outputs and every node):

    /usr/bin/python3 scripts/onnx_names.py MODEL.onnx [--nodes]

Usage as a module (scripts/make_fixtures.py):

    pb = onnx_names.onnx_pb2()             # generated module
    model = onnx_names.load(path)          # onnx_pb2.ModelProto
    name = onnx_names.module_output(model.graph, "layer1.0")   # or None when unsure

How torch 1.13 names things: with the default add_node_names, every node is named
"/<scope>/<scope>/.../<OpType>[_<k>]" and its outputs "<node name>_output_<i>", where the scopes
are the module hierarchy of the call that emitted the node. Each scope atom is the module's
qualified name reduced to its last non-numeric atom plus any numeric atoms after it
(torch.onnx.utils._unqualified_variable_name): module "layer2.0.downsample.0" is the scope
path /layer2/layer2.0/downsample/downsample.0/. A module's output is then the one tensor that a
node inside that scope produces and that something outside the scope consumes (or that is a
graph output). When there is not exactly one such tensor we do not guess.
"""

import importlib
import os
import shutil
import subprocess
import sys
import tempfile

ONNX_PROTO = "/usr/include/onnx/onnx.proto"
_PB = None


def onnx_pb2():
    """Compiles onnx.proto with protoc into a temp dir (once per process) and imports it."""
    global _PB
    if _PB is None:
        if not os.path.exists(ONNX_PROTO):
            sys.exit(f"{ONNX_PROTO} missing: install libonnx-dev (scripts/deps.sh)")
        if shutil.which("protoc") is None:
            sys.exit("protoc missing: install protobuf-compiler (scripts/deps.sh)")
        tmp = tempfile.mkdtemp(prefix="onnx_pb2.")
        shutil.copy(ONNX_PROTO, tmp)
        subprocess.run(["protoc", f"--proto_path={tmp}", f"--python_out={tmp}",
                        os.path.join(tmp, "onnx.proto")], check=True)
        sys.path.insert(0, tmp)
        try:
            _PB = importlib.import_module("onnx_pb2")
        finally:
            sys.path.remove(tmp)
            shutil.rmtree(tmp, ignore_errors=True)  # the module is loaded; the files can go
    return _PB


def load(path):
    """Parses an .onnx file into an onnx_pb2.ModelProto."""
    model = onnx_pb2().ModelProto()
    with open(path, "rb") as f:
        model.ParseFromString(f.read())
    return model


def op_types(graph):
    """Sorted list of distinct op types in the graph."""
    return sorted({n.op_type for n in graph.node})


def op_counts(graph):
    counts = {}
    for n in graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return dict(sorted(counts.items()))


def unqualified(qualified_name):
    """torch.onnx.utils._unqualified_variable_name: 'layer2.0.downsample.0' -> 'downsample.0'."""
    atoms = qualified_name.split(".")
    for i, atom in reversed(list(enumerate(atoms))):
        if not atom.isnumeric():
            return ".".join(atoms[i:])
    return qualified_name


def scope_prefix(module_name):
    """The node-name prefix torch 1.13 uses for nodes emitted inside module `module_name`.

    Every prefix of the qualified name is a module on the call stack (assuming modules are
    called by their parents, as in any plain nn.Module tree) and contributes one scope atom:
    "layer2.0.downsample.0" -> "/layer2/layer2.0/downsample/downsample.0/".
    """
    atoms = module_name.split(".")
    parts = [unqualified(".".join(atoms[:i + 1])) for i in range(len(atoms))]
    return "/" + "/".join(parts) + "/"


def value_shapes(graph):
    """Tensor name -> list of dims (int, or str for symbolic/unknown) from value_info/outputs."""
    shapes = {}
    for vi in list(graph.value_info) + list(graph.output) + list(graph.input):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                               for d in t.shape.dim]
    return shapes


def module_output(graph, module_name):
    """ONNX tensor name of module `module_name`'s output, or None when not unambiguous.

    The candidates are tensors produced by a node whose name starts with the module's scope
    prefix and consumed by a node outside it (or listed as a graph output). Exactly one
    candidate is required: a module whose nodes were all folded away (a BatchNorm folded into
    its Conv) has none, a module returning several tensors has several.
    """
    prefix = scope_prefix(module_name)
    inside = [n for n in graph.node if n.name.startswith(prefix)]
    if not inside:
        return None
    produced = {o for n in inside for o in n.output}
    inside_names = {n.name for n in inside}
    escaping = set()
    for n in graph.node:
        if n.name in inside_names:
            continue
        escaping.update(i for i in n.input if i in produced)
    escaping.update(o.name for o in graph.output if o.name in produced)
    if len(escaping) != 1:
        return None
    return escaping.pop()


# ---------------------------------------------------------------------------------------------
# A small numpy reference interpreter for the ops our fixtures use.
#
# Why: there is no onnxruntime in Python here, and a fixture is only worth something if the
# ONNX file really computes PyTorch's reference values. make_fixtures.py runs every exported
# graph through this interpreter (float64) and checks the graph outputs against PyTorch, and it
# records an intermediate tensor only when the interpreter's value for the mapped ONNX name
# equals PyTorch's hook value, which catches wrong mappings (e.g. a Conv whose BatchNorm was
# folded into it no longer computes the PyTorch Conv module's output).
# ---------------------------------------------------------------------------------------------

_NP_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool",
              10: "float16", 11: "float64"}


def tensor_to_numpy(t):
    """onnx_pb2.TensorProto -> numpy array (raw_data or the typed repeated fields)."""
    import numpy as np
    dt = np.dtype(_NP_DTYPES[t.data_type])
    if t.raw_data:
        a = np.frombuffer(t.raw_data, dtype=dt.newbyteorder("<")).astype(dt)
    elif t.data_type in (1,):
        a = np.array(t.float_data, dtype=dt)
    elif t.data_type in (7,):
        a = np.array(t.int64_data, dtype=dt)
    elif t.data_type in (2, 3, 6, 9):
        a = np.array(t.int32_data).astype(dt)
    elif t.data_type == 11:
        a = np.array(t.double_data, dtype=dt)
    else:
        raise NotImplementedError(f"tensor {t.name}: data_type {t.data_type}")
    return a.reshape(tuple(t.dims))


def _attrs(node):
    """Node attributes as a dict of Python values."""
    out = {}
    for a in node.attribute:
        kind = a.type  # AttributeProto.AttributeType: FLOAT=1 INT=2 STRING=3 TENSOR=4 FLOATS=6 INTS=7
        if kind == 1:
            out[a.name] = a.f
        elif kind == 2:
            out[a.name] = a.i
        elif kind == 3:
            out[a.name] = a.s.decode()
        elif kind == 4:
            out[a.name] = tensor_to_numpy(a.t)
        elif kind == 6:
            out[a.name] = list(a.floats)
        elif kind == 7:
            out[a.name] = list(a.ints)
        else:
            raise NotImplementedError(f"{node.name}: attribute {a.name} of type {kind}")
    return out


def _conv_transpose(x, w, b, at):
    """2-D ConvTranspose by scattering each input pixel's contribution (float64)."""
    import numpy as np
    if at.get("auto_pad", "NOTSET") not in ("NOTSET", "") or "output_shape" in at:
        raise NotImplementedError("ConvTranspose auto_pad / output_shape")
    g = at.get("group", 1)
    kh, kw = w.shape[2:]
    sh, sw = at.get("strides", [1, 1])
    dh, dw = at.get("dilations", [1, 1])
    pt, pl, pb, pr = at.get("pads", [0, 0, 0, 0])
    oph, opw = at.get("output_padding", [0, 0])
    n, c, h, wd = x.shape
    mg = w.shape[1]
    full_h = sh * (h - 1) + dh * (kh - 1) + 1 + oph
    full_w = sw * (wd - 1) + dw * (kw - 1) + 1 + opw
    y = np.zeros((n, g * mg, full_h, full_w), dtype=np.float64)
    xg = x.reshape(n, g, c // g, h, wd)
    wg = w.reshape(g, c // g, mg, kh, kw)
    for i in range(kh):
        for j in range(kw):
            contrib = np.einsum("ngchw,gcm->ngmhw", xg, wg[:, :, :, i, j]).reshape(n, g * mg, h, wd)
            y[:, :, i * dh:i * dh + sh * (h - 1) + 1:sh, j * dw:j * dw + sw * (wd - 1) + 1:sw] += contrib
    y = y[:, :, pt:full_h - pb, pl:full_w - pr]
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return y


def _resize(x, out_hw, mode, coord, nearest):
    """Resize of the two spatial dims: nearest (asymmetric + floor, or half_pixel rounding
    to nearest) and linear with (pytorch_)half_pixel coordinates, as ONNX defines them."""
    import numpy as np
    y = x
    for ax, out in zip((2, 3), out_hw):
        size = y.shape[ax]
        scale = out / size
        dst = np.arange(out, dtype=np.float64)
        if coord == "asymmetric":
            src = dst / scale
        elif coord in ("half_pixel", "pytorch_half_pixel"):
            src = (dst + 0.5) / scale - 0.5
        else:
            raise NotImplementedError(f"Resize coordinate mode {coord}")
        if mode == "nearest":
            if nearest == "floor":
                idx = np.floor(src)
            elif nearest == "round_prefer_floor":
                idx = np.ceil(src - 0.5)
            else:
                raise NotImplementedError(f"Resize nearest mode {nearest}")
            y = np.take(y, np.clip(idx, 0, size - 1).astype(np.int64), axis=ax)
        elif mode == "linear":
            src = np.clip(src, 0, size - 1)
            lo = np.floor(src).astype(np.int64)
            hi = np.minimum(lo + 1, size - 1)
            f = (src - lo).reshape([-1 if a == ax else 1 for a in range(y.ndim)])
            y = np.take(y, lo, axis=ax) * (1 - f) + np.take(y, hi, axis=ax) * f
        else:
            raise NotImplementedError(f"Resize mode {mode}")
    return y


def _conv(x, w, b, at):
    import numpy as np
    if at.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
        raise NotImplementedError("Conv auto_pad")
    g = at.get("group", 1)
    kh, kw = w.shape[2:]
    sh, sw = at.get("strides", [1, 1])
    dh, dw = at.get("dilations", [1, 1])
    pt, pl, pb, pr = at.get("pads", [0, 0, 0, 0])
    n, c, h, wd = x.shape
    m = w.shape[0]
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    xg = xp.reshape(n, g, c // g, xp.shape[2], xp.shape[3])
    wg = w.reshape(g, m // g, c // g, kh, kw)
    y = np.zeros((n, g, m // g, oh, ow), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            win = xg[:, :, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
            y += np.einsum("ngchw,gmc->ngmhw", win, wg[:, :, :, i, j])
    y = y.reshape(n, m, oh, ow)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def _pool(x, at, kind):
    import numpy as np
    if at.get("ceil_mode", 0) or at.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
        raise NotImplementedError("pool ceil_mode/auto_pad")
    if at.get("dilations", [1, 1]) != [1, 1]:
        raise NotImplementedError("pool dilations")
    kh, kw = at["kernel_shape"]
    sh, sw = at.get("strides", [1, 1])
    pt, pl, pb, pr = at.get("pads", [0, 0, 0, 0])
    n, c, h, w = x.shape
    oh = (h + pt + pb - kh) // sh + 1
    ow = (w + pl + pr - kw) // sw + 1
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
    ones = np.pad(np.ones((h, w)), ((pt, pb), (pl, pr)))  # 1 where the input is real
    wins, cnts = [], []
    for i in range(kh):
        for j in range(kw):
            wins.append(xp[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw])
            cnts.append(ones[i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw])
    if kind == "max":
        return np.max(wins, axis=0)
    total = np.sum(wins, axis=0)
    if at.get("count_include_pad", 0):
        return total / (kh * kw)
    return total / np.sum(cnts, axis=0)


def _softmax(x, axis, opset):
    import numpy as np
    if opset < 13:  # coerce to 2-D at `axis`, softmax over the flattened tail
        shp = x.shape
        x2 = x.reshape(int(np.prod(shp[:axis])), -1)
        e = np.exp(x2 - x2.max(1, keepdims=True))
        return (e / e.sum(1, keepdims=True)).reshape(shp)
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


_UNARY = {
    "Tanh": lambda x: __import__("numpy").tanh(x),
    "Exp": lambda x: __import__("numpy").exp(x),
    "Log": lambda x: __import__("numpy").log(x),
    "Sqrt": lambda x: __import__("numpy").sqrt(x),
    "Neg": lambda x: -x,
    "Reciprocal": lambda x: 1.0 / x,
    "Softplus": lambda x: __import__("numpy").logaddexp(0.0, x),
    "Erf": lambda x: __import__("numpy").vectorize(__import__("math").erf)(x),
}
_BINARY = {
    "Sub": lambda a, b: a - b,
    "Div": lambda a, b: (a // b) if a.dtype.kind in "iu" and b.dtype.kind in "iu" else a / b,
    "Max": lambda a, b: __import__("numpy").maximum(a, b),
    "Min": lambda a, b: __import__("numpy").minimum(a, b),
}


def run(model, feeds):
    """Evaluates the graph on `feeds` ({input name: array}); returns {tensor name: array}.

    Floating-point tensors are computed in float64, so the result is a reference that
    PyTorch's fp32 values must match within the fixture tolerance.
    """
    import numpy as np
    g = model.graph
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    env = {i.name: tensor_to_numpy(i) for i in g.initializer}
    env = {k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in env.items()}
    for k, v in feeds.items():
        env[k] = np.asarray(v, dtype=np.float64)
    for node in g.node:
        at = _attrs(node)
        ins = [env[i] if i else None for i in node.input]
        op = node.op_type
        if op == "Conv":
            y = _conv(ins[0], ins[1], ins[2] if len(ins) > 2 else None, at)
        elif op == "BatchNormalization":
            x, sc, bi, mu, var = ins
            r = lambda v: v.reshape(1, -1, *([1] * (x.ndim - 2)))
            y = (x - r(mu)) / np.sqrt(r(var) + at.get("epsilon", 1e-5)) * r(sc) + r(bi)
        elif op == "Relu":
            y = np.maximum(ins[0], 0)
        elif op == "Clip":
            lo = at.get("min", -np.inf) if opset < 11 else (ins[1] if len(ins) > 1 and ins[1] is not None else -np.inf)
            hi = at.get("max", np.inf) if opset < 11 else (ins[2] if len(ins) > 2 and ins[2] is not None else np.inf)
            y = np.clip(ins[0], lo, hi)
        elif op == "Sigmoid":
            y = 1.0 / (1.0 + np.exp(-ins[0]))
        elif op == "HardSigmoid":
            y = np.clip(at.get("alpha", 0.2) * ins[0] + at.get("beta", 0.5), 0, 1)
        elif op == "HardSwish":
            y = ins[0] * np.clip(ins[0] / 6.0 + 0.5, 0, 1)
        elif op == "Add":
            y = ins[0] + ins[1]
        elif op == "Mul":
            y = ins[0] * ins[1]
        elif op == "GlobalAveragePool":
            y = ins[0].mean(axis=tuple(range(2, ins[0].ndim)), keepdims=True)
        elif op == "AveragePool":
            y = _pool(ins[0], at, "avg")
        elif op == "MaxPool":
            if len(node.output) > 1:
                raise NotImplementedError("MaxPool indices")
            y = _pool(ins[0], at, "max")
        elif op == "Concat":
            y = np.concatenate(ins, axis=at["axis"])
        elif op == "Flatten":
            ax = at.get("axis", 1)
            y = ins[0].reshape(int(np.prod(ins[0].shape[:ax])), -1)
        elif op == "Reshape":
            shape = [int(v) for v in ins[1]]
            if not at.get("allowzero", 0):
                shape = [ins[0].shape[i] if v == 0 else v for i, v in enumerate(shape)]
            y = ins[0].reshape(shape)
        elif op == "Shape":
            y = np.array(ins[0].shape, dtype=np.int64)
        elif op == "Gather":
            y = np.take(ins[0], ins[1].astype(np.int64), axis=at.get("axis", 0))
        elif op == "Unsqueeze":
            axes = at["axes"] if opset < 13 else [int(v) for v in ins[1]]
            y = ins[0]
            for a in sorted(a % (y.ndim + len(axes)) for a in axes):
                y = np.expand_dims(y, a)
        elif op == "Constant":
            y = at["value"]
            if y.dtype.kind == "f":
                y = y.astype(np.float64)
        elif op == "Gemm":
            a = ins[0].T if at.get("transA", 0) else ins[0]
            b = ins[1].T if at.get("transB", 0) else ins[1]
            y = at.get("alpha", 1.0) * (a @ b)
            if len(ins) > 2 and ins[2] is not None:
                y = y + at.get("beta", 1.0) * ins[2]
        elif op == "MatMul":
            y = ins[0] @ ins[1]
        elif op == "Softmax":
            y = _softmax(ins[0], at.get("axis", 1 if opset < 13 else -1), opset)
        elif op == "Pad":
            if at.get("mode", "constant") != "constant":
                raise NotImplementedError(f"Pad mode {at['mode']}")
            pads = at["pads"] if opset < 11 else [int(v) for v in ins[1]]
            value = at.get("value", 0.0) if opset < 11 else (
                float(ins[2]) if len(ins) > 2 and ins[2] is not None else 0.0)
            r = ins[0].ndim
            if min(pads) < 0:
                raise NotImplementedError("Pad with negative pads")
            y = np.pad(ins[0], [(pads[i], pads[i + r]) for i in range(r)], constant_values=value)
        elif op == "Identity":
            y = ins[0]
        elif op in _UNARY:
            y = _UNARY[op](ins[0])
        elif op in _BINARY:
            y = _BINARY[op](ins[0], ins[1])
        elif op == "PRelu":
            y = np.where(ins[0] > 0, ins[0], ins[0] * ins[1])
        elif op == "Pow":
            y = np.power(ins[0], ins[1])
        elif op in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"):
            axes = at.get("axes")
            if axes is None and len(ins) > 1 and ins[1] is not None:
                axes = [int(v) for v in ins[1]]
            f = {"ReduceMean": np.mean, "ReduceSum": np.sum, "ReduceMax": np.max,
                 "ReduceMin": np.min}[op]
            y = f(ins[0], axis=tuple(axes) if axes else None,
                  keepdims=bool(at.get("keepdims", 1)))
        elif op == "LayerNormalization":
            ax = at.get("axis", -1) % ins[0].ndim
            red = tuple(range(ax, ins[0].ndim))
            mu = ins[0].mean(axis=red, keepdims=True)
            var = ((ins[0] - mu) ** 2).mean(axis=red, keepdims=True)
            y = (ins[0] - mu) / np.sqrt(var + at.get("epsilon", 1e-5)) * ins[1]
            if len(ins) > 2 and ins[2] is not None:
                y = y + ins[2]
        elif op == "ConvTranspose":
            y = _conv_transpose(ins[0], ins[1], ins[2] if len(ins) > 2 else None, at)
        elif op == "Resize":
            scales = ins[2] if len(ins) > 2 and ins[2] is not None and ins[2].size else None
            if scales is not None:
                out_hw = [int(np.floor(ins[0].shape[a] * scales[a])) for a in (2, 3)]
            else:
                out_hw = [int(v) for v in ins[3][2:]]
            y = _resize(ins[0], out_hw, at.get("mode", "nearest"),
                        at.get("coordinate_transformation_mode", "half_pixel"),
                        at.get("nearest_mode", "round_prefer_floor"))
        elif op == "Cast":
            # float64 stands for every float type here (the reference is computed in float64)
            to = {1: np.float64, 10: np.float64, 11: np.float64, 6: np.int32, 7: np.int64,
                  9: np.bool_}[at["to"]]
            y = ins[0].astype(to)
        elif op == "Transpose":
            y = np.transpose(ins[0], at.get("perm"))
        elif op == "Slice":
            starts, ends = [int(v) for v in ins[1]], [int(v) for v in ins[2]]
            axes = [int(v) for v in ins[3]] if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
            steps = [int(v) for v in ins[4]] if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
            box = [slice(None)] * ins[0].ndim
            for a, b, e, st in zip(axes, starts, ends, steps):
                box[a] = slice(b, e, st)
            y = ins[0][tuple(box)]
        elif op == "Split":
            ax = at.get("axis", 0)
            sizes = at.get("split")
            if sizes is None and len(ins) > 1 and ins[1] is not None:
                sizes = [int(v) for v in ins[1]]
            if sizes is None:
                sizes = [ins[0].shape[ax] // len(node.output)] * len(node.output)
            cuts = np.cumsum(sizes)[:-1]
            for name, part in zip(node.output, np.split(ins[0], cuts, axis=ax)):
                env[name] = part
            continue
        elif op == "LogSoftmax":
            y = np.log(_softmax(ins[0], at.get("axis", 1 if opset < 13 else -1), opset))
        else:
            raise NotImplementedError(f"reference interpreter: op {op} (node {node.name})")
        if len(node.output) != 1:
            raise NotImplementedError(f"{node.name}: {len(node.output)} outputs")
        env[node.output[0]] = y
    return env


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    model = load(argv[1])
    g = model.graph
    print(f"opset {[(o.domain or 'ai.onnx', o.version) for o in model.opset_import]} "
          f"producer {model.producer_name} {model.producer_version}")
    inits = {i.name for i in g.initializer}
    shapes = value_shapes(g)
    for i in g.input:
        if i.name not in inits:
            print(f"input  {i.name} {shapes.get(i.name)}")
    for o in g.output:
        print(f"output {o.name} {shapes.get(o.name)}")
    print(f"initializers {len(g.initializer)}")
    print("ops", op_counts(g))
    if "--nodes" in argv:
        for n in g.node:
            print(f"  {n.op_type:20s} {n.name}  {list(n.input)} -> {list(n.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
