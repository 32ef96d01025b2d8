"""Fold inference BatchNormalization into the preceding Conv, or rewrite it as Mul + Add.

``y = (x - mean) / sqrt(var + eps) * gamma + beta`` is ``x * s + t`` with ``s = gamma / sqrt(var +
eps)`` and ``t = beta - mean * s``. After a Conv read by nothing else, ``s`` scales the conv's
weights per output channel and ``t`` (plus ``b * s``) becomes its bias; any other BatchNormalization
becomes ``Mul(x, s)`` then ``Add(., t)``. The arithmetic is regrouped, so float results differ in the
last bits: this pass declares ``changes_numerics`` and runs only at optimization level 3.
"""

from __future__ import annotations

import numpy as np

from rknn_core.ir import Graph, Node, Tensor
from rknn_core.passes._util import single_consumer, unique_node_name
from rknn_core.records import PassSpec


def scale_shift(graph: Graph, node: Node) -> tuple[np.ndarray, np.ndarray] | None:
    """The per-channel ``(s, t)`` of an inference BatchNormalization in float64, or None."""
    if len(node.inputs) != 5 or any(o for o in node.outputs[1:]) or int(node.attrs.get("training_mode", 0)):
        return None
    consts = [graph.tensors[n].data if n else None for n in node.inputs[1:]]
    if any(c is None for c in consts):
        return None
    gamma, beta, mean, var = (np.asarray(c, dtype=np.float64).reshape(-1) for c in consts)
    if not len(gamma) == len(beta) == len(mean) == len(var):
        return None
    eps = float(node.attrs.get("epsilon", 1e-5))
    s = gamma / np.sqrt(var + eps)
    return s, beta - mean * s


def _fold_into_conv(graph: Graph, bn: Node, conv: Node, s: np.ndarray, t: np.ndarray) -> bool:
    if conv.attrs.get("activation") or len(conv.outputs) != 1:
        return False
    weight = graph.tensors[conv.inputs[1]]
    bias = graph.tensors[conv.inputs[2]] if len(conv.inputs) > 2 and conv.inputs[2] else None
    if weight.data is None or (bias is not None and bias.data is None) or weight.data.shape[0] != len(s):
        return False
    dtype = weight.data.dtype
    if not np.issubdtype(dtype, np.floating):
        return False
    w = weight.data.astype(np.float64) * s.reshape(-1, *([1] * (weight.data.ndim - 1)))
    b = t if bias is None else bias.data.astype(np.float64) * s + t
    w_name = graph.add_const(f"{conv.inputs[1]}_bn", w.astype(dtype))
    b_name = graph.add_const(f"{conv.name}_bias_bn", b.astype(dtype))
    conv.inputs = [conv.inputs[0], w_name, b_name]
    conv.outputs = [bn.outputs[0]]
    graph.nodes.remove(bn)
    return True


def _to_mul_add(graph: Graph, bn: Node, s: np.ndarray, t: np.ndarray) -> bool:
    x = graph.tensors[bn.inputs[0]]
    if x.shape is None or len(x.shape) < 2 or x.shape[1] != len(s):
        return False
    dtype = np.dtype(x.dtype)
    if not np.issubdtype(dtype, np.floating):
        return False
    bshape = (len(s),) + (1,) * (len(x.shape) - 2)
    s_name = graph.add_const(f"{bn.name}_scale", s.astype(dtype).reshape(bshape))
    t_name = graph.add_const(f"{bn.name}_shift", t.astype(dtype).reshape(bshape))
    mid = graph.unique_name(f"{bn.name}_scaled")
    graph.add_tensor(Tensor(mid, tuple(x.shape), x.dtype, layout=x.layout))
    mul = Node(unique_node_name(graph, f"{bn.name}_mul"), "Mul", [bn.inputs[0], s_name], [mid])
    add = Node(unique_node_name(graph, f"{bn.name}_add"), "Add", [mid, t_name], [bn.outputs[0]])
    at = graph.nodes.index(bn)
    graph.nodes[at:at + 1] = [mul, add]
    return True


def run(graph: Graph, ctx) -> bool:
    changed = False
    for bn in [n for n in graph.nodes if n.op == "BatchNormalization"]:
        params = scale_shift(graph, bn)
        if params is None:
            continue
        producer = graph.producers().get(bn.inputs[0])
        if (producer is not None and producer.op == "Conv"
                and single_consumer(graph, bn.inputs[0], ctx) is bn
                and _fold_into_conv(graph, bn, producer, *params)):
            changed = True
            continue
        changed |= _to_mul_add(graph, bn, *params)
    return changed


PASS = PassSpec("fold_batchnorm", run, min_level=3, changes_numerics=True,
                after=("fold_constants", "remove_identity", "eliminate_transposes"),
                doc="BatchNormalization into the preceding Conv's weights and bias, else Mul + Add.")
