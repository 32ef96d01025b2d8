"""Fuse Relu, Clip (constant bounds) and LeakyRelu into the Conv before them.

The Conv (read by nothing else) gets ``attrs["activation"]``: ``{"op": "Relu"}``,
``{"op": "Clip", "min": lo, "max": hi}`` (either bound may be None) or
``{"op": "LeakyRelu", "alpha": a}``, which its kernel applies after the bias with the same formula as
the standalone op, so float results are identical.
"""

from __future__ import annotations

import numpy as np

from rknn_core.ir import Graph, Node
from rknn_core.passes._util import const_scalar, single_consumer
from rknn_core.records import PassSpec


def activation_of(graph: Graph, node: Node) -> dict | None:
    """The fused form of an activation node, or None when it cannot be fused."""
    if len(node.outputs) != 1:
        return None
    if node.op == "Relu":
        return {"op": "Relu"}
    if node.op == "LeakyRelu":
        return {"op": "LeakyRelu", "alpha": float(node.attrs.get("alpha", 0.01))}
    if node.op == "Clip":
        bounds = {}
        for key, name in zip(("min", "max"), node.inputs[1:3]):
            value = const_scalar(graph, name)
            if name and value is None:
                return None  # a bound computed at run time, or not a scalar
            if name and np.isnan(value):
                return None
            bounds[key] = value
        return {"op": "Clip", "min": bounds.get("min"), "max": bounds.get("max")}
    return None


def run(graph: Graph, ctx) -> bool:
    changed = False
    consumers = graph.consumers()
    for conv in [n for n in graph.nodes if n.op == "Conv"]:
        if conv.attrs.get("activation") or len(conv.outputs) != 1:
            continue
        act = single_consumer(graph, conv.outputs[0], ctx, consumers)
        if act is None or act.inputs[0] != conv.outputs[0]:
            continue
        fused = activation_of(graph, act)
        if fused is None:
            continue
        conv.attrs = {**conv.attrs, "activation": fused}
        conv.outputs = [act.outputs[0]]
        graph.nodes.remove(act)
        consumers = graph.consumers()
        changed = True
    return changed


PASS = PassSpec("fuse_activation", run, min_level=1, changes_numerics=False,
                after=("fold_constants", "remove_identity", "eliminate_transposes", "fold_batchnorm", "fold_channel_affine"),
                doc="Relu, Clip and LeakyRelu after a Conv become the Conv's fused activation.")
