#!/usr/bin/env python3
"""Rewrites an ONNX model so that advjpg computes it without Winograd: every 3x3 Conv
with pads [1,1,1,1] becomes Pad (constant 0) + Conv with pads 0, the same function,
which the engine computes by im2col (Winograd takes only 3x3 pad-1 stride-1 ones,
ops_conv.c). ONNX models have no net_ctx_set_winograd(ctx, 0); this is their accuracy
reference. A diagnostic, not a test:

    torchvision_im2col.py IN.onnx OUT.onnx

e.g. on torchvision_export.py's DIR/NAME.onnx into another folder beside links to the
other DIR/NAME.* files, then test_torchvision on that folder."""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper


def main():
    src, dst = sys.argv[1], sys.argv[2]
    m = onnx.load(src)
    g = m.graph
    shapes = {t.name: list(t.dims) for t in g.initializer}
    nodes, k = [], 0
    for nd in g.node:
        at = {a.name: helper.get_attribute_value(a) for a in nd.attribute}
        if nd.op_type == "Conv":
            ks = list(at.get("kernel_shape") or shapes.get(nd.input[1], [0, 0, 0, 0])[2:])
        if nd.op_type == "Conv" and list(at.get("pads", [])) == [1, 1, 1, 1] and ks == [3, 3]:
            pads, out = f"im2col_pads_{k}", f"im2col_padded_{k}"
            k += 1
            g.initializer.append(numpy_helper.from_array(
                np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), pads))
            nodes.append(helper.make_node("Pad", [nd.input[0], pads], [out], mode="constant"))
            nd.input[0] = out
            for a in nd.attribute:
                if a.name == "pads":
                    a.ints[:] = [0, 0, 0, 0]
        nodes.append(nd)
    del g.node[:]
    g.node.extend(nodes)
    onnx.save(m, dst)
    print(f"{k} convolutions rewritten as Pad + Conv")


if __name__ == "__main__":
    main()
