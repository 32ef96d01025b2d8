"""Converters for the spatial TFLite ops: convolutions, pools, fully connected, resize, depth/space.

TFLite tensors stay NHWC in the IR; the NCHW core ops (Conv, pools, DepthToSpace) are wrapped in
Transposes, which the core's eliminate_transposes pass cancels between neighbours.
"""

from __future__ import annotations

import numpy as np
import tflite

from rknn_core.errors import RknnError
from rknn_tflite.context import EIGHT_BIT, TO_NHWC, Ctx, grid, one_grid, permute_quant
from rknn_tflite.reader import TfOp


def same_pads(size: int, kernel: int, stride: int, dilation: int, padding: int) -> tuple[int, int]:
    """TFLite SAME/VALID padding of one axis as explicit (begin, end)."""
    if padding != tflite.Padding.SAME:
        return 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _spatial(ctx: Ctx, kernel: tuple[int, int], strides: tuple[int, int], dil: tuple[int, int], padding: int) -> dict:
    _, h, w, _ = ctx.inp(0).shape
    ph = same_pads(h, kernel[0], strides[0], dil[0], padding)
    pw = same_pads(w, kernel[1], strides[1], dil[1], padding)
    return {"strides": list(strides), "pads": [ph[0], pw[0], ph[1], pw[1]], "dilations": list(dil)}


def _nchw_op(ctx: Ctx, op: str, inputs: list[str], fused: int, **attrs) -> None:
    """NHWC input 0 -> Transpose -> ``op`` (NCHW) -> Transpose -> fused activation -> output."""
    x = ctx.nchw(ctx.name(0))

    def core(dst: str) -> None:
        y = ctx.emit(op, [x, *inputs], **attrs)
        ctx.emit("Transpose", [y], [dst], perm=TO_NHWC)

    ctx.finish(fused, core)


def _integer_product(ctx: Ctx) -> dict | None:
    """The quantization attrs of a TFLite*Quantized* op when input, weights, bias and output are integer
    tensors of the same 8-bit storage type (per-tensor activations); else None (float emulation)."""
    x, w, y = ctx.inp(0), ctx.inp(1), ctx.out(0)
    b = ctx.inp(2)
    if not one_grid(x, y):
        return None
    if w.data is None or w.quant is None or w.dtype not in EIGHT_BIT or len(set(w.quant.zero_point)) != 1:
        return None
    if b is not None and (b.data is None or b.dtype != "int32"):
        return None
    return {"dtype": x.dtype, **grid(x, "x"), "w_scales": [float(s) for s in w.quant.scale],
            "w_zero": int(w.quant.zero_point[0]), **grid(y, "out")}


def _stored(ctx: Ctx, k: int, perm: list[int] | None) -> str:
    """Constant input k as its stored integers (transposed by ``perm``), with its QuantParams."""
    t = ctx.inp(k)
    data = t.data if perm is None else np.ascontiguousarray(t.data.transpose(perm))
    return ctx.const(f"{ctx.names[t.index]}_stored", data, permute_quant(t.quant, perm))


def _conv(ctx: Ctx, opt, perm: list[int], **attrs) -> None:
    """CONV_2D / DEPTHWISE_CONV_2D as an NCHW Conv, or TFLiteQuantizedConv between integer tensors."""
    quant = _integer_product(ctx)
    if quant is None:
        inputs = [ctx.weight(1, perm), ctx.name(2)]
        _nchw_op(ctx, "Conv", inputs, opt.FusedActivationFunction(), **attrs)
        return
    inputs = [_stored(ctx, 1, perm)] + ([_stored(ctx, 2, None)] if ctx.inp(2) is not None else [])
    _nchw_op(ctx, "TFLiteQuantizedConv", inputs, opt.FusedActivationFunction(), **attrs, **quant)


def conv_2d(ctx: Ctx, op: TfOp) -> None:
    opt = op.options
    w = ctx.inp(1)
    kh, kw, cin = w.shape[1], w.shape[2], w.shape[3]
    groups = ctx.inp(0).shape[3] // cin
    attrs = _spatial(ctx, (kh, kw), (opt.StrideH(), opt.StrideW()), (opt.DilationHFactor(), opt.DilationWFactor()),
                     opt.Padding())
    _conv(ctx, opt, [0, 3, 1, 2], kernel_shape=[kh, kw], group=groups, **attrs)


def depthwise_conv_2d(ctx: Ctx, op: TfOp) -> None:
    opt = op.options
    w = ctx.inp(1)
    kh, kw = w.shape[1], w.shape[2]
    channels = ctx.inp(0).shape[3]
    if w.shape[3] != channels * max(opt.DepthMultiplier(), 1) and w.shape[3] % channels:
        raise RknnError(f"depthwise weight {w.shape} does not fit {channels} input channels")
    attrs = _spatial(ctx, (kh, kw), (opt.StrideH(), opt.StrideW()), (opt.DilationHFactor(), opt.DilationWFactor()),
                     opt.Padding())
    _conv(ctx, opt, [3, 0, 1, 2], kernel_shape=[kh, kw], group=channels, **attrs)


def transpose_conv(ctx: Ctx, op: TfOp) -> None:
    opt = op.options
    w, x, out = ctx.inp(1), ctx.tensor(ctx.op.inputs[2]), ctx.out(0)
    kh, kw = w.shape[1], w.shape[2]
    strides = [opt.StrideH(), opt.StrideW()]
    pads, extra = [0, 0, 0, 0], [0, 0]
    for axis in range(2):
        total = (x.shape[1 + axis] - 1) * strides[axis] + (kh, kw)[axis] - out.shape[1 + axis]
        if total >= 0:
            pads[axis], pads[axis + 2] = total // 2, total - total // 2
        else:
            extra[axis] = -total
    fused = opt.FusedActivationFunction() if hasattr(opt, "FusedActivationFunction") else 0
    xt = ctx.nchw(ctx.ref(x.index))

    def core(dst: str) -> None:
        y = ctx.emit("ConvTranspose", [xt, ctx.weight(1, [3, 0, 1, 2]), ctx.name(3)], kernel_shape=[kh, kw],
                     strides=strides, pads=pads, output_padding=extra)
        ctx.emit("Transpose", [y], [dst], perm=TO_NHWC)

    ctx.finish(fused, core)


def fully_connected(ctx: Ctx, op: TfOp) -> None:
    opt = op.options
    w = ctx.inp(1)
    units, depth = w.shape
    x = ctx.emit("Reshape", [ctx.name(0), ctx.const("fc_shape", np.array([-1, depth], np.int64))])
    quant = _integer_product(ctx)
    if quant is None:
        op, inputs = "Gemm", [x, ctx.weight(1, None) if w.data is not None else ctx.name(1), ctx.name(2)]
    else:
        op, inputs = "TFLiteQuantizedFullyConnected", [x, _stored(ctx, 1, None)]
        inputs += [_stored(ctx, 2, None)] if ctx.inp(2) is not None else []
    out = ctx.out(0)

    def core(dst: str) -> None:
        if len(out.shape) == 2:
            ctx.emit(op, inputs, [dst], transB=1, **(quant or {}))
        else:
            y = ctx.emit(op, inputs, transB=1, **(quant or {}))
            ctx.emit("Reshape", [y, ctx.const("fc_out_shape", np.array(out.shape, np.int64))], [dst])

    ctx.finish(opt.FusedActivationFunction(), core)


def _pool(ir_op: str):
    def convert(ctx: Ctx, op: TfOp) -> None:
        opt = op.options
        k = (opt.FilterHeight(), opt.FilterWidth())
        attrs = _spatial(ctx, k, (opt.StrideH(), opt.StrideW()), (1, 1), opt.Padding())
        attrs.pop("dilations")
        extra = {"count_include_pad": 0} if ir_op == "AveragePool" else {}
        x, y = ctx.inp(0), ctx.out(0)
        name = ir_op
        if ir_op == "AveragePool" and one_grid(x, y) and x.quant.scale == y.quant.scale \
                and x.quant.zero_point == y.quant.zero_point:
            name = "TFLiteQuantizedAveragePool"
            extra.update(dtype=x.dtype, **grid(x, "in"))
        _nchw_op(ctx, name, [], opt.FusedActivationFunction(), kernel_shape=list(k), **attrs, **extra)
    return convert


def _resize(mode: str):
    def convert(ctx: Ctx, op: TfOp) -> None:
        opt = op.options
        n, _, _, c = ctx.inp(0).shape
        h, w = (int(v) for v in ctx.require(1, "size"))
        align, half = bool(opt and opt.AlignCorners()), bool(opt and opt.HalfPixelCenters())
        if mode == "linear":
            coord, nearest = ("align_corners" if align else "half_pixel" if half else "asymmetric"), "floor"
        else:
            coord = "align_corners" if align else "tf_half_pixel_for_nearest" if half else "asymmetric"
            nearest = "round_prefer_ceil" if align else "floor"
        sizes = ctx.const("resize_sizes", np.array([n, h, w, c], np.int64))
        ctx.emit("Resize", [ctx.name(0), "", "", sizes], [ctx.output(0)], mode=mode,
                 coordinate_transformation_mode=coord, nearest_mode=nearest)
    return convert


def _space(ir_op: str):
    def convert(ctx: Ctx, op: TfOp) -> None:
        opt = op.options
        _nchw_op(ctx, ir_op, [], 0, blocksize=int(opt.BlockSize()), **({"mode": "DCR"} if ir_op == "DepthToSpace" else {}))
    return convert


def space_to_batch_nd(ctx: Ctx, op: TfOp) -> None:
    """NHWC SpaceToBatchND as Pad + Reshape + Transpose + Reshape (static shapes)."""
    n, h, w, c = ctx.inp(0).shape
    (bh, bw), pads = ctx.require(1, "block_shape").tolist(), ctx.require(2, "paddings").reshape(2, 2)
    p = ctx.emit("Pad", [ctx.name(0), ctx.const("pads", np.array([0, pads[0, 0], pads[1, 0], 0,
                                                                   0, pads[0, 1], pads[1, 1], 0], np.int64))])
    hp, wp = h + pads[0].sum(), w + pads[1].sum()
    r = ctx.emit("Reshape", [p, ctx.const("s2b_shape", np.array([n, hp // bh, bh, wp // bw, bw, c], np.int64))])
    t = ctx.emit("Transpose", [r], perm=[2, 4, 0, 1, 3, 5])
    ctx.emit("Reshape", [t, ctx.const("s2b_out", np.array(ctx.out(0).shape, np.int64))], [ctx.output(0)])


def batch_to_space_nd(ctx: Ctx, op: TfOp) -> None:
    """NHWC BatchToSpaceND as Reshape + Transpose + Reshape + Slice (crops)."""
    n, h, w, c = ctx.inp(0).shape
    (bh, bw), crops = ctx.require(1, "block_shape").tolist(), ctx.require(2, "crops").reshape(2, 2)
    r = ctx.emit("Reshape", [ctx.name(0), ctx.const("b2s_shape", np.array([bh, bw, n // (bh * bw), h, w, c], np.int64))])
    t = ctx.emit("Transpose", [r], perm=[2, 3, 0, 4, 1, 5])
    full = ctx.emit("Reshape", [t, ctx.const("b2s_full", np.array([n // (bh * bw), h * bh, w * bw, c], np.int64))])
    starts = np.array([crops[0, 0], crops[1, 0]], np.int64)
    ends = np.array([h * bh - crops[0, 1], w * bw - crops[1, 1]], np.int64)
    ctx.emit("Slice", [full, ctx.const("b2s_starts", starts), ctx.const("b2s_ends", ends),
                       ctx.const("b2s_axes", np.array([1, 2], np.int64))], [ctx.output(0)])


CONVERTERS = {
    "CONV_2D": conv_2d, "DEPTHWISE_CONV_2D": depthwise_conv_2d, "TRANSPOSE_CONV": transpose_conv,
    "FULLY_CONNECTED": fully_connected, "AVERAGE_POOL_2D": _pool("AveragePool"), "MAX_POOL_2D": _pool("MaxPool"),
    "RESIZE_BILINEAR": _resize("linear"), "RESIZE_NEAREST_NEIGHBOR": _resize("nearest"),
    "DEPTH_TO_SPACE": _space("DepthToSpace"), "SPACE_TO_DEPTH": _space("SpaceToDepth"),
    "SPACE_TO_BATCH_ND": space_to_batch_nd, "BATCH_TO_SPACE_ND": batch_to_space_nd,
}
