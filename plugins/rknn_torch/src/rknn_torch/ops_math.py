"""Converters of elementwise arithmetic, activations, softmax and reductions."""

from __future__ import annotations

import math

import numpy as np

from rknn_core.errors import RknnError
from rknn_torch.context import Context, norm_dim
from rknn_torch.script import TorchNode

UNARY = {"aten::relu": "Relu", "aten::sigmoid": "Sigmoid", "aten::tanh": "Tanh", "aten::hardswish": "HardSwish",
         "aten::log": "Log", "aten::exp": "Exp", "aten::sqrt": "Sqrt", "aten::neg": "Neg", "aten::abs": "Abs",
         "aten::reciprocal": "Reciprocal", "aten::floor": "Floor", "aten::ceil": "Ceil", "aten::erf": "Erf"}
BINARY = {"aten::add": "Add", "aten::sub": "Sub", "aten::mul": "Mul", "aten::div": "Div", "aten::pow": "Pow",
          "aten::rsub": "Sub", "aten::maximum": "Max", "aten::minimum": "Min", "aten::true_divide": "Div",
          "aten::multiply": "Mul", "aten::subtract": "Sub", "aten::gt": "Greater", "aten::lt": "Less",
          "aten::eq": "Equal"}


def _operand(ctx: Context, key: str, other: str) -> str:
    """A tensor operand. As in torch's type promotion, a number, or a 0-d tensor (``x.size(2)`` in a traced
    graph) beside a tensor of higher rank, takes that tensor's dtype unless it would lose a fraction."""
    if not ctx.is_tensor(key):
        return ctx.tensor(key, dtype=ctx.dtype(other) if ctx.is_tensor(other) else "float32")
    name = ctx.tensor(key)
    if key == other or not ctx.is_tensor(other) or ctx.rank(key) > 0 or ctx.rank(other) == 0:
        return name
    mine, theirs = np.dtype(ctx.dtype(key)), np.dtype(ctx.dtype(other))
    if mine == theirs or (mine.kind == "f" and theirs.kind != "f"):
        return name
    return ctx.emit("Cast", [name], {"to": theirs.name})[0]


def unary(ctx: Context, node: TorchNode) -> None:
    ctx.result(node, UNARY[node.kind], [ctx.tensor(node.inputs[0])])


def binary(ctx: Context, node: TorchNode) -> None:
    """add / sub / rsub (with alpha), mul, div (with rounding_mode), pow, maximum, minimum."""
    a, b = node.inputs[:2]
    x, y = _operand(ctx, a, b), _operand(ctx, b, a)  # comparisons give bool tensors
    if node.kind in ("aten::add", "aten::sub", "aten::subtract", "aten::rsub") and len(node.inputs) > 2:
        alpha = ctx.static(node.inputs[2], "alpha")
        if alpha != 1:
            y = ctx.emit("Mul", [y, ctx.add_const("alpha", np.asarray(alpha, ctx.graph.tensor(y).dtype))])[0]
    if node.kind == "aten::rsub":
        x, y = y, x
    rounding = ctx.static(node.inputs[2], "rounding_mode") if node.kind == "aten::div" and len(node.inputs) > 2 else None
    if rounding is None:
        return ctx.result(node, BINARY[node.kind], [x, y])
    if rounding != "floor":
        raise RknnError(f"div with rounding_mode '{rounding}' is not supported (None, 'floor')")
    ctx.result(node, "Floor", [ctx.emit("Div", [x, y])[0]])


def clamp(ctx: Context, node: TorchNode) -> None:
    """clamp(x, min, max) (bounds may be None), hardtanh(x, min, max), relu6(x)."""
    x = node.inputs[0]
    if node.kind == "aten::relu6":
        bounds = [0.0, 6.0]
    else:
        bounds = [ctx.static(k, "a clamp bound") for k in node.inputs[1:3]]
    dtype = ctx.dtype(x)
    names = ["" if b is None else ctx.add_const(f"bound{i}", np.asarray(b, dtype).reshape(()))
             for i, b in enumerate(bounds)]
    while names and names[-1] == "":
        names.pop()
    ctx.result(node, "Clip", [ctx.tensor(x), *names])


def leaky_relu(ctx: Context, node: TorchNode) -> None:
    slope = ctx.static(node.inputs[1], "negative_slope") if len(node.inputs) > 1 else 0.01
    ctx.result(node, "LeakyRelu", [ctx.tensor(node.inputs[0])], {"alpha": float(slope)})


def prelu(ctx: Context, node: TorchNode) -> None:
    """The slope (one value, or one per channel along axis 1) broadcast against the input."""
    x, w = node.inputs[:2]
    rank, count = ctx.rank(x), math.prod(ctx.shape(w))
    shape = [count] + [1] * (rank - 2) if count > 1 and rank > 2 else [count]
    slope = ctx.emit("Reshape", [ctx.tensor(w), ctx.add_const("shape", np.asarray(shape, np.int64))])[0]
    ctx.result(node, "PRelu", [ctx.tensor(x), slope])


def hardsigmoid(ctx: Context, node: TorchNode) -> None:
    ctx.result(node, "HardSigmoid", [ctx.tensor(node.inputs[0])], {"alpha": 1.0 / 6.0, "beta": 0.5})


def silu(ctx: Context, node: TorchNode) -> None:
    x = ctx.tensor(node.inputs[0])
    ctx.result(node, "Mul", [x, ctx.emit("Sigmoid", [x])[0]])


def elu(ctx: Context, node: TorchNode) -> None:
    alpha, scale, input_scale = (float(ctx.static(k, "an elu parameter")) for k in node.inputs[1:4])
    if scale != 1.0 or input_scale != 1.0:
        raise RknnError(f"elu with scale {scale} / input_scale {input_scale} is not supported (1.0)")
    ctx.result(node, "Elu", [ctx.tensor(node.inputs[0])], {"alpha": alpha})


def gelu(ctx: Context, node: TorchNode) -> None:
    """The exact form 0.5 x (1 + erf(x / sqrt 2)); the tanh approximation when asked."""
    x = ctx.tensor(node.inputs[0])
    dtype = ctx.dtype(node.inputs[0])
    approximate = ctx.static(node.inputs[1], "approximate") if len(node.inputs) > 1 else "none"
    if approximate == "tanh":
        cube = ctx.emit("Mul", [x, ctx.emit("Mul", [x, x])[0]])[0]
        inner = ctx.emit("Add", [x, ctx.emit("Mul", [cube, ctx.add_const("k", np.asarray(0.044715, dtype))])[0]])[0]
        core = ctx.emit("Tanh", [ctx.emit("Mul", [inner, ctx.add_const("c", np.asarray(math.sqrt(2 / math.pi),
                                                                                          dtype))])[0]])[0]
    else:
        core = ctx.emit("Erf", [ctx.emit("Mul", [x, ctx.add_const("c", np.asarray(1 / math.sqrt(2), dtype))])[0]])[0]
    one_plus = ctx.emit("Add", [core, ctx.add_const("one", np.asarray(1.0, dtype))])[0]
    half_x = ctx.emit("Mul", [x, ctx.add_const("half", np.asarray(0.5, dtype))])[0]
    ctx.result(node, "Mul", [half_x, one_plus])


def softmax(ctx: Context, node: TorchNode) -> None:
    axis = norm_dim(ctx.static(node.inputs[1], "the dimension"), ctx.rank(node.inputs[0]))
    op = "LogSoftmax" if node.kind == "aten::log_softmax" else "Softmax"
    ctx.result(node, op, [ctx.tensor(node.inputs[0])], {"axis": axis})


def reduce(ctx: Context, node: TorchNode) -> None:
    """mean / sum over dims (all dims when none are given), keepdim."""
    rank = ctx.rank(node.inputs[0])
    dims = ctx.static(node.inputs[1], "the dimensions") if len(node.inputs) > 2 else None
    keep = bool(ctx.static(node.inputs[2], "keepdim")) if len(node.inputs) > 2 else False
    dims = list(range(rank)) if dims is None or dims == [] else dims if isinstance(dims, (list, tuple)) else [dims]
    axes = ctx.add_const("axes", np.asarray([norm_dim(d, rank) for d in dims], np.int64))
    op = "ReduceMean" if node.kind == "aten::mean" else "ReduceSum"
    ctx.result(node, op, [ctx.tensor(node.inputs[0]), axes], {"keepdims": int(keep)})


def amax(ctx: Context, node: TorchNode) -> None:
    """amax / amin over dims, keepdim."""
    rank = ctx.rank(node.inputs[0])
    dims = ctx.static(node.inputs[1], "the dimensions") or list(range(rank))
    keep = bool(ctx.static(node.inputs[2], "keepdim"))
    axes = ctx.add_const("axes", np.asarray([norm_dim(d, rank) for d in dims], np.int64))
    op = "ReduceMax" if node.kind == "aten::amax" else "ReduceMin"
    ctx.result(node, op, [ctx.tensor(node.inputs[0]), axes], {"keepdims": int(keep)})


def rsqrt(ctx: Context, node: TorchNode) -> None:
    ctx.result(node, "Reciprocal", [ctx.emit("Sqrt", [ctx.tensor(node.inputs[0])])[0]])


CONVERTERS = {
    **{kind: unary for kind in UNARY}, **{kind: binary for kind in BINARY},
    "aten::clamp": clamp, "aten::clip": clamp, "aten::hardtanh": clamp, "aten::relu6": clamp,
    "aten::leaky_relu": leaky_relu, "aten::prelu": prelu, "aten::hardsigmoid": hardsigmoid, "aten::silu": silu,
    "aten::elu": elu, "aten::gelu": gelu,
    "aten::softmax": softmax, "aten::log_softmax": softmax,
    "aten::mean": reduce, "aten::sum": reduce, "aten::amax": amax, "aten::amin": amax, "aten::rsqrt": rsqrt,
}
