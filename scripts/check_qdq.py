#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Check QDQ ONNX files (tailgate-model export-qdq) with ONNX's own checker (python3-onnx):
onnx.checker.check_model with full_check (shape inference too), then the QDQ form: every
Conv and Gemm reads DequantizeLinear outputs for its input and weight (and bias), weights
int8 per channel, biases int32, activations uint8 through a QuantizeLinear.

Usage: /usr/bin/python3 scripts/check_qdq.py FILE.onnx...
Exit 0 all good, 1 a file failed, 77 python3-onnx is not installed (a skip, not a pass)."""
import sys

try:
    import onnx
    from onnx import TensorProto
except ImportError:
    print("skip: python3-onnx is not installed (apt-get install python3-onnx, or make deps)")
    sys.exit(77)


def check(path):
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    g = m.graph
    prod = {o: n for n in g.node for o in n.output}
    init = {t.name: t for t in g.initializer}

    def dq_of(name, dtype):
        dq = prod.get(name)
        if dq is None or dq.op_type != "DequantizeLinear":
            return False
        if dtype is None:  # an activation: QuantizeLinear -> DequantizeLinear, uint8
            q = prod.get(dq.input[0])
            zp = init.get(dq.input[2]) if len(dq.input) > 2 else None
            return q is not None and q.op_type == "QuantizeLinear" and zp is not None and \
                zp.data_type == TensorProto.UINT8
        t = init.get(dq.input[0])
        return t is not None and t.data_type == dtype

    n_q = sum(n.op_type == "QuantizeLinear" for n in g.node)
    bad = []
    n_ops = 0
    for n in g.node:
        if n.op_type not in ("Conv", "Gemm"):
            continue
        n_ops += 1
        ok = dq_of(n.input[0], None) and dq_of(n.input[1], TensorProto.INT8)
        if len(n.input) > 2 and n.input[2]:
            ok = ok and dq_of(n.input[2], TensorProto.INT32)
        if not ok:
            bad.append(n.name)
    if bad:
        raise ValueError("not quantized as QDQ: " + ", ".join(bad))
    if n_ops == 0 or n_q == 0:
        raise ValueError("no quantized Conv/Gemm")
    opset = max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
    print("ok %s: onnx %s checker (full) passed; opset %d, %d Conv/Gemm in QDQ, %d QuantizeLinear"
          % (path, onnx.__version__, opset, n_ops, n_q))


def main():
    rc = 0
    for path in sys.argv[1:]:
        try:
            check(path)
        except Exception as e:  # the checker raises its own types; report each file
            print("FAIL %s: %s" % (path, e))
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
