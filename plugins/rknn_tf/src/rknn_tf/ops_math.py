"""Converters of elementwise and reduction ops; they keep a tensor's NCHW layout where they can."""

from __future__ import annotations

import numpy as np

from rknn_core.errors import RknnError
from rknn_tf.context import NCHW, NCHW_AXIS, TF, Context
from rknn_tf.graphdef import np_dtype
from rknn_tf.tfnode import TfNode

UNARY = {"Relu": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "Exp": "Exp", "Log": "Log", "Sqrt": "Sqrt",
         "Abs": "Abs", "Neg": "Neg", "Floor": "Floor", "Ceil": "Ceil", "Erf": "Erf", "Elu": "Elu",
         "Selu": "Selu", "Softplus": "Softplus", "Reciprocal": "Reciprocal", "Inv": "Reciprocal"}
BINARY = {"Add": "Add", "AddV2": "Add", "BiasAdd": "Add", "Sub": "Sub", "Mul": "Mul", "RealDiv": "Div",
          "Div": "Div", "Maximum": "Max", "Minimum": "Min", "Pow": "Pow", "SquaredDifference": "Sub",
          "Greater": "Greater", "Less": "Less", "Equal": "Equal"}
REDUCE = {"Mean": "ReduceMean", "Max": "ReduceMax", "Min": "ReduceMin", "Sum": "ReduceSum", "Prod": "ReduceProd"}


def unary(ctx: Context, node: TfNode) -> None:
    key = node.inputs[0]
    layout = ctx.layout(key)
    x = ctx.get(key, layout)
    if node.op == "Relu6":
        lo, hi = ctx.add_const(f"{node.name}/min", np.float32(0)), ctx.add_const(f"{node.name}/max", np.float32(6))
        ctx.result(node.name, "Clip", [x, lo, hi], layout=layout)
    elif node.op == "LeakyRelu":
        ctx.result(node.name, "LeakyRelu", [x], {"alpha": float(node.attr("alpha", 0.2))}, layout)
    elif node.op == "Rsqrt":
        root = ctx.emit("Sqrt", [x])[0]
        ctx.result(node.name, "Reciprocal", [root], layout=layout)
    elif node.op == "Square":
        ctx.result(node.name, "Mul", [x, x], layout=layout)
    else:
        ctx.result(node.name, UNARY[node.op], [x], layout=layout)


def _bias_into_conv(ctx: Context, node: TfNode, x_key: str, bias: np.ndarray) -> bool:
    """BiasAdd / Add of a per-channel constant right after our Conv: becomes the Conv's bias."""
    name, layout = ctx.held[x_key]
    producer = ctx.producer.get(name)
    if (layout != NCHW or producer is None or producer.op != "Conv" or len(producer.inputs) != 2
            or ctx.consumers.get(x_key, 0) != 1 or x_key in ctx.outputs):
        return False
    channels = ctx.graph.tensor(name).shape[1]
    if bias.size != channels or bias.shape[-1] != channels or bias.dtype != np.float32:
        return False
    producer.inputs.append(ctx.add_const(f"{node.name}/bias", bias.reshape(-1)))
    ctx.bind(node.name, name, NCHW)
    return True


def binary(ctx: Context, node: TfNode) -> None:
    keys = node.inputs[:2]
    consts = [ctx.const(k) for k in keys]
    if node.op in ("BiasAdd", "Add", "AddV2") and consts[0] is None and consts[1] is not None \
            and _bias_into_conv(ctx, node, keys[0], consts[1]):
        return
    if node.op == "BiasAdd" and node.attr("data_format", "NHWC") == "NCHW":
        consts[1] = consts[1].reshape(-1, 1, 1)
    variable = [k for k, c in zip(keys, consts) if c is None]
    nchw = (variable and any(ctx.layout(k) == NCHW for k in variable)
            and all(ctx.rank(k) == 4 for k in variable) and all(c is None or c.ndim <= 4 for c in consts))
    layout = NCHW if nchw else TF
    operands = []
    for key, data in zip(keys, consts):
        if data is None:
            operands.append(ctx.get(key, layout))
        else:
            operands.append(ctx.const_for(data, layout, f"{node.name}/const"))
    op = BINARY[node.op]
    if node.op == "SquaredDifference":
        diff = ctx.emit("Sub", operands)[0]
        ctx.result(node.name, "Mul", [diff, diff], layout=layout)
    else:
        ctx.result(node.name, op, operands, layout=layout)


def addn(ctx: Context, node: TfNode) -> None:
    layout = NCHW if all(ctx.layout(k) == NCHW for k in node.inputs) else TF
    ctx.result(node.name, "Sum", [ctx.get(k, layout) for k in node.inputs], layout=layout)


def keeps_order(rank: int, dropped: list[int]) -> bool:
    """Whether dropping TF axes ``dropped`` from an NCHW-held 4-D tensor leaves the TF axis order."""
    kept = [NCHW_AXIS[a] for a in range(rank) if a not in dropped]
    return kept == sorted(kept)


def norm_axes(axes, rank: int) -> list[int]:
    out = sorted({int(a) % rank for a in np.asarray(axes).reshape(-1)})
    if any(not -rank <= int(a) < rank for a in np.asarray(axes).reshape(-1)):
        raise RknnError(f"axes {list(np.asarray(axes).reshape(-1))} are out of range for rank {rank}")
    return out


def reduce(ctx: Context, node: TfNode) -> None:
    key = node.inputs[0]
    rank = ctx.rank(key)
    axes = norm_axes(ctx.need_const(node.inputs[1], "the reduction axes"), rank)
    keep = bool(node.attr("keep_dims", False))
    nchw = ctx.layout(key) == NCHW and rank == 4 and (keep or keeps_order(rank, axes))
    x = ctx.get(key, NCHW if nchw else TF)
    ir_axes = [NCHW_AXIS[a] for a in axes] if nchw else axes
    name = ctx.add_const(f"{node.name}/axes", np.asarray(ir_axes, np.int64))
    ctx.result(node.name, REDUCE[node.op], [x, name], {"keepdims": int(keep)}, NCHW if nchw and keep else TF)


def argmax(ctx: Context, node: TfNode) -> None:
    key = node.inputs[0]
    axis = norm_axes(ctx.need_const(node.inputs[1], "the axis"), ctx.rank(key))[0]
    op = "ArgMax" if node.op == "ArgMax" else "ArgMin"
    dtype = np_dtype(node.attr("output_type", 9), node.name)
    if dtype == np.int64:
        ctx.result(node.name, op, [ctx.get(key)], {"axis": axis, "keepdims": 0})
    else:
        idx = ctx.emit(op, [ctx.get(key)], {"axis": axis, "keepdims": 0})[0]
        ctx.result(node.name, "Cast", [idx], {"to": str(dtype)})


def cast(ctx: Context, node: TfNode) -> None:
    key = node.inputs[0]
    layout = ctx.layout(key)
    dtype = np_dtype(node.attr("DstT"), node.name)
    ctx.result(node.name, "Cast", [ctx.get(key, layout)], {"to": str(dtype)}, layout)


CONVERTERS = {
    **{op: unary for op in (*UNARY, "Relu6", "LeakyRelu", "Rsqrt", "Square")},
    **{op: binary for op in BINARY},
    **{op: reduce for op in REDUCE},
    "AddN": addn, "ArgMax": argmax, "ArgMin": argmax, "Cast": cast,
}
