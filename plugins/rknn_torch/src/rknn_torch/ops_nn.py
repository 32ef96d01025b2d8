"""Converters of spatial and dense ops: convolutions, linear layers, batch norm, pooling, resizing."""

from __future__ import annotations

import math

import numpy as np

from rknn_core.errors import RknnError
from rknn_torch.context import Context, ints
from rknn_torch.script import TorchNode


def _bias(ctx: Context, key: str) -> list[str]:
    return [] if ctx.value(key) is None else [ctx.tensor(key)]


def _conv(ctx: Context, node: TorchNode, stride, padding, dilation, groups: int, transposed: bool = False,
          output_padding=None) -> None:
    x, w = node.inputs[:2]
    kernel = list(ctx.shape(w)[2:])
    rank = len(kernel)
    attrs = {"kernel_shape": kernel, "strides": ints(stride, rank, "stride"),
             "dilations": ints(dilation, rank, "dilation"), "group": int(groups)}
    if isinstance(padding, str):  # conv2d(padding="same" / "valid")
        if padding == "valid":
            pads = [0] * rank
            attrs["pads"] = pads * 2
        else:
            total = [d * (k - 1) for d, k in zip(attrs["dilations"], kernel)]
            attrs["pads"] = [t // 2 for t in total] + [t - t // 2 for t in total]
    else:
        attrs["pads"] = ints(padding, rank, "padding") * 2
    if transposed:
        attrs["output_padding"] = ints(output_padding, rank, "output_padding")
    op = "ConvTranspose" if transposed else "Conv"
    ctx.result(node, op, [ctx.tensor(x), ctx.tensor(w), *_bias(ctx, node.inputs[2])], attrs)


def convolution(ctx: Context, node: TorchNode) -> None:
    """aten::_convolution / aten::convolution: (x, w, b, stride, padding, dilation, transposed, output_padding,
    groups, ...)."""
    s = [ctx.static(k, "a convolution parameter") for k in node.inputs[3:9]]
    _conv(ctx, node, s[0], s[1], s[2], s[5], transposed=bool(s[3]), output_padding=s[4])


def conv(ctx: Context, node: TorchNode) -> None:
    """conv1d / conv2d / conv3d / _convolution_mode (padding "same" / "valid"): (x, w, b, stride, padding,
    dilation, groups)."""
    s = [ctx.static(k, "a convolution parameter") for k in node.inputs[3:7]]
    _conv(ctx, node, s[0], s[1], s[2], s[3])


def conv_transpose(ctx: Context, node: TorchNode) -> None:
    """conv_transpose1d / 2d: (x, w, b, stride, padding, output_padding, groups, dilation)."""
    s = [ctx.static(k, "a convolution parameter") for k in node.inputs[3:8]]
    _conv(ctx, node, s[0], s[1], s[4], s[3], transposed=True, output_padding=s[2])


def linear(ctx: Context, node: TorchNode) -> None:
    x, w = node.inputs[:2]
    if ctx.rank(x) == 2:
        return ctx.result(node, "Gemm", [ctx.tensor(x), ctx.tensor(w), *_bias(ctx, node.inputs[2])], {"transB": 1})
    wt = ctx.emit("Transpose", [ctx.tensor(w)], {"perm": [1, 0]})[0]
    if ctx.value(node.inputs[2]) is None:
        return ctx.result(node, "MatMul", [ctx.tensor(x), wt])
    ctx.result(node, "Add", [ctx.emit("MatMul", [ctx.tensor(x), wt])[0], ctx.tensor(node.inputs[2])])


def addmm(ctx: Context, node: TorchNode) -> None:
    """addmm(bias, m1, m2, beta, alpha) = beta * bias + alpha * m1 @ m2."""
    beta, alpha = (float(ctx.static(k, "beta / alpha")) for k in node.inputs[3:5])
    ctx.result(node, "Gemm", [ctx.tensor(node.inputs[1]), ctx.tensor(node.inputs[2]), ctx.tensor(node.inputs[0])],
               {"alpha": alpha, "beta": beta})


def matmul(ctx: Context, node: TorchNode) -> None:
    """matmul, mm, bmm."""
    ctx.result(node, "MatMul", [ctx.tensor(node.inputs[0]), ctx.tensor(node.inputs[1])])


def batch_norm(ctx: Context, node: TorchNode) -> None:
    """batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps, cudnn_enabled)."""
    x = node.inputs[0]
    if ctx.static(node.inputs[5], "the training flag"):
        raise RknnError("batch_norm in training mode (batch statistics) is not supported; save the model after "
                        "model.eval()")
    channels = ctx.shape(x)[1]
    dtype = ctx.dtype(x)
    defaults = {1: np.ones(channels, dtype), 2: np.zeros(channels, dtype)}
    params = []
    for i, what in ((1, "weight"), (2, "bias"), (3, "running_mean"), (4, "running_var")):
        if ctx.value(node.inputs[i]) is None:
            if i not in defaults:
                raise RknnError(f"batch_norm without {what} (track_running_stats=False) is not supported")
            params.append(ctx.add_const(what, defaults[i]))
        else:
            params.append(ctx.tensor(node.inputs[i]))
    eps = float(ctx.static(node.inputs[7], "eps"))
    ctx.result(node, "BatchNormalization", [ctx.tensor(x), *params], {"epsilon": eps})


def max_pool(ctx: Context, node: TorchNode) -> None:
    """max_pool1d / 2d: (x, kernel, stride, padding, dilation, ceil_mode)."""
    kernel, stride, padding, dilation, ceil = (ctx.static(k, "a pooling parameter") for k in node.inputs[1:6])
    rank = ctx.rank(node.inputs[0]) - 2
    kernel = ints(kernel, rank, "kernel_size")
    attrs = {"kernel_shape": kernel, "strides": ints(stride, rank, "stride") if stride else kernel,
             "pads": ints(padding, rank, "padding") * 2, "dilations": ints(dilation, rank, "dilation"),
             "ceil_mode": int(bool(ceil))}
    ctx.result(node, "MaxPool", [ctx.tensor(node.inputs[0])], attrs)


def avg_pool(ctx: Context, node: TorchNode) -> None:
    """avg_pool1d / 2d: (x, kernel, stride, padding, ceil_mode, count_include_pad[, divisor_override])."""
    kernel, stride, padding, ceil, include = (ctx.static(k, "a pooling parameter") for k in node.inputs[1:6])
    if len(node.inputs) > 6 and ctx.static(node.inputs[6], "divisor_override") is not None:
        raise RknnError("avg_pool2d with divisor_override is not supported")
    rank = ctx.rank(node.inputs[0]) - 2
    kernel = ints(kernel, rank, "kernel_size")
    attrs = {"kernel_shape": kernel, "strides": ints(stride, rank, "stride") if stride else kernel,
             "pads": ints(padding, rank, "padding") * 2, "ceil_mode": int(bool(ceil)),
             "count_include_pad": int(bool(include))}
    ctx.result(node, "AveragePool", [ctx.tensor(node.inputs[0])], attrs)


def _bins(size: int, out: int) -> np.ndarray:
    """The (out, size) averaging matrix of torch's adaptive pooling bins along one axis."""
    matrix = np.zeros((out, size), np.float32)
    for i in range(out):
        start, end = (i * size) // out, math.ceil((i + 1) * size / out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def adaptive_avg_pool(ctx: Context, node: TorchNode) -> None:
    """Global pooling for a 1x1 output, a plain average pool when the sizes divide, else two averaging
    matrix products (torch's overlapping bins)."""
    x = node.inputs[0]
    shape = ctx.shape(x)
    rank = len(shape) - 2
    out = [shape[2 + i] if s is None else int(s)
           for i, s in enumerate(_ints_or_none(ctx.static(node.inputs[1], "output_size"), rank))]
    in_size = list(shape[2:])
    if out == [1] * rank:
        return ctx.result(node, "GlobalAveragePool", [ctx.tensor(x)])
    if out == in_size:
        return ctx.same(node, x)
    if all(i % o == 0 for i, o in zip(in_size, out)):
        kernel = [i // o for i, o in zip(in_size, out)]
        return ctx.result(node, "AveragePool", [ctx.tensor(x)], {"kernel_shape": kernel, "strides": kernel})
    if rank != 2:
        raise RknnError(f"adaptive average pooling from {in_size} to {out} is supported in 2-D only")
    rows = ctx.add_const("rows", _bins(in_size[0], out[0]))
    cols = ctx.add_const("cols", np.ascontiguousarray(_bins(in_size[1], out[1]).T))
    ctx.result(node, "MatMul", [rows, ctx.emit("MatMul", [ctx.tensor(x), cols])[0]])


def _ints_or_none(value, count: int) -> list:
    """A per-axis list whose entries may be None (keep that size); one entry applies to every axis."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    return values * count if len(values) == 1 else values


def _resize(ctx: Context, node: TorchNode, sizes, scales, mode: str, coord: str, nearest: str = "floor") -> None:
    x = node.inputs[0]
    shape = ctx.shape(x)
    rank = len(shape) - 2
    attrs = {"mode": mode, "coordinate_transformation_mode": coord}
    if mode == "nearest":
        attrs["nearest_mode"] = nearest
    if sizes is not None:
        target = [*shape[:2], *ints(sizes, rank, "output_size")]
        ctx.result(node, "Resize", [ctx.tensor(x), "", "", ctx.add_const("sizes", np.asarray(target, np.int64))],
                   attrs)
    elif scales is not None and None not in scales:
        factors = [1.0, 1.0, *(float(s) for s in _ints_or_none(scales, rank))]
        ctx.result(node, "Resize", [ctx.tensor(x), "", ctx.add_const("scales", np.asarray(factors, np.float32))],
                   attrs)
    else:
        raise RknnError("upsampling needs an output size or scale factors")


def _size_and_scales(ctx: Context, node: TorchNode, first_scale: int):
    """(output_size, scales) of the default overload (x, size, [align_corners,] scale_h, scale_w) and of .vec
    (x, size?, [align_corners,] scale_factors?)."""
    sizes = ctx.static(node.inputs[1], "output_size")
    if node.overload == "vec":
        return sizes, ctx.static(node.inputs[-1], "scale_factors")
    given = [ctx.static(k, "a scale") for k in node.inputs[first_scale:]]
    return (sizes if sizes else None), (given if given and None not in given else None)


def upsample_nearest(ctx: Context, node: TorchNode) -> None:
    sizes, scales = _size_and_scales(ctx, node, 2)
    if node.kind.startswith("aten::_upsample_nearest_exact"):
        return _resize(ctx, node, sizes, scales, "nearest", "half_pixel", "round_prefer_ceil")
    _resize(ctx, node, sizes, scales, "nearest", "asymmetric")


def upsample_linear(ctx: Context, node: TorchNode) -> None:
    align = bool(ctx.static(node.inputs[2], "align_corners"))
    sizes, scales = _size_and_scales(ctx, node, 3)
    if align:  # torch's align_corners scale comes from the sizes, never from the factors
        scales, sizes = None, sizes or [int(math.floor(d * float(s))) for d, s in
                                        zip(ctx.shape(node.inputs[0])[2:], _ints_or_none(scales, ctx.rank(node.inputs[0]) - 2))]
    _resize(ctx, node, sizes, scales, "linear", "align_corners" if align else "half_pixel")


def pixel_shuffle(ctx: Context, node: TorchNode) -> None:
    factor = int(ctx.static(node.inputs[1], "upscale_factor"))
    ctx.result(node, "DepthToSpace", [ctx.tensor(node.inputs[0])], {"blocksize": factor, "mode": "CRD"})


CONVERTERS = {
    "aten::_convolution": convolution, "aten::convolution": convolution,
    "aten::conv1d": conv, "aten::conv2d": conv, "aten::conv3d": conv, "aten::_convolution_mode": conv,
    "aten::conv_transpose1d": conv_transpose, "aten::conv_transpose2d": conv_transpose,
    "aten::linear": linear, "aten::addmm": addmm, "aten::matmul": matmul, "aten::mm": matmul, "aten::bmm": matmul,
    "aten::batch_norm": batch_norm,
    "aten::max_pool1d": max_pool, "aten::max_pool2d": max_pool, "aten::avg_pool1d": avg_pool,
    "aten::avg_pool2d": avg_pool, "aten::adaptive_avg_pool1d": adaptive_avg_pool,
    "aten::adaptive_avg_pool2d": adaptive_avg_pool,
    "aten::upsample_nearest1d": upsample_nearest, "aten::upsample_nearest2d": upsample_nearest,
    "aten::_upsample_nearest_exact2d": upsample_nearest,
    "aten::upsample_linear1d": upsample_linear, "aten::upsample_bilinear2d": upsample_linear,
    "aten::pixel_shuffle": pixel_shuffle,
}
