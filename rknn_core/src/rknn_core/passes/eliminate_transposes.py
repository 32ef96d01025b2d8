"""Collapse Transpose->Transpose and Reshape->Reshape chains; drop identity Transposes and Reshapes.

``Transpose(Transpose(x, p1), p2)`` is ``Transpose(x, q)`` with ``q[i] = p1[p2[i]]``; the second
node reads ``x`` directly (the first disappears when nothing else reads it) and is removed when ``q``
is the identity. ``Reshape(Reshape(x))`` reads ``x`` with the final shape written out. Both only move
data, so the result is exact.
"""

from __future__ import annotations

import numpy as np

from rknn_core.ir import Graph, Node
from rknn_core.passes._util import bypass
from rknn_core.records import PassSpec


def _pinned(name: str, ctx) -> bool:
    """A protected tensor must keep being computed, so its readers stay on it."""
    return name in ctx.options.get("protected", ())


def perm_of(graph: Graph, node: Node) -> list[int] | None:
    """The Transpose's permutation (default: reversed axes), or None when the rank is unknown."""
    perm = node.attrs.get("perm")
    if perm is not None:
        return [int(p) for p in np.asarray(perm).reshape(-1)]
    shape = graph.tensors[node.inputs[0]].shape
    return None if shape is None else list(range(len(shape)))[::-1]


def _transpose(graph: Graph, node: Node, producers: dict, ctx) -> bool:
    perm = perm_of(graph, node)
    if perm is None:
        return False
    first = producers.get(node.inputs[0])
    if first is not None and first.op == "Transpose" and len(first.inputs) == 1 and not _pinned(node.inputs[0], ctx):
        inner = perm_of(graph, first)
        if inner is None or len(inner) != len(perm):
            return False
        node.inputs = [first.inputs[0]]
        node.attrs = {**node.attrs, "perm": [inner[p] for p in perm]}
        perm = node.attrs["perm"]
        if perm != list(range(len(perm))):
            return True
        bypass(graph, node, ctx)
        return True  # the node changed even when it must stay as an identity Transpose
    if perm == list(range(len(perm))):
        return bypass(graph, node, ctx)
    return False


def _static_shape(graph: Graph, name: str) -> tuple[int, ...] | None:
    shape = graph.tensors[name].shape
    return None if shape is None or any(int(d) <= 0 for d in shape) else tuple(int(d) for d in shape)


def _reshape(graph: Graph, node: Node, producers: dict, ctx) -> bool:
    if len(node.inputs) != 2 or not node.inputs[0]:
        return False
    out_shape = _static_shape(graph, node.outputs[0])
    in_shape = _static_shape(graph, node.inputs[0])
    if out_shape is None or in_shape is None:
        return False
    first = producers.get(node.inputs[0])
    if first is not None and first.op == "Reshape" and first.inputs and first.inputs[0] \
            and not _pinned(node.inputs[0], ctx):
        source = first.inputs[0]
        if _static_shape(graph, source) is None:
            return False
        shape = graph.add_const(f"{node.name}_shape", np.asarray(out_shape, dtype=np.int64))
        node.inputs = [source, shape]
        node.attrs = {k: v for k, v in node.attrs.items() if k != "allowzero"}
        return True
    if in_shape == out_shape:
        return bypass(graph, node, ctx)
    return False


def run(graph: Graph, ctx) -> bool:
    changed = False
    producers, alive = graph.producers(), {id(n) for n in graph.nodes}
    for node in list(graph.nodes):
        if len(node.outputs) != 1 or id(node) not in alive:
            continue  # removed by an earlier rewrite in this sweep
        if node.op == "Transpose" and len(node.inputs) == 1:
            hit = _transpose(graph, node, producers, ctx)
        elif node.op == "Reshape":
            hit = _reshape(graph, node, producers, ctx)
        else:
            continue
        if hit:
            changed = True
            producers, alive = graph.producers(), {id(n) for n in graph.nodes}
    return changed


PASS = PassSpec("eliminate_transposes", run, min_level=1, changes_numerics=False,
                after=("fold_constants", "remove_identity"),
                doc="Merge consecutive Transposes and Reshapes; remove the ones that do nothing.")
