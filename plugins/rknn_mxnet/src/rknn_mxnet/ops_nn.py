"""Converters of MXNet's learned layers and pooling: Convolution, Deconvolution, FullyConnected, BatchNorm,
Pooling (NCHW in, NCHW out)."""

from __future__ import annotations

import math

import numpy as np

from rknn_core.errors import RknnError
from rknn_mxnet import attr_values as av
from rknn_mxnet.context import Ctx
from rknn_mxnet.symbol import MxNode

CHANNELS_FIRST = ("NCW", "NCHW", "NCDHW")
LAYOUTS = (*CHANNELS_FIRST, "NWC", "NHWC", "NDHWC")


def _geometry(ctx: Ctx, node: MxNode, with_dilate: bool = True) -> dict:
    """kernel / stride / pad (/ dilate) of a Convolution, Deconvolution or Pooling, checked against the input."""
    a = node.attrs
    kernel = av.ints(a, "kernel")
    rank = len(kernel)
    shape = ctx.shape(0)
    if not 1 <= rank <= 3 or len(shape) != rank + 2:
        raise RknnError(f"kernel {list(kernel)} needs an input of rank {rank + 2} (N, C and {rank} spatial axes), "
                        f"got shape {list(shape)}")
    layout = av.choice(a, "layout", LAYOUTS, CHANNELS_FIRST[rank - 1])
    if layout not in CHANNELS_FIRST:
        raise RknnError(f"layout {layout} is not supported (only channels-first: {', '.join(CHANNELS_FIRST)})")
    geometry = {"kernel": kernel, "stride": av.ints(a, "stride", ()) or (1,) * rank,
                "pad": av.ints(a, "pad", ()) or (0,) * rank}
    if with_dilate:
        geometry["dilate"] = av.ints(a, "dilate", ()) or (1,) * rank
    for key, values in geometry.items():
        if len(values) != rank:
            raise RknnError(f"attribute {key} {list(values)} does not have {rank} values like kernel {list(kernel)}")
        if any(v < (0 if key == "pad" else 1) for v in values):
            raise RknnError(f"attribute {key} {list(values)} has a value out of range")
    return geometry


def _channels(ctx: Ctx, node: MxNode, out_key: str) -> tuple[int, int, int]:
    """Input channels, output channels (``out_key``) and groups, checked against each other."""
    c = ctx.shape(0)[1]
    out, group = av.integer(node.attrs, out_key), av.integer(node.attrs, "num_group", 1)
    if out < 1 or group < 1 or c % group or out % group:
        raise RknnError(f"{out_key} {out} and num_group {group} do not fit the input's {c} channels")
    return c, out, group


def convolution(ctx: Ctx, node: MxNode) -> None:
    g = _geometry(ctx, node)
    c, out, group = _channels(ctx, node, "num_filter")
    inputs = [ctx.inp(0), ctx.const("weight", ctx.param(1, (out, c // group, *g["kernel"]), "weight"))]
    if not av.boolean(node.attrs, "no_bias", False):
        inputs.append(ctx.const("bias", ctx.param(2, (out,), "bias")))
    ctx.result("Conv", inputs, {"kernel_shape": list(g["kernel"]), "strides": list(g["stride"]),
                                "pads": [*g["pad"], *g["pad"]], "dilations": list(g["dilate"]), "group": group})


def deconv_padding(in_size: tuple[int, ...], g: dict, adj: tuple[int, ...], target: tuple[int, ...]
                   ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """MXNet's pads and output paddings of a Deconvolution: ``target_shape`` (when not all 0) overrides
    ``pad``/``adj`` with total = stride * (in - 1) + dilated kernel - target, adj = total % 2,
    pad = (total + 1) // 2."""
    if not any(target):
        return g["pad"], adj
    pads, adjs = [], []
    for i, size in enumerate(in_size):
        full = g["stride"][i] * (size - 1) + (g["kernel"][i] - 1) * g["dilate"][i] + 1
        if target[i] > full:
            raise RknnError(f"target_shape {list(target)} is larger than the full output {full} of axis {i}")
        pads.append((full - target[i] + 1) // 2)
        adjs.append((full - target[i]) % 2)
    return tuple(pads), tuple(adjs)


def deconvolution(ctx: Ctx, node: MxNode) -> None:
    g = _geometry(ctx, node)
    c, out, group = _channels(ctx, node, "num_filter")
    rank = len(g["kernel"])
    adj = av.ints(node.attrs, "adj", ()) or (0,) * rank
    target = av.ints(node.attrs, "target_shape", ()) or (0,) * rank
    if len(adj) != rank or len(target) != rank:
        raise RknnError(f"adj {list(adj)} / target_shape {list(target)} do not have {rank} values")
    pad, adj = deconv_padding(ctx.shape(0)[2:], g, adj, target)
    if any(a >= s and a >= d for a, s, d in zip(adj, g["stride"], g["dilate"])):
        raise RknnError(f"adj {list(adj)} must be smaller than stride {list(g['stride'])} or dilate")
    inputs = [ctx.inp(0), ctx.const("weight", ctx.param(1, (c, out // group, *g["kernel"]), "weight"))]
    if not av.boolean(node.attrs, "no_bias", True):  # MXNet's Deconvolution has no bias by default
        inputs.append(ctx.const("bias", ctx.param(2, (out,), "bias")))
    ctx.result("ConvTranspose", inputs, {"kernel_shape": list(g["kernel"]), "strides": list(g["stride"]),
                                         "pads": [*pad, *pad], "dilations": list(g["dilate"]), "group": group,
                                         "output_padding": list(adj)})


def fully_connected(ctx: Ctx, node: MxNode) -> None:
    """``flatten=True`` (the default): (N, ...) -> (N, num_hidden); else on the last axis, other axes kept."""
    a = node.attrs
    hidden, shape = av.integer(a, "num_hidden"), ctx.shape(0)
    if hidden < 1 or not shape:
        raise RknnError(f"num_hidden {hidden} and an input of shape {list(shape)} do not make a FullyConnected")
    flatten = av.boolean(a, "flatten", True)
    k = int(np.prod(shape[1:], dtype=np.int64)) if flatten else shape[-1]
    weight = ctx.param(1, (hidden, k), "weight")
    bias = None if av.boolean(a, "no_bias", False) else ctx.const("bias", ctx.param(2, (hidden,), "bias"))
    x = ctx.inp(0)
    if flatten or len(shape) == 2:
        if len(shape) != 2:
            x = ctx.emit("Flatten", [x], {"axis": 1})[0]
        ctx.result("Gemm", [x, ctx.const("weight", weight)] + ([bias] if bias else []), {"transB": 1})
        return
    y = ctx.emit("MatMul", [x, ctx.const("weight_t", np.ascontiguousarray(weight.T))])[0]
    ctx.result("Add", [y, bias]) if bias else ctx.bind(0, y)


def batch_norm(ctx: Ctx, node: MxNode) -> None:
    """Inference form: the moving mean and variance (aux states); ``fix_gamma`` (the default) uses gamma = 1;
    ``use_global_stats`` changes nothing at inference."""
    a = node.attrs
    shape = ctx.shape(0)
    axis = av.integer(a, "axis", 1)
    axis = axis + len(shape) if axis < 0 else axis
    if not 0 <= axis < len(shape) or len(shape) < 2:
        raise RknnError(f"axis {av.integer(a, 'axis', 1)} does not fit an input of shape {list(shape)}")
    c = shape[axis]
    gamma = np.ones(c, np.float32) if av.boolean(a, "fix_gamma", True) else ctx.param(1, (c,), "gamma")
    beta, mean, var = (ctx.param(k, (c,), what) for k, what in ((2, "beta"), (3, "moving_mean"), (4, "moving_var")))
    eps = av.number(a, "eps", 1e-3)
    if axis == 1:
        ctx.result("BatchNormalization", [ctx.inp(0), ctx.const("gamma", gamma), ctx.const("beta", beta),
                                          ctx.const("mean", mean), ctx.const("var", var)], {"epsilon": eps})
        return
    scale = gamma / np.sqrt(var.astype(np.float64) + eps)
    broadcast = (c,) + (1,) * (len(shape) - axis - 1)
    shift = (beta - mean * scale).reshape(broadcast).astype(np.float32)
    y = ctx.emit("Mul", [ctx.inp(0), ctx.const("scale", scale.reshape(broadcast).astype(np.float32))])[0]
    ctx.result("Add", [y, ctx.const("shift", shift)])


def pooling(ctx: Ctx, node: MxNode) -> None:
    a = node.attrs
    kind = av.choice(a, "pool_type", ("max", "avg", "sum", "lp"), "max")
    shape = ctx.shape(0)
    if av.boolean(a, "global_pool", False):
        _global_pool(ctx, node, kind, shape)
        return
    g = _geometry(ctx, node, with_dilate=False)
    convention = av.choice(a, "pooling_convention", ("valid", "full", "same"), "valid")
    if convention == "same":
        raise RknnError("pooling_convention 'same' is not supported (only 'valid' and 'full')")
    full = convention == "full"
    _check_full_windows(shape[2:], g, full)
    attrs = {"kernel_shape": list(g["kernel"]), "strides": list(g["stride"]), "pads": [*g["pad"], *g["pad"]],
             "ceil_mode": int(full)}
    if kind == "max":
        ctx.result("MaxPool", [ctx.inp(0)], attrs)
    elif kind == "lp":
        if full:
            raise RknnError("pool_type 'lp' with pooling_convention 'full' is not supported")
        ctx.result("LpPool", [ctx.inp(0)], {**attrs, "p": av.integer(a, "p_value", 2)})
    elif kind == "avg":  # MXNet divides by the window clipped to the padded input, as AveragePool does
        ctx.result("AveragePool", [ctx.inp(0)], {**attrs, "count_include_pad": int(av.boolean(a, "count_include_pad",
                                                                                               True))})
    else:
        if full and _overhangs(shape[2:], g):
            raise RknnError("pool_type 'sum' with pooling_convention 'full' over a partial last window is not supported")
        mean = ctx.emit("AveragePool", [ctx.inp(0)], {**attrs, "count_include_pad": 1})[0]
        ctx.result("Mul", [mean, ctx.scalar(float(np.prod(g["kernel"])))])


def _global_pool(ctx: Ctx, node: MxNode, kind: str, shape: tuple[int, ...]) -> None:
    if len(shape) < 3:
        raise RknnError(f"global pooling needs an input with spatial axes (N, C, ...), got shape {list(shape)}")
    x = ctx.inp(0)
    if kind == "max":
        ctx.result("GlobalMaxPool", [x])
    elif kind == "avg":
        ctx.result("GlobalAveragePool", [x])
    elif kind == "lp":
        ctx.result("GlobalLpPool", [x], {"p": av.integer(node.attrs, "p_value", 2)})
    else:
        ctx.result("ReduceSum", [x, ctx.ints("axes", range(2, len(shape)))], {"keepdims": 1})


def _overhangs(in_size: tuple[int, ...], g: dict) -> bool:
    """Whether the 'full' convention adds a partial last window on some axis."""
    return any((i + 2 * p - k) % s for i, k, s, p in zip(in_size, g["kernel"], g["stride"], g["pad"]))


def _check_full_windows(in_size: tuple[int, ...], g: dict, full: bool) -> None:
    """MXNet's output sizes: 1 + floor or ceil((in + 2 pad - kernel) / stride). With 'full', MXNet keeps a last
    window that starts inside the end padding; the simulator's ceil mode does not, so that case is refused."""
    for axis, (i, k, s, p) in enumerate(zip(in_size, g["kernel"], g["stride"], g["pad"])):
        if i + 2 * p < k:
            raise RknnError(f"kernel {list(g['kernel'])} is larger than the padded input {list(in_size)}")
        out = 1 + (math.ceil if full else math.floor)((i + 2 * p - k) / s)
        if full and (out - 1) * s >= i + p:
            raise RknnError(f"pooling_convention 'full' puts the last window of spatial axis {axis} entirely in the "
                            f"padding (input {i}, kernel {k}, stride {s}, pad {p}); this is not supported")


CONVERTERS = {
    "Convolution": convolution, "Deconvolution": deconvolution, "FullyConnected": fully_connected,
    "BatchNorm": batch_norm, "Pooling": pooling,
}
