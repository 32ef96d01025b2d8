"""Converters of Caffe's learned and activation layers (NCHW in, NCHW out)."""

from __future__ import annotations

import numpy as np

from rknn_caffe import geometry
from rknn_caffe.context import Ctx
from rknn_caffe.net import CaffeLayer
from rknn_core.errors import RknnError


def _spatial(ctx: Ctx, what: str) -> tuple[int, int, int, int]:
    shape = ctx.shape(0)
    if len(shape) != 4:
        raise RknnError(f"{what} needs a 4-D (N, C, H, W) bottom, got shape {list(shape)}")
    return shape


def convolution(ctx: Ctx, layer: CaffeLayer) -> None:
    _conv(ctx, layer, transposed=False)


def deconvolution(ctx: Ctx, layer: CaffeLayer) -> None:
    _conv(ctx, layer, transposed=True)


def _conv(ctx: Ctx, layer: CaffeLayer, transposed: bool) -> None:
    p = layer.param.convolution_param
    _, channels, _, _ = _spatial(ctx, layer.type)
    if p.axis != 1:
        raise RknnError(f"convolution_param axis {p.axis} is not supported (only 1, the channels)")
    kh, kw = geometry.kernel(p)
    group, out = int(p.group), int(p.num_output)
    if out < 1 or group < 1 or channels % group or out % group:
        raise RknnError(f"num_output {out} and group {group} do not fit the bottom's {channels} channels")
    shape = (channels, out // group, kh, kw) if transposed else (out, channels // group, kh, kw)
    inputs = [ctx.bottom(0), ctx.const(f"{layer.name}/weights", ctx.blob(0, shape, "weights"))]
    if p.bias_term:
        inputs.append(ctx.const(f"{layer.name}/bias", ctx.blob(1, (out,), "bias")))
    ph, pw = geometry.pad(p)
    attrs = {"kernel_shape": [kh, kw], "strides": list(geometry.stride(p)), "pads": [ph, pw, ph, pw],
             "dilations": list(geometry.dilation(p)), "group": group}
    ctx.top(0, "ConvTranspose" if transposed else "Conv", inputs, attrs)


def inner_product(ctx: Ctx, layer: CaffeLayer) -> None:
    p = layer.param.inner_product_param
    shape = ctx.shape(0)
    axis = p.axis + len(shape) if p.axis < 0 else p.axis
    if not 0 < axis <= len(shape):
        raise RknnError(f"inner_product_param axis {p.axis} does not fit a bottom of shape {list(shape)}")
    k, out = int(np.prod(shape[axis:], dtype=np.int64)), int(p.num_output)
    weights = ctx.blob(0, (k, out) if p.transpose else (out, k), "weights")
    flat = ctx.bottom(0)
    if len(shape) != 2 or axis != 1:
        flat = ctx.emit("Flatten", [flat], {"axis": axis})[0]
    inputs = [flat, ctx.const(f"{layer.name}/weights", weights)]
    if p.bias_term:
        inputs.append(ctx.const(f"{layer.name}/bias", ctx.blob(1, (out,), "bias")))
    attrs = {"transB": 0 if p.transpose else 1}
    if axis == 1:
        ctx.top(0, "Gemm", inputs, attrs)
        return
    y = ctx.emit("Gemm", inputs, attrs)[0]
    ctx.top(0, "Reshape", [y, ctx.const(f"{layer.name}/shape", np.array([*shape[:axis], out], np.int64))])


def pooling(ctx: Ctx, layer: CaffeLayer) -> None:
    p = layer.param.pooling_param
    _spatial(ctx, "Pooling")
    method = p.pool
    if method == p.STOCHASTIC:
        raise RknnError("STOCHASTIC pooling is not supported")
    if len(layer.tops) > 1:
        raise RknnError("the second top (the max positions) of a Pooling layer is not supported")
    if p.global_pooling:
        if p.kernel_size or p.HasField("kernel_h") or p.HasField("kernel_w"):
            raise RknnError("global_pooling takes no kernel size")
        ctx.top(0, "GlobalMaxPool" if method == p.MAX else "GlobalAveragePool", [ctx.bottom(0)])
        return
    ph, pw = geometry.pad(p)
    attrs = {"kernel_shape": list(geometry.kernel(p)), "strides": list(geometry.stride(p)), "pads": [ph, pw, ph, pw],
             "ceil_mode": 1 if getattr(p, "round_mode", 0) == p.CEIL else 0}
    if method == p.MAX:
        ctx.top(0, "MaxPool", [ctx.bottom(0)], attrs)
    else:  # Caffe divides by the window clipped to the padded input: padding counts, the ceil overhang does not
        ctx.top(0, "AveragePool", [ctx.bottom(0)], {**attrs, "count_include_pad": 1})


def relu(ctx: Ctx, layer: CaffeLayer) -> None:
    slope = float(layer.param.relu_param.negative_slope)
    if slope == 0.0:
        ctx.top(0, "Relu", [ctx.bottom(0)])
    else:
        ctx.top(0, "LeakyRelu", [ctx.bottom(0)], {"alpha": slope})


def prelu(ctx: Ctx, layer: CaffeLayer) -> None:
    shape = ctx.shape(0)
    if len(shape) < 2:
        raise RknnError(f"PReLU needs a bottom with channels (rank >= 2), got shape {list(shape)}")
    shared = layer.param.prelu_param.channel_shared
    slope = ctx.blob(0, (1,) if shared else (shape[1],), "slopes")
    slope = slope.reshape((1,) if shared else (shape[1],) + (1,) * (len(shape) - 2))
    ctx.top(0, "PRelu", [ctx.bottom(0), ctx.const(f"{layer.name}/slope", slope)])


def unary(op: str):
    def convert(ctx: Ctx, layer: CaffeLayer) -> None:
        ctx.top(0, op, [ctx.bottom(0)])
    convert.__doc__ = f"A Caffe layer computed by the {op} op."
    return convert


def elu(ctx: Ctx, layer: CaffeLayer) -> None:
    ctx.top(0, "Elu", [ctx.bottom(0)], {"alpha": float(layer.param.elu_param.alpha)})


def batch_norm(ctx: Ctx, layer: CaffeLayer) -> None:
    shape = ctx.shape(0)
    if len(shape) < 2:
        raise RknnError(f"BatchNorm needs a bottom with channels (rank >= 2), got shape {list(shape)}")
    c = shape[1]
    mean, var = ctx.blob(0, (c,), "mean"), ctx.blob(1, (c,), "variance")
    factor = float(ctx.blob(2, (1,), "moving-average factor")[0])
    scale = 0.0 if factor == 0 else 1.0 / factor  # Caffe's rule
    inputs = [ctx.bottom(0), ctx.const(f"{layer.name}/gamma", np.ones(c, np.float32)),
              ctx.const(f"{layer.name}/beta", np.zeros(c, np.float32)),
              ctx.const(f"{layer.name}/mean", (mean * scale).astype(np.float32)),
              ctx.const(f"{layer.name}/variance", (var * scale).astype(np.float32))]
    ctx.top(0, "BatchNormalization", inputs, {"epsilon": float(layer.param.batch_norm_param.eps)})


def _param_shape(shape: tuple[int, ...], axis: int, num_axes: int, what: str) -> tuple[tuple[int, ...], int]:
    """The shape a learned Scale/Bias blob covers, and the axis it starts at."""
    axis = axis + len(shape) if axis < 0 else axis
    end = len(shape) if num_axes == -1 else axis + num_axes
    if not 0 <= axis <= end <= len(shape):
        raise RknnError(f"{what} axis {axis} / num_axes {num_axes} do not fit a bottom of shape {list(shape)}")
    return shape[axis:end], axis


def _broadcast(data: np.ndarray, rank: int, axis: int) -> np.ndarray:
    """A parameter covering axes [axis, axis + ndim) shaped to broadcast against a rank-``rank`` tensor."""
    return data.reshape(data.shape + (1,) * (rank - axis - data.ndim))


def scale(ctx: Ctx, layer: CaffeLayer) -> None:
    p = layer.param.scale_param
    shape = ctx.shape(0)
    x = ctx.bottom(0)
    if len(layer.bottoms) > 1:  # the scale is the second bottom
        covered, axis = _param_shape(shape, p.axis, len(ctx.shape(1)), "scale_param")
        if tuple(ctx.shape(1)) != covered:
            raise RknnError(f"the scale bottom has shape {list(ctx.shape(1))}; bottom 0 {list(shape)} needs "
                            f"{list(covered)} at axis {axis}")
        factor = ctx.emit("Reshape", [ctx.bottom(1), ctx.const(f"{layer.name}/shape", np.array(
            _broadcast(np.zeros(covered), len(shape), axis).shape, np.int64))])[0]
        first_bias = 0
    else:
        covered, axis = _param_shape(shape, p.axis, p.num_axes, "scale_param")
        factor = ctx.const(f"{layer.name}/scale", _broadcast(ctx.blob(0, covered, "scale"), len(shape), axis))
        first_bias = 1
    if not p.bias_term:
        ctx.top(0, "Mul", [x, factor])
        return
    bias = _broadcast(ctx.blob(first_bias, covered, "bias"), len(shape), axis)
    ctx.top(0, "Add", [ctx.emit("Mul", [x, factor])[0], ctx.const(f"{layer.name}/bias", bias)])


def bias(ctx: Ctx, layer: CaffeLayer) -> None:
    p = layer.param.bias_param
    shape = ctx.shape(0)
    if len(layer.bottoms) > 1:
        raise RknnError("a Bias layer with a second bottom is not supported")
    covered, axis = _param_shape(shape, p.axis, p.num_axes, "bias_param")
    ctx.top(0, "Add", [ctx.bottom(0), ctx.const(f"{layer.name}/bias", _broadcast(ctx.blob(0, covered, "bias"),
                                                                                   len(shape), axis))])


def power(ctx: Ctx, layer: CaffeLayer) -> None:
    """y = (shift + scale * x) ^ power, each step left out when it does nothing."""
    p = layer.param.power_param
    y = ctx.bottom(0)
    steps = []
    if p.scale != 1.0:
        steps.append(("Mul", p.scale))
    if p.shift != 0.0:
        steps.append(("Add", p.shift))
    if p.power != 1.0:
        steps.append(("Pow", p.power))
    if p.scale == 0.0:  # Caffe: a constant shift ^ power
        steps = [("Mul", 0.0), ("Add", float(p.shift) ** float(p.power))]
    if not steps:
        ctx.top(0, "Identity", [y])
        return
    for i, (op, value) in enumerate(steps):
        inputs = [y, ctx.scalar(value)]
        y = ctx.top(0, op, inputs) if i == len(steps) - 1 else ctx.emit(op, inputs)[0]


def lrn(ctx: Ctx, layer: CaffeLayer) -> None:
    p = layer.param.lrn_param
    _spatial(ctx, "LRN")
    size = int(p.local_size)
    if size % 2 == 0:
        raise RknnError(f"lrn_param local_size must be odd, got {size}")
    if p.norm_region == p.ACROSS_CHANNELS:
        ctx.top(0, "LRN", [ctx.bottom(0)], {"size": size, "alpha": float(p.alpha), "beta": float(p.beta),
                                            "bias": float(p.k)})
        return
    # WITHIN_CHANNEL: x * (1 + alpha * mean of x^2 over the size x size window, padding counted) ^ -beta
    x = ctx.bottom(0)
    half = (size - 1) // 2
    sq = ctx.emit("Mul", [x, x])[0]
    mean = ctx.emit("AveragePool", [sq], {"kernel_shape": [size, size], "pads": [half] * 4,
                                          "count_include_pad": 1})[0]
    base = ctx.emit("Add", [ctx.emit("Mul", [mean, ctx.scalar(p.alpha)])[0], ctx.scalar(1.0)])[0]
    ctx.top(0, "Mul", [x, ctx.emit("Pow", [base, ctx.scalar(-p.beta)])[0]])


def softmax(ctx: Ctx, layer: CaffeLayer) -> None:
    ctx.top(0, "Softmax", [ctx.bottom(0)], {"axis": int(layer.param.softmax_param.axis)})


CONVERTERS = {
    "Convolution": convolution, "Deconvolution": deconvolution, "InnerProduct": inner_product, "Pooling": pooling,
    "ReLU": relu, "PReLU": prelu, "ELU": elu, "Sigmoid": unary("Sigmoid"), "TanH": unary("Tanh"),
    "AbsVal": unary("Abs"), "BatchNorm": batch_norm, "Scale": scale, "Bias": bias, "Power": power, "LRN": lrn,
    "Softmax": softmax,
}
