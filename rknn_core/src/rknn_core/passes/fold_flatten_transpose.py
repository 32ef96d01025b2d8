"""Fold a layout Transpose that is only flattened into a fully connected MatMul into the MatMul's weight rows.

Keras exports flatten channels-last features: ``Transpose(x, (0, 2, 3, 1)) -> Flatten -> MatMul(W)`` (MTCNN's
R-Net and O-Net heads). Element j of the flattened rows is element ``src[j]`` of ``x`` flattened as it is, so
the MatMul by W equals ``Flatten(x)`` times W with its rows moved (row ``src[j]`` takes W's row j): one data
movement fewer per inference. The products are summed in another order, so the pass runs only at
optimization level 3 (quantized, the integer sums are the same in any order).
"""

from __future__ import annotations

import math

import numpy as np

from rknn_core.ir import Graph
from rknn_core.passes._util import single_consumer
from rknn_core.passes.eliminate_transposes import perm_of
from rknn_core.records import PassSpec


def _rows_order(shape: tuple, perm: list[int]) -> np.ndarray | None:
    """``src``: flattened row j of ``Transpose(x, perm)`` is flattened element ``src[j]`` of x (batch first)."""
    if perm[0] != 0 or any(int(d) <= 0 for d in shape):
        return None
    return np.arange(math.prod(shape[1:])).reshape(shape[1:]).transpose([p - 1 for p in perm[1:]]).reshape(-1)


def run(graph: Graph, ctx) -> bool:
    changed = False
    for transpose in [n for n in graph.nodes if n.op == "Transpose"]:
        consumers = graph.consumers()
        flatten = single_consumer(graph, transpose.outputs[0], ctx, consumers)
        if flatten is None or flatten.op != "Flatten" or int(flatten.attrs.get("axis", 1)) != 1:
            continue
        matmul = single_consumer(graph, flatten.outputs[0], ctx, consumers)
        if matmul is None or matmul.op != "MatMul" or matmul.inputs[0] != flatten.outputs[0]:
            continue
        weights, shape = graph.tensors[matmul.inputs[1]].data, graph.tensors[transpose.inputs[0]].shape
        perm = perm_of(graph, transpose)
        if weights is None or np.ndim(weights) != 2 or shape is None or perm is None or len(perm) != len(shape):
            continue
        src = _rows_order(tuple(shape), perm)
        if src is None or src.size != np.shape(weights)[0]:
            continue
        rows = np.empty_like(np.asarray(weights))
        rows[src] = weights
        matmul.inputs = [matmul.inputs[0], graph.add_const(f"{matmul.inputs[1]}_rows", rows), *matmul.inputs[2:]]
        flatten.inputs = [transpose.inputs[0]]
        graph.nodes.remove(transpose)
        changed = True
    return changed


PASS = PassSpec("fold_flatten_transpose", run, min_level=3, changes_numerics=True,
                after=("fold_constants", "remove_identity", "eliminate_transposes"),
                doc="A Transpose only flattened into a fully connected MatMul folded into the MatMul's weight rows.")
