"""Layers with weights: ``[convolutional]`` and ``[connected]``, and darknet's activations.

Weights are stored per layer as biases, then (with ``batch_normalize=1``) scales, rolling means and
rolling variances, then the weights; ``[connected]`` keeps the weights before the batch-norm arrays.
Batch norm becomes a BatchNormalization node (epsilon 1e-6, darknet's), which the optimizer folds.
"""

from __future__ import annotations

from rknn_darknet.cfg import Section
from rknn_darknet.context import Ctx

BN_EPSILON = 1e-6


def _mish(ctx: Ctx, x: str) -> str:
    return ctx.emit("Mul", [x, ctx.emit("Tanh", [ctx.emit("Softplus", [x])])])


def _swish(ctx: Ctx, x: str) -> str:
    return ctx.emit("Mul", [x, ctx.emit("Sigmoid", [x])])


ACTIVATIONS = {
    "linear": lambda ctx, x: x,
    "leaky": lambda ctx, x: ctx.emit("LeakyRelu", [x], alpha=0.1),
    "relu": lambda ctx, x: ctx.emit("Relu", [x]),
    "logistic": lambda ctx, x: ctx.emit("Sigmoid", [x]),
    "tanh": lambda ctx, x: ctx.emit("Tanh", [x]),
    "mish": _mish,
    "swish": _swish,
}


def activate(ctx: Ctx, x: str, section: Section, default: str) -> str:
    """``x`` through the section's ``activation`` (``default`` when it names none)."""
    name = section.str("activation", default)
    if name not in ACTIVATIONS:
        raise section.error(f"activation '{name}' is not supported ({', '.join(ACTIVATIONS)})", "activation")
    return ACTIVATIONS[name](ctx, x)


BN_ARRAYS = ("scales", "rolling_mean", "rolling_variance")


def _read_bn(ctx: Ctx, filters: int) -> list:
    """The batch-norm arrays in file order: scales, rolling means, rolling variances."""
    return [ctx.take((filters,), what) for what in BN_ARRAYS]


def _batch_norm(ctx: Ctx, x: str, biases, bn: list) -> str:
    scales, mean, var = (ctx.const(what, data) for what, data in zip(BN_ARRAYS, bn))
    return ctx.emit("BatchNormalization", [x, scales, ctx.const("biases", biases), mean, var], epsilon=BN_EPSILON)


def convolutional(ctx: Ctx, s: Section) -> str:
    for key, neutral in (("flipped", 0), ("dilation", 1), ("xnor", 0), ("binary", 0), ("antialiasing", 0),
                         ("stride_x", s.int("stride", 1)), ("stride_y", s.int("stride", 1))):
        s.refuse(key, neutral)
    x = ctx.input()
    _, channels, height, width = ctx.shape(x)
    size, stride, filters, groups = s.int("size", 1), s.int("stride", 1), s.int("filters", 1), s.int("groups", 1)
    padding = size // 2 if s.int("pad", 0) else s.int("padding", 0)
    if min(size, stride, filters, groups) < 1 or padding < 0:
        raise s.error(f"size={size}, stride={stride}, filters={filters}, groups={groups} must be positive and "
                      f"padding={padding} not negative")
    if channels % groups or filters % groups:
        raise s.error(f"groups={groups} must divide the {channels} input channels and filters={filters}", "groups")
    if min(height, width) + 2 * padding < size:
        raise s.error(f"the {size}x{size} kernel does not fit the {height}x{width} input with padding {padding}")
    biases = ctx.take((filters,), "biases")
    normalize = s.int("batch_normalize", 0)
    bn = _read_bn(ctx, filters) if normalize else []
    weights = ctx.take((filters, channels // groups, size, size), "weights")
    inputs = [x, ctx.const("weights", weights)] + ([] if normalize else [ctx.const("biases", biases)])
    y = ctx.emit("Conv", inputs, kernel_shape=[size, size], strides=[stride, stride], pads=[padding] * 4,
                 group=groups)
    if normalize:
        y = _batch_norm(ctx, y, biases, bn)
    return activate(ctx, y, s, "logistic")


def connected(ctx: Ctx, s: Section) -> str:
    x = ctx.input()
    inputs = 1
    for d in ctx.shape(x)[1:]:
        inputs *= d
    outputs = s.int("output", 1)
    if outputs < 1:
        raise s.error(f"output={outputs} must be positive", "output")
    biases = ctx.take((outputs,), "biases")
    weights = ctx.take((outputs, inputs), "weights")
    flat = ctx.reshape(x, (1, inputs))
    if s.int("batch_normalize", 0):
        y = _batch_norm(ctx, ctx.emit("Gemm", [flat, ctx.const("weights", weights)], transB=1), biases,
                        _read_bn(ctx, outputs))
    else:
        y = ctx.emit("Gemm", [flat, ctx.const("weights", weights), ctx.const("biases", biases)], transB=1)
    return activate(ctx, ctx.reshape(y, (1, outputs, 1, 1)), s, "logistic")
