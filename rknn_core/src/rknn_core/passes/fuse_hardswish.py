"""Recognize HardSwish written out as ``x * Clip(x + 3, 0, 6) / 6`` (PaddlePaddle and many exporters).

``Mul(x, Clip(Add(x, 3), 0, 6))`` followed by ``Div(., 6)`` or ``Mul(., 1/6)`` becomes one
``HardSwish(x)``: one node instead of four in float, a lookup table instead of four requantizing
integer ops when quantized, and an activation the convolution before it can fuse. The op computes
``x * clip(x / 6 + 0.5, 0, 1)``, which rounds differently in float32, so the pass runs at level 3.
"""

from __future__ import annotations

from rknn_core.ir import Graph, Node
from rknn_core.passes._util import const_scalar, single_consumer
from rknn_core.records import PassSpec


def _other(node: Node, name: str) -> str:
    return node.inputs[1] if node.inputs[0] == name else node.inputs[0]


def _close(value: float | None, expected: float) -> bool:
    return value is not None and abs(value - expected) <= 1e-6 * abs(expected)


def match(graph: Graph, add: Node, ctx, consumers: dict) -> tuple[str, list[Node]] | None:
    """(x, the four nodes) when ``add`` starts ``x * Clip(x + 3, 0, 6) / 6``, else None."""
    if add.op != "Add" or len(add.inputs) != 2:
        return None
    x = next((i for i in add.inputs if _close(const_scalar(graph, _other(add, i)), 3.0)), None)
    clip = single_consumer(graph, add.outputs[0], ctx, consumers) if x else None
    if clip is None or clip.op != "Clip" or clip.inputs[0] != add.outputs[0] or len(clip.inputs) != 3:
        return None
    if const_scalar(graph, clip.inputs[1]) != 0.0 or not _close(const_scalar(graph, clip.inputs[2]), 6.0):
        return None
    mul = single_consumer(graph, clip.outputs[0], ctx, consumers)
    if mul is None or mul.op != "Mul" or sorted(mul.inputs) != sorted([x, clip.outputs[0]]):
        return None
    scale = single_consumer(graph, mul.outputs[0], ctx, consumers)
    if scale is None or scale.inputs[0] != mul.outputs[0] or len(scale.inputs) != 2:
        return None
    factor = const_scalar(graph, scale.inputs[1])
    if not ((scale.op == "Div" and _close(factor, 6.0)) or (scale.op == "Mul" and _close(factor, 1 / 6))):
        return None
    shapes = {tuple(graph.tensors[n].shape or ()) for n in (x, scale.outputs[0])}
    return (x, [add, clip, mul, scale]) if len(shapes) == 1 else None


def run(graph: Graph, ctx) -> bool:
    changed = False
    consumers = graph.consumers()
    for add in [n for n in graph.nodes if n.op == "Add"]:
        found = match(graph, add, ctx, consumers)
        if found is None:
            continue
        x, nodes = found
        last = nodes[-1]
        graph.nodes[graph.nodes.index(last)] = Node(last.name, "HardSwish", [x], list(last.outputs))
        for node in nodes[:-1]:
            graph.nodes.remove(node)
        consumers = graph.consumers()
        changed = True
    return changed


PASS = PassSpec("fuse_hardswish", run, min_level=3, changes_numerics=True,
                after=("fold_constants", "remove_identity", "eliminate_transposes"),
                doc="x * Clip(x + 3, 0, 6) / 6 (or * 1/6) becomes one HardSwish node.")
