"""Fuse a residual ``Add`` and the activation after it into the convolution's epilogue (a late pass).

``Conv -> Add(., r)`` becomes one Conv with input 3 = ``r`` and ``fused_add=1``; an activation after a
Conv (Relu, Clip, LeakyRelu, the table activations HardSwish / HardSigmoid, and PRelu with a constant
slope per channel) becomes its ``activation``; then Mul / Add by one constant value become its
``post_ops``. The Conv kernels compute ``act(conv(x) + b + r)``, then each post op, rounded as the
unfused graph rounds. A fully connected MatMul (A by a constant 2-D B) takes the same epilogue, its
last axis as the channels, with the Add of a constant bias (one value or one per column) right after it as
its input 2 in place of the residual (``ops/matmul.py``).

It runs after quantization (``late``) because a quantized epilogue keeps the grids of the tensors it
removes: the old conv output's parameters as ``add_conv_q`` and a table activation's input parameters
as ``act_in_q`` (dicts ``{"qtype", "scale", "zero_point"}``; a PRelu's slopes as their storage codes
and grid), so the result is bit-identical to the unfused quantized graph. A clamp activation (Relu,
Clip) is fused into a quantized conv when its output keeps its input's parameters (then it is the
output bounds, as the standalone op computes it); a Relu that changes them becomes a table activation, its
standalone lookup table. The Conv kernels' side of this contract:
``rknn_core/ops/_epilogue.py``.
"""

from __future__ import annotations

import numpy as np

from rknn_core.ir import Graph, Node, QuantParams
from rknn_core.ops._epilogue import TABLE_ACTIVATIONS
from rknn_core.ops.matmul import bias_columns
from rknn_core.passes._util import const_scalar, single_consumer
from rknn_core.passes.fuse_activation import activation_of
from rknn_core.quant.params import QTYPES, stored_codes
from rknn_core.quant.quantize_graph import FLOAT_NODES
from rknn_core.records import PassSpec

PRELU_TABLE_ENTRIES = 1 << 20  # a quantized PRelu is fused as one table per channel up to this many entries in all
POST_OPS = ("Mul", "Add")  # by one constant value, after the activation
MAX_POST_OPS = 4


def params_dict(q: QuantParams) -> dict:
    """A tensor's per-tensor parameters as a node attribute."""
    return {"qtype": q.qtype, "scale": [float(s) for s in q.scale], "zero_point": [int(z) for z in q.zero_point]}


def _quantized(graph: Graph) -> bool:
    return "quantized_dtype" in graph.metadata


def _fusable(graph: Graph, node: Node) -> bool:
    """Computed like its neighbours: both float, or both quantized per tensor (not a hybrid float layer)."""
    if node.name in set(graph.metadata.get(FLOAT_NODES, ())):
        return False
    if not _quantized(graph):
        return True
    quants = [graph.tensors[n].quant for n in [*node.inputs[:1], *node.outputs] if n]
    return all(q is not None and len(q.scale) == 1 for q in quants)


def _move_to(graph: Graph, conv: Node, other: Node) -> None:
    """Put ``conv`` where ``other`` was (every input of both is computed before that) and drop ``other``."""
    graph.nodes.remove(conv)
    graph.nodes[graph.nodes.index(other)] = conv


def fuse_residual(graph: Graph, conv: Node, add: Node) -> bool:
    conv_out = conv.outputs[0]
    if add.op != "Add" or len(add.inputs) != 2 or add.inputs.count(conv_out) != 1 or not _fusable(graph, add):
        return False
    residual = add.inputs[1] if add.inputs[0] == conv_out else add.inputs[0]
    shapes = [graph.tensors[n].shape for n in (conv_out, residual, add.outputs[0])]
    if graph.tensors[residual].is_const or shapes[0] is None or len(set(map(tuple, shapes))) != 1:
        return False
    attrs = {**conv.attrs, "fused_add": 1}
    if _quantized(graph):
        q = graph.tensors[residual].quant
        if q is None or len(q.scale) != 1:
            return False
        attrs["add_conv_q"] = params_dict(graph.tensors[conv_out].quant)
    conv.inputs = [*conv.inputs, *[""] * (3 - len(conv.inputs)), residual]
    conv.attrs, conv.outputs = attrs, [add.outputs[0]]
    _move_to(graph, conv, add)
    return True


def prelu_activation(graph: Graph, prelu: Node) -> dict | None:
    """The fused form of a PRelu whose slope is a constant with one value per channel (or one value), or
    None: its float32 slopes, or in a quantized model the slopes' storage codes and grid."""
    x, slope = (graph.tensors[n] for n in prelu.inputs)
    if slope.data is None or x.shape is None or len(x.shape) < 2:
        return None
    data = np.asarray(slope.data)
    if data.ndim > len(x.shape):
        return None
    shape = (1,) * (len(x.shape) - data.ndim) + data.shape
    channels = x.shape[1]
    if any(d != 1 for k, d in enumerate(shape) if k != 1) or shape[1] not in (1, channels):
        return None
    values = np.broadcast_to(data.reshape(-1), (channels,))
    if not _quantized(graph):
        return {"op": "PRelu", "slope": [float(v) for v in values]} if data.dtype == np.float32 else None
    q = slope.quant
    if q is None or len(q.scale) != 1 or x.quant is None or x.quant.qtype not in QTYPES:
        return None
    lo, hi, _ = QTYPES[x.quant.qtype]
    if channels * (hi - lo + 1) > PRELU_TABLE_ENTRIES:
        return None
    codes = stored_codes(values, q)
    return {"op": "PRelu", "slope_codes": [int(c) for c in codes], "slope_q": params_dict(q)}


def fuse_act(graph: Graph, conv: Node, act_node: Node) -> bool:
    if not _fusable(graph, act_node) or act_node.inputs[0] != conv.outputs[0]:
        return False
    if act_node.op == "PRelu":  # slopes per channel: axis 1, a MatMul's last axis only when its output is 2-D
        two_d = len(graph.tensors[conv.outputs[0]].shape or ()) == 2
        act = prelu_activation(graph, act_node) if conv.op == "Conv" or two_d else None
    elif act_node.op in TABLE_ACTIVATIONS:
        act = {"op": act_node.op}
        if act_node.op == "HardSigmoid":
            act.update(alpha=float(act_node.attrs.get("alpha", 0.2)), beta=float(act_node.attrs.get("beta", 0.5)))
    else:
        act = activation_of(graph, act_node)
    if act is None or (act["op"] == "LeakyRelu" and conv.attrs.get("fused_add")):
        return False
    attrs = {**conv.attrs, "activation": act}
    if _quantized(graph):
        before, after = (graph.tensors[n].quant for n in (conv.outputs[0], act_node.outputs[0]))
        if act["op"] in TABLE_ACTIVATIONS or (act["op"] == "Relu" and before != after):
            attrs["act_in_q"] = params_dict(before)  # a Relu that rescales: its standalone table
        elif before != after or act["op"] == "LeakyRelu":
            return False  # the standalone op rescales (or, LeakyRelu, has its own quantized form)
    conv.attrs, conv.outputs = attrs, [act_node.outputs[0]]
    _move_to(graph, conv, act_node)
    return True


def scalar_operand(graph: Graph, node: Node, x: str) -> str | None:
    """The one-value constant operand of a binary ``node`` whose other operand is ``x``, or None."""
    if len(node.inputs) != 2 or node.inputs.count(x) != 1:
        return None
    other = node.inputs[1] if node.inputs[0] == x else node.inputs[0]
    return other if const_scalar(graph, other) is not None else None


def fuse_post_op(graph: Graph, conv: Node, node: Node) -> bool:
    """A Mul or Add by one constant value after the conv (PP-LCNetV3's learnable affine after its
    activations) as one more step of the epilogue: ``post_ops`` entries ``{"op", "value"}`` in float,
    ``{"op", "code", "const_q", "in_q"}`` (the constant's storage code and grid, the grid it reads)
    when quantized."""
    x = conv.outputs[0]
    const = scalar_operand(graph, node, x) if node.op in POST_OPS else None
    if const is None or not _fusable(graph, node) or len(conv.attrs.get("post_ops", ())) >= MAX_POST_OPS:
        return False
    shapes = [graph.tensors[n].shape for n in (x, node.outputs[0])]
    if shapes[0] is None or tuple(shapes[0]) != tuple(shapes[1] or ()):
        return False
    data = np.asarray(graph.tensors[const].data)
    if not _quantized(graph):
        if data.dtype != np.float32 or graph.tensors[x].dtype != "float32":
            return False
        step = {"op": node.op, "value": float(data.reshape(-1)[0])}
    else:
        q, x_q = graph.tensors[const].quant, graph.tensors[x].quant
        if q is None or len(q.scale) != 1 or x_q is None or len(x_q.scale) != 1:
            return False
        step = {"op": node.op, "code": int(stored_codes(data, q).reshape(-1)[0]), "const_q": params_dict(q),
                "in_q": params_dict(x_q)}
    conv.attrs = {**conv.attrs, "post_ops": [*conv.attrs.get("post_ops", ()), step]}
    conv.outputs = [node.outputs[0]]
    _move_to(graph, conv, node)
    return True


def fully_connected(graph: Graph, node: Node) -> bool:
    """A MatMul of A (rows, K) or (..., rows, K) by a constant 2-D B (float32, or quantized in a quantized model):
    a layer whose output channels are its last axis (axis 1 of a 2-D A's output, as a convolution's: only
    there does a PRelu slope per channel fuse)."""
    if node.op != "MatMul":
        return False
    a, b = (graph.tensors[n] for n in node.inputs[:2])
    if b.data is None or np.ndim(b.data) != 2 or a.shape is None or len(a.shape) < 2:
        return False
    if _quantized(graph):
        return b.quant is not None
    return a.dtype == "float32" and np.asarray(b.data).dtype == np.float32


def fuse_bias(graph: Graph, matmul: Node, add: Node) -> bool:
    """An Add of a constant with one value or one per column after a fully connected MatMul, as its input 2."""
    out = matmul.outputs[0]
    if add.op != "Add" or len(add.inputs) != 2 or add.inputs.count(out) != 1 or not _fusable(graph, add):
        return False
    bias = graph.tensors[add.inputs[1] if add.inputs[0] == out else add.inputs[0]]
    shape = graph.tensors[out].shape
    if bias.data is None or shape is None or tuple(graph.tensors[add.outputs[0]].shape or ()) != tuple(shape):
        return False
    if bias_columns(np.shape(bias.data), shape[-1]) is None:
        return False
    attrs = dict(matmul.attrs)
    if not _quantized(graph):
        if np.asarray(bias.data).dtype != np.float32:
            return False
    elif bias.quant is None or len(bias.quant.scale) != 1:
        return False
    else:
        attrs["add_conv_q"] = params_dict(graph.tensors[out].quant)
    matmul.inputs, matmul.attrs, matmul.outputs = [*matmul.inputs, bias.name], attrs, [add.outputs[0]]
    _move_to(graph, matmul, add)
    return True


def run(graph: Graph, ctx) -> bool:
    changed = False
    for node in [n for n in graph.nodes if n.op == "Conv" or fully_connected(graph, n)]:
        if len(node.outputs) != 1 or not _fusable(graph, node):
            continue
        reader = single_consumer(graph, node.outputs[0], ctx)
        if reader is None:
            continue
        if node.attrs.get("activation") or node.attrs.get("post_ops"):
            changed |= fuse_post_op(graph, node, reader)
        elif node.op == "Conv" and not node.attrs.get("fused_add") and fuse_residual(graph, node, reader):
            changed = True
        elif node.op == "MatMul" and len(node.inputs) == 2 and fuse_bias(graph, node, reader):
            changed = True
        elif fuse_act(graph, node, reader) or fuse_post_op(graph, node, reader):
            changed = True
    return changed


PASS = PassSpec("fuse_epilogue", run, min_level=1, changes_numerics=False, late=True,
                doc="A residual Add, the activation and Mul/Add by one constant after a Conv into the Conv's "
                    "epilogue; the bias Add, activation and Mul/Add after a fully connected MatMul into the "
                    "MatMul's (after quantization).")
