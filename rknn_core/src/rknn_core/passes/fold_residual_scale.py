"""Rewrite ``x + x * s`` with a small ``s`` (one value per channel) as ``x * (s + 1)``.

The residual squeeze-excite modules of PP-OCR det's neck scale a feature map by a per-channel
gate computed from it and add the map back: ``Add(x, Mul(x, s))``. As ``Mul(x, Add(s, 1))`` the large
tensor is read once and written once instead of going through two full passes; the ``+ 1`` on the small
gate then fuses into the convolution that computes it (``fuse_epilogue``'s post ops). The products are
rounded differently, so the pass runs only at optimization level 3.
"""

from __future__ import annotations

import numpy as np

from rknn_core.ir import Graph, Node, Tensor
from rknn_core.passes._util import single_consumer
from rknn_core.records import PassSpec

SMALL = 8  # the gate holds at most 1/SMALL of the map's elements


def _gate(graph: Graph, add: Node, producers: dict, ctx) -> tuple[str, Node, str] | None:
    """(x, the Mul, s) when ``add`` is ``x + x * s`` (either order) with a small float ``s`` broadcast to x."""
    if len(add.inputs) != 2:
        return None
    for k in (0, 1):
        x, mul = add.inputs[1 - k], producers.get(add.inputs[k])
        if mul is None or mul.op != "Mul" or len(mul.inputs) != 2 or x not in mul.inputs \
                or mul.inputs[0] == mul.inputs[1]:
            continue
        if single_consumer(graph, mul.outputs[0], ctx) is not add:
            continue
        s = mul.inputs[1] if mul.inputs[0] == x else mul.inputs[0]
        x_info, s_info, out = graph.tensors[x], graph.tensors[s], graph.tensors[add.outputs[0]]
        if x_info.shape is None or s_info.shape is None or out.shape is None or x_info.dtype != "float32" \
                or s_info.dtype != "float32" or tuple(out.shape) != tuple(x_info.shape):
            continue
        if np.broadcast_shapes(tuple(s_info.shape), tuple(x_info.shape)) != tuple(x_info.shape):
            continue
        if int(np.prod(s_info.shape)) * SMALL > int(np.prod(x_info.shape)):
            continue
        return x, mul, s
    return None


def run(graph: Graph, ctx) -> bool:
    changed = False
    for add in [n for n in graph.nodes if n.op == "Add"]:
        found = _gate(graph, add, graph.producers(), ctx)
        if found is None:
            continue
        x, mul, s = found
        shape = tuple(graph.tensors[s].shape)
        data = graph.tensors[s].data
        if data is not None:  # a constant gate: the sum now
            gate = graph.add_const(f"{s}_plus_one", np.asarray(data, np.float32) + np.float32(1))
        else:
            gate = graph.unique_name(f"{s}_plus_one")
            graph.add_tensor(Tensor(gate, shape, "float32"))
            one = graph.add_const(f"{mul.name}_one", np.array(1.0, np.float32))
            graph.nodes.insert(graph.nodes.index(mul), Node(graph.unique_name(f"{mul.name}_gate"), "Add", [s, one],
                                                            [gate]))
        mul.inputs = [x, gate]
        mul.outputs = [add.outputs[0]]
        graph.nodes.remove(add)
        changed = True
    return changed


PASS = PassSpec("fold_residual_scale", run, min_level=3, changes_numerics=True,
                after=("fold_constants", "remove_identity", "eliminate_transposes"),
                doc="x + x * s with a small per-channel s becomes x * (s + 1): one pass over x instead of two.")
