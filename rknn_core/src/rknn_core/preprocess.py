"""Put ``channel_mean_value``/``reorder_channel`` into the model as nodes after each input."""

from __future__ import annotations

import numpy as np

from rknn_core.config import Preprocess
from rknn_core.errors import RknnError
from rknn_core.ir import Graph, Node, Tensor


def channel_axis(tensor: Tensor) -> int | None:
    """The channel axis of a 4-D image input (by its layout), else None."""
    if tensor.shape is None or len(tensor.shape) != 4:
        return None
    return 3 if tensor.layout == "NHWC" else 1


def insert_preprocess(graph: Graph, settings: list[Preprocess]) -> dict[str, str]:
    """Insert Gather (reorder), Sub (mean) and Div (scale) nodes; returns input -> preprocessed tensor."""
    result: dict[str, str] = {}
    for name, pre in zip(list(graph.inputs), settings):
        if pre.is_identity:
            continue
        tensor = graph.tensor(name)
        axis = channel_axis(tensor)
        if axis is None:
            raise RknnError(f"input '{name}' has shape {tensor.shape}; channel_mean_value/reorder_channel "
                            f"apply to 4-D image inputs only")
        channels = tensor.shape[axis]
        bshape = [1] * 4
        bshape[axis] = channels
        current = name
        nodes: list[Node] = []
        if pre.reorder is not None and pre.reorder != sorted(pre.reorder):
            if len(pre.reorder) != channels:
                raise RknnError(f"reorder_channel has {len(pre.reorder)} entries but input '{name}' has {channels} channels")
            idx = graph.add_const(f"{name}_reorder", np.asarray(pre.reorder, np.int64))
            current = _append(graph, nodes, "Gather", [current, idx], tensor, {"axis": axis})
        if pre.mean is not None and any(pre.mean):
            mean = _per_channel(pre.mean, channels, name)
            m = graph.add_const(f"{name}_mean", mean.reshape(bshape))
            current = _append(graph, nodes, "Sub", [current, m], tensor, {})
        if pre.scale != 1.0:
            s = graph.add_const(f"{name}_scale", np.asarray(pre.scale, np.float32))
            current = _append(graph, nodes, "Div", [current, s], tensor, {})
        for node in graph.nodes:
            node.inputs = [current if i == name else i for i in node.inputs]
        graph.outputs = [current if o == name else o for o in graph.outputs]
        graph.nodes[:0] = nodes
        result[name] = current
    return result


def _per_channel(values: list[float], channels: int, name: str) -> np.ndarray:
    if len(values) == 1:
        values = values * channels
    if len(values) < channels:
        raise RknnError(f"channel_mean_value gives {len(values)} means but input '{name}' has {channels} channels")
    return np.asarray(values[:channels], np.float32)


def _append(graph: Graph, nodes: list[Node], op: str, inputs: list[str], like: Tensor, attrs: dict) -> str:
    out = graph.unique_name(f"{like.name}_pre_{op.lower()}")
    graph.add_tensor(Tensor(out, like.shape, "float32", layout=like.layout))
    nodes.append(Node(out, op, inputs, [out], attrs))
    return out
