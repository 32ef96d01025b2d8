"""Small rewiring helpers shared by the built-in passes."""

from __future__ import annotations

import numpy as np

from rknn_core.ir import Graph, Node


def protected(graph: Graph, ctx) -> set[str]:
    """Names a pass must not make disappear: graph inputs and outputs and ``options["protected"]``."""
    return set(graph.inputs) | set(graph.outputs) | set(ctx.options.get("protected", ()))


def replace_uses(graph: Graph, old: str, new: str) -> None:
    """Every node that reads ``old`` reads ``new`` instead."""
    for node in graph.nodes:
        if old in node.inputs:
            node.inputs = [new if i == old else i for i in node.inputs]


def bypass(graph: Graph, node: Node, ctx) -> bool:
    """Remove a one-in one-out node whose output equals its input; False when that is not safe.

    When the output is a graph output, the input's producer takes over the output's name instead
    (if the input is nothing else's: not a graph input, constant, graph output or protected tensor,
    and read only by this node).
    """
    src, dst = node.inputs[0], node.outputs[0]
    keep = set(ctx.options.get("protected", ()))
    if dst in keep:
        return False
    if dst not in graph.outputs:
        replace_uses(graph, dst, src)
        graph.nodes.remove(node)
        return True
    producer = graph.producers().get(src)
    readers = graph.consumers().get(src, [])
    if producer is None or src in protected(graph, ctx) or len(readers) != 1:
        return False
    producer.outputs = [dst if o == src else o for o in producer.outputs]
    graph.nodes.remove(node)
    return True


def single_consumer(graph: Graph, name: str, ctx, consumers: dict | None = None) -> Node | None:
    """The only node reading ``name``, when ``name`` may be renamed away (not an output, not protected)."""
    readers = (consumers if consumers is not None else graph.consumers()).get(name, [])
    if len(readers) != 1 or name in protected(graph, ctx):
        return None
    reader = readers[0]
    return reader if reader.inputs.count(name) == 1 else None


def const_scalar(graph: Graph, name: str) -> float | None:
    """The value of a one-element constant, or None (also for an absent name)."""
    if not name:
        return None
    data = graph.tensors[name].data
    if data is None or np.asarray(data).size != 1:
        return None
    return float(np.asarray(data).reshape(-1)[0])


def unique_node_name(graph: Graph, base: str) -> str:
    names = {n.name for n in graph.nodes}
    name, i = base, 1
    while name in names:
        name, i = f"{base}_{i}", i + 1
    return name
