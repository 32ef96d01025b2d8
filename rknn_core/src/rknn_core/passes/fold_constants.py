"""Constant folding: run nodes whose inputs are all known at build time and keep their results.

A node folds when every input is a constant, or when its op is ``shape_only`` (``Shape``) and the
shapes of its non-constant inputs are known. This turns ``Shape -> Gather -> Concat -> Reshape``
chains into constant shapes. Never folded: nodes producing graph outputs or protected tensors,
random ops, nodes without inputs, and results that would bloat the model (see ``fits``).
Folding runs the op's own float kernel, so results are what the runtime would compute: exact.
"""

from __future__ import annotations

import logging

import numpy as np

from rknn_core.ir import Graph, Node
from rknn_core.passes._util import protected
from rknn_core.records import PassSpec

log = logging.getLogger("rknn")

NONDETERMINISTIC = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                              "Multinomial", "Bernoulli"})
# A folded result may always take this much; beyond it, at most GROWTH times the constant inputs.
SMALL_BYTES = 1 << 16
GROWTH = 2
MAX_BYTES = 64 << 20


def fits(out_bytes: int, in_bytes: int) -> bool:
    """Whether a folded result of ``out_bytes`` is worth storing in place of inputs of ``in_bytes``.

    Small results always fold; larger ones only when they do not grow the model much (an Expand or
    Tile of a constant stays a node), and never beyond ``MAX_BYTES``.
    """
    return out_bytes <= SMALL_BYTES or (out_bytes <= GROWTH * in_bytes and out_bytes <= MAX_BYTES)


def _placeholder(shape, dtype) -> np.ndarray:
    """An array of the right shape and dtype that takes no memory, for shape-only ops."""
    return np.broadcast_to(np.zeros((), dtype=np.dtype(dtype)), tuple(shape))


def _inputs_for(graph: Graph, node: Node, shape_only: bool) -> list | None:
    args = []
    for name in node.inputs:
        if not name:
            args.append(None)
            continue
        tensor = graph.tensors[name]
        if tensor.is_const:
            args.append(tensor.data)
        elif shape_only and tensor.shape is not None:
            args.append(_placeholder(tensor.shape, tensor.dtype))
        else:
            return None
    return args


def try_fold(graph: Graph, node: Node, ctx, keep: set[str]) -> bool:
    """Fold one node into constants; False (graph untouched) when it cannot or should not."""
    opdef = ctx.registry.op(node.op)
    if opdef is None or node.op in NONDETERMINISTIC or not any(node.inputs):
        return False
    if any(o in keep for o in node.outputs) or not all(node.outputs):
        return False
    args = _inputs_for(graph, node, opdef.shape_only)
    if args is None:
        return False
    in_bytes = sum(graph.tensors[n].data.nbytes for n in node.inputs if n and graph.tensors[n].is_const)
    outs = [graph.tensors.get(o) for o in node.outputs]
    if any(t is None or t.shape is None for t in outs):
        return False
    out_bytes = sum(int(np.prod(t.shape, dtype=np.int64)) * np.dtype(t.dtype).itemsize for t in outs)
    if not fits(out_bytes, in_bytes):
        log.debug("fold_constants: node '%s' (%s) would store %d bytes; kept", node.name, node.op, out_bytes)
        return False
    try:
        results = opdef.kernel(args, node.attrs)
    except Exception as exc:  # the runtime will report it with context; folding just declines
        log.debug("fold_constants: node '%s' (%s) did not evaluate: %s", node.name, node.op, exc)
        return False
    if len(results) < len(outs):
        return False
    arrays = []
    for tensor, value in zip(outs, results):
        arr = np.array(value, dtype=np.dtype(tensor.dtype), copy=True)
        if arr.shape != tuple(tensor.shape):
            log.debug("fold_constants: node '%s' (%s) gave %s, inference said %s; kept",
                      node.name, node.op, arr.shape, tensor.shape)
            return False
        arrays.append(arr)
    for tensor, arr in zip(outs, arrays):
        tensor.data = arr
        tensor.shape = tuple(arr.shape)
        tensor.dtype = str(arr.dtype)
    graph.nodes.remove(node)
    return True


def run(graph: Graph, ctx) -> bool:
    keep = protected(graph, ctx)
    changed = False
    for node in list(graph.nodes):
        changed |= try_fold(graph, node, ctx, keep)
    return changed


PASS = PassSpec("fold_constants", run, min_level=1, changes_numerics=False,
                doc="Evaluate nodes whose inputs are constants (or only their shapes matter) at build time.")
