"""Layers as the NPU runs them: a convolution or fully connected anchor with what the hardware fuses into it.

The NPU fuses bias, BatchNormalization, Relu/Relu6/LeakyRelu, one residual Add and one pooling that
follow a convolution (each read by nothing else) into the convolution's layer, views (Reshape,
Flatten ...) into their producer, and ``x * Sigmoid(x)`` (SiLU/swish) into one tensor-unit pass; the fused nodes' own DDR traffic and start-up cost disappear. A
node that falls back to the CPU is a layer of its own and fuses nothing.
"""

from __future__ import annotations

import attrs

from rknn_core.ir import Graph
from rknn_targets.npu.constraints import ALIASES, VIEW_OPS, node_reason

ANCHORS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
ACTIVATIONS = ("Relu", "Clip", "LeakyRelu")
POOLS = ("MaxPool", "AveragePool")


@attrs.frozen
class Layer:
    """One NPU (or CPU) layer: node indices in graph order, the anchor first; its id is the anchor's index."""

    nodes: tuple[int, ...]
    operation: str
    name: str
    device: str = "NPU"
    reason: str = ""

    @property
    def layer_id(self) -> int:
        return self.nodes[0]


def base_op(op: str) -> str:
    """The op a quantized integer-exact form stands for (``TFLiteQuantizedConv`` -> ``Conv``)."""
    return ALIASES.get(op, op)


def _fusable(op: str, anchor: bool, absorbed: list[str]) -> bool:
    if op in VIEW_OPS:
        return True
    if not anchor or any(base_op(a) in POOLS for a in absorbed):
        return False
    if op == "Add":
        return "Add" not in absorbed
    return op in ACTIVATIONS or op == "BatchNormalization" or op in POOLS


def _consumers(graph: Graph) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for index, node in enumerate(graph.nodes):
        for name in node.inputs:
            if name:
                found.setdefault(name, []).append(index)
    return found


def _swish_mul(graph: Graph, index: int, consumers: dict[str, list[int]]) -> int | None:
    """The Mul of ``x * Sigmoid(x)`` when node ``index`` is that Sigmoid (read by nothing else)."""
    node = graph.nodes[index]
    if node.op != "Sigmoid" or node.outputs[0] in graph.outputs:
        return None
    users = consumers.get(node.outputs[0], [])
    if len(users) != 1 or graph.nodes[users[0]].op != "Mul":
        return None
    return users[0] if set(graph.nodes[users[0]].inputs) == {node.inputs[0], node.outputs[0]} else None


def fuse_layers(graph: Graph, chip) -> list[Layer]:
    """The layers of ``graph`` on ``chip`` in execution order (each at its anchor's position)."""
    consumers = _consumers(graph)
    reasons = [node_reason(node, graph, chip) for node in graph.nodes]
    taken: set[int] = set()
    layers = []
    for index, node in enumerate(graph.nodes):
        if index in taken:
            continue
        members = [index]
        swish = _swish_mul(graph, index, consumers)
        if swish is not None and not reasons[index] and not reasons[swish] and swish not in taken:
            members.append(swish)  # x * Sigmoid(x): one pass of the tensor unit over x
        elif not reasons[index]:
            anchor = base_op(node.op) in ANCHORS
            absorbed: list[str] = []
            tail = node
            while len(tail.outputs) == 1 and tail.outputs[0] not in graph.outputs:
                users = consumers.get(tail.outputs[0], [])
                if len(users) != 1 or users[0] in taken or reasons[users[0]]:
                    break
                nxt = graph.nodes[users[0]]
                if not _fusable(base_op(nxt.op), anchor, absorbed):
                    break
                members.append(users[0])
                absorbed.append(base_op(nxt.op))
                tail = nxt
        taken.update(members)
        ops = [graph.nodes[i].op for i in members]
        activation = node.attrs.get("activation")
        if activation:
            ops.insert(1, activation.get("op", "Act") if isinstance(activation, dict) else str(activation))
        if node.attrs.get("fused_add"):
            ops.insert(1, "Add")  # a residual Add in the conv's epilogue (the fuse_epilogue pass), before its activation
        layers.append(Layer(tuple(members), ".".join(ops), node.name,
                            "CPU" if reasons[index] else "NPU", reasons[index] or ""))
    return layers
