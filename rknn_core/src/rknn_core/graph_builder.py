"""Building an IR graph node by node, as a frontend does: each node is shape-inferred as it is added,
and computed at once into constants when all its inputs are constants (eager folding)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rknn_core.ir import Graph, Node, Tensor
from rknn_core.plugins import Registry
from rknn_core.records import OpDef
from rknn_core.shape_inference import infer_node, op_for

FOLD_LIMIT = 1 << 24  # eagerly folded results above this many elements stay nodes


def fresh_names(graph: Graph, base: str, count: int = 1) -> list[str]:
    """``count`` tensor names not used in ``graph``: ``base`` for one, ``base:0``, ``base:1`` ... for several."""
    return [graph.unique_name(base if count == 1 else f"{base}:{i}") for i in range(count)]


def emit_node(graph: Graph, registry: Registry, values: dict[str, np.ndarray] | None, op: str,
              inputs: Sequence[str], attrs: dict | None, outputs: Sequence[str], fold_limit: int | None = FOLD_LIMIT,
              fold_inferred: bool = False, layout: str | None = None) -> Node | None:
    """Add IR node ``op`` (named after its first output) computing the new tensors ``outputs``.

    The outputs' shapes and dtypes are inferred at once (``values``: see ``infer_node``). When every input
    is a constant and the outputs hold at most ``fold_limit`` elements (``None``: never), the op's kernel
    computes them into constants and no node is added; ``fold_inferred`` also folds outputs whose values
    shape inference computed (``Shape`` of a tensor of known shape ...). ``layout``, when given, is the
    layout of the 4-D outputs (the others get none). Returns the node added, or ``None`` when folded.
    """
    outputs = list(outputs)
    for name in outputs:
        graph.add_tensor(Tensor(name))
    node = Node(outputs[0], op, list(inputs), outputs, dict(attrs or {}))
    opdef = op_for(node, registry)
    infer_node(graph, node, opdef, values)
    folded = fold_limit is not None and _fold(graph, node, opdef, values, fold_limit, fold_inferred)
    if not folded:
        graph.nodes.append(node)
    if layout is not None:
        for name in outputs:
            tensor = graph.tensors[name]
            tensor.layout = layout if tensor.shape is not None and len(tensor.shape) == 4 else None
    return None if folded else node


def _fold(graph: Graph, node: Node, opdef: OpDef, values: dict[str, np.ndarray] | None, fold_limit: int,
          fold_inferred: bool) -> bool:
    """Store the node's results as its outputs' constant data, if it can be computed now."""
    tensors = graph.tensors
    if node.inputs and all(n and tensors[n].is_const for n in node.inputs):
        if sum(int(np.prod(tensors[o].shape)) for o in node.outputs) > fold_limit:
            return False
        results = opdef.kernel([tensors[n].data for n in node.inputs], node.attrs)
    elif fold_inferred and values is not None and node.outputs and all(o in values for o in node.outputs):
        results = [values[o] for o in node.outputs]
    else:
        return False
    for name, result in zip(node.outputs, results):
        tensor = tensors[name]
        tensor.data = np.asarray(result).astype(tensor.dtype, copy=False).reshape(tensor.shape)
    return True
