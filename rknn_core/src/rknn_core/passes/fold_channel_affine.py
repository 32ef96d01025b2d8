"""Fold a per-channel constant Mul or Add after a Conv (or a ConvTranspose of one group) into its weights or bias.

TensorFlow and Keras graphs express batch normalization as ``Mul`` then ``Add`` after each
convolution; Paddle exports write a transposed convolution's bias and batch normalization the same way
(PP-OCR's detection head). Folded, the convolution computes ``W*s`` and ``b*s + t`` itself: one node
fewer (one pass over a large output fewer), and for quantization one per-tensor-quantized intermediate
fewer (that tensor otherwise costs accuracy). The arithmetic is regrouped, so the pass runs only at
optimization level 3.
"""

from __future__ import annotations

import numpy as np

from rknn_core.ir import Graph, Node
from rknn_core.passes._util import single_consumer
from rknn_core.records import PassSpec


def channel_vector(graph: Graph, node: Node, conv_out: str) -> np.ndarray | None:
    """The other operand of ``node`` as one value per output channel, when it is a constant that
    varies along the channel axis only (or is a scalar)."""
    other = node.inputs[1] if node.inputs[0] == conv_out else node.inputs[0]
    data = graph.tensors[other].data if other else None
    out = graph.tensors[conv_out].shape
    if data is None or out is None or not np.issubdtype(np.asarray(data).dtype, np.floating):
        return None
    data = np.asarray(data, dtype=np.float64)
    if data.ndim > len(out):
        return None
    full = (1,) * (len(out) - data.ndim) + data.shape
    if any(d != 1 for i, d in enumerate(full) if i != 1) or full[1] not in (1, out[1]):
        return None
    if np.broadcast_shapes(full, out) != tuple(out):
        return None
    return np.broadcast_to(data.reshape(-1), (out[1],)).copy()


OUTPUT_AXIS = {"Conv": 0, "ConvTranspose": 1}  # the weights' output-channel axis (a ConvTranspose of one group)


def _fold(graph: Graph, conv: Node, node: Node, values: np.ndarray) -> None:
    weight = graph.tensors[conv.inputs[1]].data
    axis = OUTPUT_AXIS[conv.op]
    has_bias = len(conv.inputs) > 2 and conv.inputs[2]
    bias = np.asarray(graph.tensors[conv.inputs[2]].data, np.float64) if has_bias else np.zeros(weight.shape[axis])
    w = np.asarray(weight, np.float64)
    if node.op == "Mul":
        shape = [1] * w.ndim
        shape[axis] = -1
        w = w * values.reshape(shape)
        bias = bias * values
    else:
        bias = bias + values
    dtype = weight.dtype
    conv.inputs = [conv.inputs[0], graph.add_const(f"{conv.inputs[1]}_folded", w.astype(dtype)),
                   graph.add_const(f"{conv.name}_bias_folded", bias.astype(dtype))]
    conv.outputs = [node.outputs[0]]
    graph.nodes.remove(node)


def run(graph: Graph, ctx) -> bool:
    changed = False
    for conv in [n for n in graph.nodes if n.op in OUTPUT_AXIS]:
        weight = graph.tensors[conv.inputs[1]].data
        if conv.attrs.get("activation") or weight is None or not np.issubdtype(weight.dtype, np.floating):
            continue
        if conv.op == "ConvTranspose" and int(conv.attrs.get("group", 1)) != 1:
            continue
        if len(conv.inputs) > 2 and conv.inputs[2] and graph.tensors[conv.inputs[2]].data is None:
            continue
        node = single_consumer(graph, conv.outputs[0], ctx)
        if node is None or node.op not in ("Mul", "Add") or len(node.inputs) != 2:
            continue
        values = channel_vector(graph, node, conv.outputs[0])
        if values is None or graph.tensors[node.outputs[0]].shape != graph.tensors[conv.outputs[0]].shape:
            continue
        _fold(graph, conv, node, values)
        changed = True
    return changed


PASS = PassSpec("fold_channel_affine", run, min_level=3, changes_numerics=True,
                after=("fold_constants", "remove_identity", "eliminate_transposes", "fold_batchnorm"),
                doc="A per-channel constant Mul or Add after a Conv (or a one-group ConvTranspose) into its weights or "
                    "bias.")
