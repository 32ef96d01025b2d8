"""Converters of MXNet's activations, softmax family and elementwise arithmetic (tensor, broadcast, scalar)."""

from __future__ import annotations

import math

import numpy as np

from rknn_core.errors import RknnError
from rknn_mxnet import attr_values as av
from rknn_mxnet.context import Ctx
from rknn_mxnet.symbol import MxNode

SELU_ALPHA, SELU_GAMMA = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _softsign(ctx: Ctx, x: str) -> str:
    return ctx.emit("Div", [x, ctx.emit("Add", [ctx.emit("Abs", [x])[0], ctx.scalar(1.0)])[0]])[0]


def _neg_softplus_neg(ctx: Ctx, x: str) -> str:
    """log(sigmoid(x)) = -softplus(-x)."""
    return ctx.emit("Neg", [ctx.emit("Softplus", [ctx.emit("Neg", [x])[0]])[0]])[0]


def _mish(ctx: Ctx, x: str) -> str:
    return ctx.emit("Mul", [x, ctx.emit("Tanh", [ctx.emit("Softplus", [x])[0]])[0]])[0]


def _gelu(ctx: Ctx, x: str) -> str:
    """0.5 x (1 + erf(x / sqrt 2)), MXNet's exact GELU."""
    erf = ctx.emit("Erf", [ctx.emit("Mul", [x, ctx.scalar(1 / math.sqrt(2.0))])[0]])[0]
    half = ctx.emit("Mul", [x, ctx.scalar(0.5)])[0]
    return ctx.emit("Mul", [half, ctx.emit("Add", [erf, ctx.scalar(1.0)])[0]])[0]


ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softrelu": "Softplus"}
COMPOSED = {"softsign": _softsign, "log_sigmoid": _neg_softplus_neg, "mish": _mish}


def activation(ctx: Ctx, node: MxNode) -> None:
    kind = av.choice(node.attrs, "act_type", (*ACTIVATIONS, *COMPOSED), "relu")
    if kind in ACTIVATIONS:
        ctx.result(ACTIVATIONS[kind], [ctx.inp(0)])
    else:
        ctx.bind(0, COMPOSED[kind](ctx, ctx.inp(0)))


def leaky_relu(ctx: Ctx, node: MxNode) -> None:
    """act_type leaky (slope), prelu (learned gamma per channel or shared), elu (slope is alpha), selu, gelu,
    rrelu (inference: the mean of lower_bound and upper_bound as the slope)."""
    a = node.attrs
    kind = av.choice(a, "act_type", ("leaky", "prelu", "elu", "selu", "gelu", "rrelu"), "leaky")
    slope = av.number(a, "slope", 0.25)
    x = ctx.inp(0)
    if kind == "leaky":
        ctx.result("LeakyRelu", [x], {"alpha": slope})
    elif kind == "rrelu":
        lower, upper = av.number(a, "lower_bound", 0.125), av.number(a, "upper_bound", 0.334)
        ctx.result("LeakyRelu", [x], {"alpha": (lower + upper) / 2})
    elif kind == "elu":
        ctx.result("Elu", [x], {"alpha": slope})
    elif kind == "selu":
        ctx.result("Selu", [x], {"alpha": SELU_ALPHA, "gamma": SELU_GAMMA})
    elif kind == "gelu":
        ctx.bind(0, _gelu(ctx, x))
    else:
        shape = ctx.shape(0)
        channels = shape[1] if len(shape) > 1 else 1
        gamma = ctx.value(1)
        if gamma is None or gamma.size not in (1, channels):
            raise RknnError(f"prelu needs a learned gamma of {channels} values (one per channel, axis 1) or one "
                            f"shared value, got {None if gamma is None else list(gamma.shape)}")
        gamma = gamma.astype(np.float32).reshape((1,) if gamma.size == 1 else (channels,) + (1,) * (len(shape) - 2))
        ctx.result("PRelu", [x, ctx.const("gamma", gamma)])


def _temperature(ctx: Ctx, node: MxNode) -> str:
    t = av.number(node.attrs, "temperature", 1.0)
    if t == 0:
        raise RknnError("temperature must not be 0")
    return ctx.inp(0) if t == 1.0 else ctx.emit("Div", [ctx.inp(0), ctx.scalar(t)])[0]


def _axis(ctx: Ctx, axis: int) -> int:
    rank = len(ctx.shape(0))
    if not -rank <= axis < rank:
        raise RknnError(f"axis {axis} is out of range for an input of rank {rank}")
    return axis % rank


def softmax(op: str):
    """``softmax`` / ``log_softmax``: along ``axis`` (-1), divided by ``temperature`` first."""
    def convert(ctx: Ctx, node: MxNode) -> None:
        if av.boolean(node.attrs, "use_length", False):
            raise RknnError("use_length=True is not supported")
        ctx.result(op, [_temperature(ctx, node)], {"axis": _axis(ctx, av.integer(node.attrs, "axis", -1))})
    convert.__doc__ = f"MXNet's {op.lower()} along one axis."
    return convert


def softmax_output(ctx: Ctx, node: MxNode) -> None:
    """SoftmaxOutput at inference (the label input is not used): over the flattened (N, rest) by default, over
    axis 1 with multi_output, over the last axis with preserve_shape."""
    a = node.attrs
    if av.boolean(a, "preserve_shape", False):
        ctx.result("Softmax", [ctx.inp(0)], {"axis": len(ctx.shape(0)) - 1})
    elif av.boolean(a, "multi_output", False):
        ctx.result("Softmax", [ctx.inp(0)], {"axis": _axis(ctx, 1)})
    else:
        ctx.result("Softmax", [ctx.inp(0)], {"axis": _axis(ctx, 1), "coerce_2d": 1})


def softmax_activation(ctx: Ctx, node: MxNode) -> None:
    """mode 'instance' (the default): over the last axis (MXNet flattens to (rest, last)); 'channel': axis 1."""
    mode = av.choice(node.attrs, "mode", ("instance", "channel"), "instance")
    ctx.result("Softmax", [ctx.inp(0)], {"axis": _axis(ctx, -1 if mode == "instance" else 1)})


def binary(op: str):
    def convert(ctx: Ctx, node: MxNode) -> None:
        ctx.result(op, [ctx.inp(0), ctx.inp(1)])
    convert.__doc__ = f"Elementwise {op} of two tensors (numpy broadcasting)."
    return convert


def scalar(op: str, reverse: bool = False):
    def convert(ctx: Ctx, node: MxNode) -> None:
        s = ctx.scalar(av.number(node.attrs, "scalar"))
        ctx.result(op, [s, ctx.inp(0)] if reverse else [ctx.inp(0), s])
    convert.__doc__ = f"{op} of a tensor and the attribute 'scalar'{' (scalar first)' if reverse else ''}."
    return convert


def unary(op: str):
    def convert(ctx: Ctx, node: MxNode) -> None:
        ctx.result(op, [ctx.inp(0)])
    convert.__doc__ = f"Elementwise {op}."
    return convert


def square(ctx: Ctx, node: MxNode) -> None:
    ctx.result("Mul", [ctx.inp(0), ctx.inp(0)])


def add_n(ctx: Ctx, node: MxNode) -> None:
    ctx.result("Sum", [ctx.inp(k) for k in range(ctx.n_inputs)])


def clip(ctx: Ctx, node: MxNode) -> None:
    low, high = av.number(node.attrs, "a_min"), av.number(node.attrs, "a_max")
    if low > high:
        raise RknnError(f"a_min {low} is larger than a_max {high}")
    ctx.result("Clip", [ctx.inp(0), ctx.scalar(low), ctx.scalar(high)])


_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div"}
CONVERTERS = {
    "Activation": activation, "LeakyReLU": leaky_relu, "softmax": softmax("Softmax"),
    "log_softmax": softmax("LogSoftmax"), "SoftmaxOutput": softmax_output, "Softmax": softmax_output,
    "SoftmaxActivation": softmax_activation, "clip": clip, "add_n": add_n, "ElementWiseSum": add_n, "square": square,
    **{f"elemwise_{name}": binary(op) for name, op in _BINARY.items()},
    **{f"broadcast_{name}": binary(op) for name, op in _BINARY.items()},
    "_Plus": binary("Add"), "_plus": binary("Add"), "_Minus": binary("Sub"), "_minus": binary("Sub"),
    "_Mul": binary("Mul"), "_mul": binary("Mul"), "_Div": binary("Div"), "_div": binary("Div"),
    "broadcast_plus": binary("Add"), "broadcast_minus": binary("Sub"), "broadcast_maximum": binary("Max"),
    "broadcast_minimum": binary("Min"), "broadcast_power": binary("Pow"), "_maximum": binary("Max"),
    "_minimum": binary("Min"), "_power": binary("Pow"),
    "_plus_scalar": scalar("Add"), "_minus_scalar": scalar("Sub"), "_rminus_scalar": scalar("Sub", reverse=True),
    "_mul_scalar": scalar("Mul"), "_div_scalar": scalar("Div"), "_rdiv_scalar": scalar("Div", reverse=True),
    "_power_scalar": scalar("Pow"), "_rpower_scalar": scalar("Pow", reverse=True),
    "_maximum_scalar": scalar("Max"), "_minimum_scalar": scalar("Min"),
    "log": unary("Log"), "exp": unary("Exp"), "sqrt": unary("Sqrt"), "abs": unary("Abs"), "negative": unary("Neg"),
    "sigmoid": unary("Sigmoid"), "tanh": unary("Tanh"), "relu": unary("Relu"), "reciprocal": unary("Reciprocal"),
    "floor": unary("Floor"), "ceil": unary("Ceil"), "erf": unary("Erf"),
}
