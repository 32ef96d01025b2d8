"""The model graph as the page draws it: layers placed in rows by a small layered layout (rank =
longest path from the inputs, order in a row by the mean position of the producers), tensors with
shape, dtype and quantization parameters, and the overlays: modelled time per layer, quantization
error per layer, CPU-fallback layers and float layers."""

from __future__ import annotations

from typing import Any

from rknn_core.ir import Graph, QuantParams, Tensor
from rknn_core.platforms import chip_for
from rknn_core.plugins import Registry
from rknn_core.quant.quantize_graph import FLOAT_NODES
from rknn_gui.present import jsonable

NODE_W, NODE_H, GAP_X, GAP_Y = 170, 40, 30, 36
MAX_ATTR_TEXT = 80


def quant_json(q: QuantParams | None) -> dict | None:
    if q is None:
        return None
    return jsonable({"qtype": q.qtype, "scheme": q.scheme, "scale": list(q.scale[:8]), "zero_point": list(q.zero_point[:8]),
                     "channels": len(q.scale), "axis": q.axis, "min": q.min_value, "max": q.max_value})


def tensor_json(t: Tensor) -> dict:
    return {"name": t.name, "shape": None if t.shape is None else list(t.shape), "dtype": t.dtype, "layout": t.layout,
            "const": t.is_const, "quant": quant_json(t.quant)}


def _ranks(graph: Graph) -> list[int]:
    """Row of each node: one below its deepest producer (graph inputs are row 0)."""
    produced_at: dict[str, int] = {name: 0 for name in graph.inputs}
    ranks = []
    for node in graph.nodes:  # nodes are in topological order
        rank = 1 + max((produced_at[i] for i in node.inputs if i in produced_at), default=0)
        ranks.append(rank)
        for out in node.outputs:
            produced_at[out] = rank
    return ranks


def layout(graph: Graph) -> tuple[list[tuple[float, float]], list[tuple[float, float]], float, float]:
    """(x, y) of every node and of every graph input, with the drawing's width and height."""
    ranks = _ranks(graph)
    rows: dict[int, list[int]] = {}
    for index, rank in enumerate(ranks):
        rows.setdefault(rank, []).append(index)
    producers = {out: i for i, node in enumerate(graph.nodes) for out in node.outputs}
    input_x = {name: i * (NODE_W + GAP_X) for i, name in enumerate(graph.inputs)}
    x: dict[int, float] = {}
    for rank in sorted(rows):
        def wanted(i: int) -> float:
            sources = [x[producers[t]] if t in producers else input_x[t] for t in graph.nodes[i].inputs
                       if (t in producers and producers[t] in x) or t in input_x]
            return sum(sources) / len(sources) if sources else 0.0
        placed = -float("inf")
        for i in sorted(rows[rank], key=lambda i: (wanted(i), i)):
            x[i] = max(wanted(i), placed + NODE_W + GAP_X)
            placed = x[i]
    shift = -min([*x.values(), *input_x.values(), 0.0])
    nodes = [(x[i] + shift + GAP_X, ranks[i] * (NODE_H + GAP_Y) + GAP_Y) for i in range(len(graph.nodes))]
    inputs = [(input_x[name] + shift + GAP_X, GAP_Y) for name in graph.inputs]
    width = max([p[0] for p in nodes + inputs], default=0) + NODE_W + GAP_X
    height = (max(ranks, default=0) + 1) * (NODE_H + GAP_Y) + GAP_Y
    return nodes, inputs, width, height


def _attr_text(value: Any) -> str:
    text = repr(value.tolist() if hasattr(value, "tolist") else value)
    return text if len(text) <= MAX_ATTR_TEXT else text[:MAX_ATTR_TEXT] + "..."


def graph_json(graph: Graph, registry: Registry, platforms: list[str] | None, built: bool) -> dict:
    """Nodes (with position, tensors and attributes), edges, inputs, and the fallback overlay."""
    node_xy, input_xy, width, height = layout(graph)
    producers = {out: i for i, node in enumerate(graph.nodes) for out in node.outputs}
    fallback = _fallback(graph, registry, platforms)
    float_nodes = set(graph.metadata.get(FLOAT_NODES) or ())
    nodes = []
    for i, node in enumerate(graph.nodes):
        nodes.append({"id": i, "name": node.name, "op": node.op, "x": node_xy[i][0], "y": node_xy[i][1],
                      "inputs": [tensor_json(graph.tensor(t)) for t in node.inputs if t],
                      "outputs": [tensor_json(graph.tensor(t)) for t in node.outputs if t],
                      "attrs": {k: _attr_text(v) for k, v in node.attrs.items()},
                      "fallback": fallback.get(node.name), "float": node.name in float_nodes})
    edges = []
    for i, node in enumerate(graph.nodes):
        for t in node.inputs:
            if t in producers:
                edges.append({"from": producers[t], "to": i, "tensor": t})
            elif t in graph.inputs:
                edges.append({"from": f"input:{graph.inputs.index(t)}", "to": i, "tensor": t})
    inputs = [{"index": k, "x": xy[0], "y": xy[1], **tensor_json(graph.tensor(name))}
              for k, (name, xy) in enumerate(zip(graph.inputs, input_xy))]
    return {"name": graph.name, "built": built, "nodes": nodes, "edges": edges, "inputs": inputs,
            "outputs": list(graph.outputs), "width": width, "height": height, "node_w": NODE_W, "node_h": NODE_H}


def _fallback(graph: Graph, registry: Registry, platforms: list[str] | None) -> dict[str, str]:
    """Layers the chip runs on its CPU, with why (empty without a chip plugin)."""
    chip = chip_for(platforms, registry) if platforms else None
    if chip is None:
        return {}
    return {layer: f"{op} falls back to the CPU on {chip.name}: {reason}" for layer, op, reason in chip.fallback_layers(graph)}


def perf_overlay(perf: dict | None) -> dict[int, dict]:
    """Node index -> the modelled time of the layer it belongs to (fused nodes share their layer's)."""
    overlay: dict[int, dict] = {}
    for layer in (perf or {}).get("layers", []):
        for k, node in enumerate(layer.get("nodes") or [layer["id"]]):
            overlay[int(node)] = {"time": layer["time"], "layer": layer["id"], "operation": layer["operation"],
                                  "bound": layer.get("bound"), "device": layer.get("device"), "fused": k > 0}
    return overlay


def error_overlay(rows: list[dict] | None) -> dict[int, dict]:
    """Node index -> the quantization error of its (last) output, from accuracy_analysis."""
    return {row["id"]: row for row in rows or [] if row["id"] >= 0}
