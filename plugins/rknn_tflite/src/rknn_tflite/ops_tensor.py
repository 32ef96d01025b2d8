"""Converters for elementwise, activation, reduction, data-movement and (de)quantization TFLite ops."""

from __future__ import annotations

import numpy as np

from rknn_core.errors import RknnError
from rknn_tflite.context import Ctx, grid, one_grid, real_value
from rknn_tflite.fixed_point import STORAGE
from rknn_tflite.integer_mean import variant
from rknn_tflite.reader import TfOp

I64 = np.int64
BIG = np.iinfo(np.int64).max


def _binary(ir_op: str):
    def convert(ctx: Ctx, op: TfOp) -> None:
        opt = op.options
        fused = opt.FusedActivationFunction() if opt is not None and hasattr(opt, "FusedActivationFunction") else 0
        ctx.finish(fused, lambda dst: ctx.emit(ir_op, [ctx.name(0), ctx.name(1)], [dst]))
    return convert


def _integer_binary(ir_op: str, integer_op: str):
    """ADD / MUL; between 8-bit tensors of one type with LiteRT's integer arithmetic (``integer_op``)."""
    float_convert = _binary(ir_op)

    def convert(ctx: Ctx, op: TfOp) -> None:
        opt = op.options
        a, b, y = ctx.inp(0), ctx.inp(1), ctx.out(0)
        if not one_grid(a, b, y):
            float_convert(ctx, op)
            return
        quant = {"dtype": y.dtype, **grid(a, "a"), **grid(b, "b"), **grid(y, "out")}
        ctx.finish(opt.FusedActivationFunction() if opt is not None else 0,
                   lambda dst: ctx.emit(integer_op, [ctx.name(0), ctx.name(1)], [dst], **quant))
    return convert


def hard_swish(ctx: Ctx, op: TfOp) -> None:
    """HARD_SWISH; between 8-bit tensors with LiteRT's fixed-point arithmetic (TFLiteQuantizedHardSwish)."""
    x, y = ctx.inp(0), ctx.out(0)
    if not one_grid(x, y):
        ctx.emit("HardSwish", [ctx.name(0)], [ctx.output(0)])
        return
    ctx.emit("TFLiteQuantizedHardSwish", [ctx.name(0)], [ctx.output(0)], dtype=x.dtype, **grid(x, "in"),
             **grid(y, "out"))


def _unary(ir_op: str, **attrs):
    def convert(ctx: Ctx, op: TfOp) -> None:
        ctx.emit(ir_op, [ctx.name(0)], [ctx.output(0)], **attrs)
    return convert


def _clip(lo: float, hi: float):
    def convert(ctx: Ctx, op: TfOp) -> None:
        ctx.emit("Clip", [ctx.name(0), ctx.const("clip_min", np.float32(lo)), ctx.const("clip_max", np.float32(hi))],
                 [ctx.output(0)])
    return convert


def leaky_relu(ctx: Ctx, op: TfOp) -> None:
    opt = op.options
    ctx.emit("LeakyRelu", [ctx.name(0)], [ctx.output(0)], alpha=float(opt.Alpha()))


def softmax(ctx: Ctx, op: TfOp) -> None:
    opt = op.options
    x, beta = ctx.name(0), float(opt.Beta()) if opt is not None else 1.0
    if beta != 1.0:
        x = ctx.emit("Mul", [x, ctx.const("softmax_beta", np.float32(beta))])
    ctx.emit("Softmax", [x], [ctx.output(0)], axis=-1)


def rsqrt(ctx: Ctx, op: TfOp) -> None:
    ctx.emit("Reciprocal", [ctx.emit("Sqrt", [ctx.name(0)])], [ctx.output(0)])


def squared_difference(ctx: Ctx, op: TfOp) -> None:
    d = ctx.emit("Sub", [ctx.name(0), ctx.name(1)])
    ctx.emit("Mul", [d, d], [ctx.output(0)])


def mean(ctx: Ctx, op: TfOp) -> None:
    """MEAN; between integer tensors with the LiteRT kernel's rounding (TFLiteIntegerMean)."""
    opt = op.options
    x, y = ctx.inp(0), ctx.out(0)
    if not one_grid(x, y, dtypes=tuple(STORAGE)):
        _reduce("ReduceMean")(ctx, op)
        return
    axes = [int(a) for a in ctx.require(1, "axes").reshape(-1)]
    keep = bool(opt.KeepDims()) if opt else False
    ctx.emit("TFLiteIntegerMean", [ctx.name(0)], [ctx.output(0)], axes=axes, keepdims=int(keep), dtype=x.dtype,
             **grid(x, "in"), **grid(y, "out"), variant=variant(x.dtype, len(x.shape), axes, keep))


def _reduce(ir_op: str):
    def convert(ctx: Ctx, op: TfOp) -> None:
        opt = op.options
        axes = ctx.const("axes", ctx.require(1, "axes").astype(I64).reshape(-1))
        ctx.emit(ir_op, [ctx.name(0), axes], [ctx.output(0)], keepdims=int(bool(opt.KeepDims())) if opt else 0)
    return convert


def reshape(ctx: Ctx, op: TfOp) -> None:
    """RESHAPE / SQUEEZE / EXPAND_DIMS: the output's static shape written out."""
    shape = ctx.const("shape", np.array(ctx.out(0).shape, I64))
    ctx.emit("Reshape", [ctx.name(0), shape], [ctx.output(0)])


def concatenation(ctx: Ctx, op: TfOp) -> None:
    """The TFLite kernels ignore a fused activation on CONCATENATION; so does the import."""
    opt = op.options
    names = [ctx.ref(i) for i in ctx.op.inputs]
    ctx.emit("Concat", names, [ctx.output(0)], axis=int(opt.Axis()))


def _split_by_outputs(ctx: Ctx, x: str, axis: int) -> None:
    rank = len(ctx.tensor(ctx.op.outputs[0]).shape)
    axis = axis % rank
    sizes = [ctx.tensor(o).shape[axis] for o in ctx.op.outputs]
    outs = [ctx.output(k) for k in range(len(ctx.op.outputs))]
    ctx.emit("Split", [x, ctx.const("split", np.array(sizes, I64))], outs, axis=axis)


def split(ctx: Ctx, op: TfOp) -> None:
    _split_by_outputs(ctx, ctx.name(1), int(ctx.require(0, "axis").reshape(-1)[0]))


def split_v(ctx: Ctx, op: TfOp) -> None:
    _split_by_outputs(ctx, ctx.name(0), int(ctx.require(2, "axis").reshape(-1)[0]))


def unpack(ctx: Ctx, op: TfOp) -> None:
    opt = op.options
    axis = int(opt.Axis()) % len(ctx.inp(0).shape)
    parts = [ctx.tmp(f"unpack_{k}") for k in range(len(ctx.op.outputs))]
    ctx.emit("Split", [ctx.name(0), ctx.const("split", np.ones(len(parts), I64))], parts, axis=axis)
    for k, part in enumerate(parts):
        ctx.emit("Reshape", [part, ctx.const("shape", np.array(ctx.out(k).shape, I64))], [ctx.output(k)])


def pack(ctx: Ctx, op: TfOp) -> None:
    opt = op.options
    axis = int(opt.Axis())
    parts = [ctx.tensor(i) for i in ctx.op.inputs]
    if all(p.data is not None and p.quant is None for p in parts):  # shape arithmetic: fold
        _fold(ctx, np.stack([p.data for p in parts], axis=axis), None)
        return
    axes = ctx.const("axes", np.array([axis], I64))
    parts = [ctx.emit("Unsqueeze", [ctx.ref(i), axes]) for i in ctx.op.inputs]
    ctx.emit("Concat", parts, [ctx.output(0)], axis=axis)


def strided_slice(ctx: Ctx, op: TfOp) -> None:
    opt = op.options
    shape = ctx.inp(0).shape
    begin, end = ctx.require(1, "begin").astype(I64), ctx.require(2, "end").astype(I64)
    strides = ctx.value(3)
    strides = np.ones_like(begin) if strides is None else strides.astype(I64)
    if opt.EllipsisMask() or opt.NewAxisMask():
        raise RknnError("STRIDED_SLICE with ellipsis_mask or new_axis_mask is not supported")
    offset = bool(opt.Offset()) if hasattr(opt, "Offset") else False
    starts, ends = [], []
    for i, (b, e, s) in enumerate(zip(begin.tolist(), end.tolist(), strides.tolist())):
        if offset:
            e = b + e
        if opt.BeginMask() >> i & 1:
            b = 0 if s > 0 else BIG
        if opt.EndMask() >> i & 1:
            e = BIG if s > 0 else -BIG
        if opt.ShrinkAxisMask() >> i & 1:
            b = b + shape[i] if b < 0 else b
            e, s = b + 1, 1
        starts.append(b)
        ends.append(e)
    n = len(starts)
    src = ctx.inp(0)
    if src.data is not None and src.quant is None:  # shape arithmetic (SHAPE -> STRIDED_SLICE): fold
        data = src.data[tuple(slice(b, e, s) for b, e, s in zip(starts, ends, strides.tolist()))]
        _fold(ctx, np.array(data).reshape(ctx.out(0).shape), None)
        return
    y = ctx.emit("Slice", [ctx.name(0), ctx.const("starts", np.array(starts, I64)), ctx.const("ends", np.array(ends, I64)),
                           ctx.const("axes", np.arange(n, dtype=I64)), ctx.const("steps", strides)])
    ctx.emit("Reshape", [y, ctx.const("shape", np.array(ctx.out(0).shape, I64))], [ctx.output(0)])


def slice_(ctx: Ctx, op: TfOp) -> None:
    begin, size = ctx.require(1, "begin").astype(I64), ctx.require(2, "size").astype(I64)
    shape = np.array(ctx.inp(0).shape, I64)
    end = np.where(size < 0, shape, begin + size)
    ctx.emit("Slice", [ctx.name(0), ctx.const("starts", begin), ctx.const("ends", end)], [ctx.output(0)])


def pad(ctx: Ctx, op: TfOp) -> None:
    pads = ctx.require(1, "paddings").astype(I64).reshape(-1, 2)
    value = ctx.name(2) if ctx.inp(2) is not None else ""
    ctx.emit("Pad", [ctx.name(0), ctx.const("pads", np.concatenate([pads[:, 0], pads[:, 1]])), value],
             [ctx.output(0)], mode="constant")


def mirror_pad(ctx: Ctx, op: TfOp) -> None:
    opt = op.options
    if opt.Mode() != 0:
        raise RknnError("MIRROR_PAD mode SYMMETRIC is not supported (REFLECT is)")
    pads = ctx.require(1, "paddings").astype(I64).reshape(-1, 2)
    ctx.emit("Pad", [ctx.name(0), ctx.const("pads", np.concatenate([pads[:, 0], pads[:, 1]]))], [ctx.output(0)],
             mode="reflect")


def transpose(ctx: Ctx, op: TfOp) -> None:
    ctx.emit("Transpose", [ctx.name(0)], [ctx.output(0)], perm=[int(p) for p in ctx.require(1, "perm")])


def gather(ctx: Ctx, op: TfOp) -> None:
    opt = op.options
    if opt is not None and opt.BatchDims():
        raise RknnError("GATHER with batch_dims is not supported")
    ctx.emit("Gather", [ctx.name(0), ctx.name(1)], [ctx.output(0)], axis=int(opt.Axis()) if opt else 0)


def cast(ctx: Ctx, op: TfOp) -> None:
    out = ctx.out(0)
    dtype = "float32" if out.quant is not None else out.dtype
    ctx.emit("Cast", [ctx.name(0)], [ctx.output(0)], to=dtype)


def quantize(ctx: Ctx, op: TfOp) -> None:
    """Float -> integer grid (or requantization): the float graph snaps the value to the output grid."""
    q = ctx.out(0).quant
    if q is None:
        raise RknnError("QUANTIZE output has no quantization parameters")
    scale, zero = ctx.const("scale", np.float32(q.scale[0])), ctx.const("zero_point", _zero(q))
    stored = ctx.emit("QuantizeLinear", [ctx.name(0), scale, zero])
    ctx.emit("DequantizeLinear", [stored, scale, zero], [ctx.output(0)])


def dequantize(ctx: Ctx, op: TfOp) -> None:
    """Constants fold at import (float16 and int8 weights); a run-time value already is real here."""
    src = ctx.inp(0)
    if src.data is not None:
        _fold(ctx, real_value(src).astype(np.float32), src.quant)
        return
    ctx.emit("Identity", [ctx.name(0)], [ctx.output(0)])


def shape(ctx: Ctx, op: TfOp) -> None:
    """SHAPE of a statically shaped tensor is a constant (Keras' Flatten/Reshape chains fold with it)."""
    dtype = ctx.out(0).dtype if ctx.out(0).dtype in ("int32", "int64") else "int32"
    _fold(ctx, np.array(ctx.inp(0).shape, dtype=dtype), None)


def densify(ctx: Ctx, op: TfOp) -> None:
    """DENSIFY of a sparse constant (the reader already expanded it) is that constant."""
    src = ctx.inp(0)
    if src.data is None:
        raise RknnError("DENSIFY of a run-time tensor is not supported")
    _fold(ctx, src.data, src.quant)


def _fold(ctx: Ctx, data: np.ndarray, quant) -> None:
    """The op's output becomes a constant: later readers see the data (and its quantization)."""
    out = ctx.out(0)
    out.data, out.dtype = data, str(data.dtype)
    if out.quant is None and quant is not None and data.dtype.kind in "iu":
        out.quant = quant


def _zero(q) -> np.ndarray:
    dtype = {"u8": np.uint8, "i8": np.int8, "i16": np.int16, "i32": np.int32}[q.qtype]
    return np.array(q.zero_point[0], dtype=dtype)


CONVERTERS = {
    "ADD": _integer_binary("Add", "TFLiteQuantizedAdd"), "SUB": _binary("Sub"), "MUL": _integer_binary("Mul", "TFLiteQuantizedMul"), "DIV": _binary("Div"),
    "MAXIMUM": _binary("Max"), "MINIMUM": _binary("Min"), "POW": _binary("Pow"),
    "SQUARED_DIFFERENCE": squared_difference, "PRELU": _binary("PRelu"),
    "RELU": _unary("Relu"), "RELU6": _clip(0.0, 6.0), "RELU_N1_TO_1": _clip(-1.0, 1.0), "RELU_0_TO_1": _clip(0.0, 1.0),
    "LOGISTIC": _unary("Sigmoid"), "TANH": _unary("Tanh"), "HARD_SWISH": hard_swish,
    "EXP": _unary("Exp"), "SQRT": _unary("Sqrt"), "RSQRT": rsqrt, "NEG": _unary("Neg"), "ABS": _unary("Abs"),
    "LOG": _unary("Log"), "FLOOR": _unary("Floor"), "CEIL": _unary("Ceil"), "ELU": _unary("Elu"),
    "LEAKY_RELU": leaky_relu, "SOFTMAX": softmax,
    "MEAN": mean, "REDUCE_MAX": _reduce("ReduceMax"), "REDUCE_MIN": _reduce("ReduceMin"),
    "SUM": _reduce("ReduceSum"), "REDUCE_PROD": _reduce("ReduceProd"),
    "RESHAPE": reshape, "SQUEEZE": reshape, "EXPAND_DIMS": reshape,
    "CONCATENATION": concatenation, "SPLIT": split, "SPLIT_V": split_v, "PACK": pack, "UNPACK": unpack,
    "STRIDED_SLICE": strided_slice, "SLICE": slice_, "PAD": pad, "PADV2": pad, "MIRROR_PAD": mirror_pad,
    "TRANSPOSE": transpose, "GATHER": gather, "CAST": cast, "SHAPE": shape,
    "QUANTIZE": quantize, "DEQUANTIZE": dequantize, "DENSIFY": densify,
}
