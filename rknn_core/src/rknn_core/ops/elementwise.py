"""Elementwise arithmetic, activations and comparisons."""

from __future__ import annotations

import math

import attrs
import numpy as np
from attrs import evolve

from rknn_core.errors import RknnError
from rknn_core.ir import TensorInfo
from rknn_core.ops._common import binary, default_cost, memo_by_attrs, same_as_first, unary, variadic, with_values
from rknn_core.ops._quant import (
    binary_by_code,
    centered_int,
    code_lookup,
    lut_table,
    quantized_add,
    quantized_mul,
    quantized_prelu,
    requantize_channels,
    rescale,
)
from rknn_core.quant.fixedpoint import requantize
from rknn_core.quant.params import QTYPES, dequantize, quantize
from rknn_core.records import OpDef

_erf64 = np.vectorize(math.erf, otypes=[np.float64])


def erf(x: np.ndarray) -> np.ndarray:
    """Error function computed in float64 (numpy has none; the op is rare in vision models)."""
    return _erf64(np.asarray(x, dtype=np.float64))


def hard_sigmoid(x, alpha, beta):
    return np.clip(alpha * x + beta, 0, 1)


def hard_swish(x):
    return x * hard_sigmoid(x, 1 / 6, 0.5)


def _elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _selu(x, alpha, gamma):
    return gamma * np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _softplus(x):
    return np.logaddexp(0, x)


def _sigmoid(x):
    # split by sign so exp never overflows
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _clip_kernel(inputs, attrs):
    x = inputs[0]
    lo = inputs[1] if len(inputs) > 1 and inputs[1] is not None else None
    hi = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
    out = x
    if lo is not None:
        out = np.maximum(out, lo.astype(x.dtype))
    if hi is not None:
        out = np.minimum(out, hi.astype(x.dtype))
    return [np.array(out, dtype=x.dtype, copy=out is x)]


def _prelu_infer(inputs, attrs):
    from rknn_core.ops._common import broadcast

    return [TensorInfo(broadcast(inputs[0].shape, inputs[1].shape), inputs[0].dtype)]


def _prelu_kernel(inputs, attrs):
    x, slope = inputs
    return [np.where(x < 0, x * slope, x).astype(x.dtype, copy=False)]


def _where_infer(inputs, attrs):
    from rknn_core.ops._common import broadcast, promote

    c, a, b = inputs
    return [TensorInfo(broadcast(c.shape, a.shape, b.shape), promote(a.dtype, b.dtype))]


def _where_kernel(inputs, attrs):
    c, a, b = inputs
    return [np.where(c.astype(bool), a, b).astype(np.result_type(a, b), copy=False)]


def _copy(inputs, attrs):
    return [inputs[0].copy()]


def _pow(a, b):
    """a ** b; a float base raised to exactly 2 or 3 is the product x*x (x*x*x), as onnxruntime computes it
    (numpy's power differs from it in the last bit, and is far slower)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if not np.issubdtype(a.dtype, np.floating):
            return np.power(a, b)
        if np.size(b) == 1 and float(np.asarray(b).reshape(-1)[0]) in (2.0, 3.0):
            square = a * a
            return square if float(np.asarray(b).reshape(-1)[0]) == 2.0 else square * a
        return np.power(a, b.astype(a.dtype))


def _div(a, b):
    dtype = np.result_type(a, b)
    if np.issubdtype(dtype, np.integer):
        # C division truncates toward zero; stay in integers (float64 loses int64 precision)
        a, b = np.asarray(a, dtype), np.asarray(b, dtype)
        with np.errstate(divide="ignore"):
            q = np.floor_divide(a, b)
            q += ((np.remainder(a, b) != 0) & ((a < 0) != (b < 0))).astype(dtype)
        return q
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(a, b)


def _no_overflow_exp(x):
    with np.errstate(over="ignore"):
        return np.exp(x)


def _log(x):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x)


def _sqrt(x):
    with np.errstate(invalid="ignore"):
        return np.sqrt(x)


def _add_quant(inputs, in_q, out_q, attrs):
    a_q, b_q, o_q = in_q[0], in_q[1], out_q[0]
    return [binary_by_code(*inputs, a_q, b_q, o_q, lambda a, b: quantized_add(a, b, a_q, b_q, o_q), ("Add",))]


def _sub_quant(inputs, in_q, out_q, attrs):
    a_q, b_q, o_q = in_q[0], in_q[1], out_q[0]
    return [binary_by_code(*inputs, a_q, b_q, o_q, lambda a, b: quantized_add(a, b, a_q, b_q, o_q, sign=-1), ("Sub",))]


def _mul_quant(inputs, in_q, out_q, attrs):
    a_q, b_q, o_q = in_q[0], in_q[1], out_q[0]
    return [binary_by_code(*inputs, a_q, b_q, o_q, lambda a, b: quantized_mul(a, b, a_q, b_q, o_q), ("Mul",))]


DIV_LEFT_SHIFT = 15  # |centered 16-bit value| << 15 stays inside int32


def _div_quant(inputs, in_q, out_q, attrs):
    """a / b as a requantization of a by the multiplier a_scale / (b * out_scale), element by element
    (b is the real divisor: a float constant, as the input-scale step of preprocessing is); a large a by a
    small b through code tables of a (``binary_by_code``)."""
    a_q, b_q, o_q = in_q[0], in_q[1], out_q[0]
    return [binary_by_code(*inputs, a_q, b_q, o_q, lambda a, b: _divided(a, b, a_q, b_q, o_q), ("Div",),
                           either=False)]


def _divided(a, b, a_q, b_q, o_q) -> np.ndarray:
    """``_div_quant`` element by element."""
    real_b = dequantize(b, b_q) if b_q is not None else np.asarray(b, dtype=np.float64)
    if np.any(real_b == 0):
        raise RknnError("division by zero")
    acc = centered_int(a, a_q)  # int32 for 8-bit storage: |acc| << 15 stays below 2**23
    m = a_q.scale[0] / (real_b * o_q.scale[0])  # broadcast by the requantization: one plan per divisor
    # the small accumulators are first shifted left (as integer ADD does) so that the fixed-point
    # multiply rounds once, not twice; the multipliers are positive, the sign is applied apart
    magnitude = np.abs(acc)
    magnitude <<= DIV_LEFT_SHIFT
    out = _div_magnitude(magnitude, np.abs(m) / 2**DIV_LEFT_SHIFT, o_q.qtype)
    negative = acc < 0
    if np.any(m < 0):
        negative = negative != (m < 0)
    lo, hi, dtype = QTYPES[o_q.qtype]
    signed = out.astype(np.int32 if o_q.qtype in ("u8", "i8") else np.int64)  # 8-bit: |out| <= 2**15 - 1
    signed = np.where(negative, -signed, signed)  # (a masked np.negative takes four times as long)
    signed += o_q.zero_point[0]
    return np.clip(signed, lo, hi, out=signed).astype(dtype)


def _div_magnitude(acc: np.ndarray, m: np.ndarray, qtype: str) -> np.ndarray:
    """``requantize(acc, m, 0, "i32")`` for non-negative ``acc``, exact up to 32767 and at least 32767 beyond: all
    that an 8-bit output tells apart once the sign and zero point are applied and it is clipped. On the compiled
    kernel (``requantize_channels`` into 16-bit storage) when ``m`` is one value or one per index of a single
    axis of ``acc`` (a LayerNorm's divisor per token: numpy's int64 passes took 0.24 ms for 40 x 120 values)."""
    m = np.asarray(m, np.float64)
    spread = [d for d in range(m.ndim) if m.shape[d] != 1]
    axis = None if not spread else acc.ndim - m.ndim + spread[0]
    if qtype not in ("u8", "i8") or m.ndim > acc.ndim or len(spread) > 1 or (
            axis is not None and m.shape[spread[0]] != acc.shape[axis]):
        return requantize(acc, m, 0, "i32")
    return requantize_channels(acc, m, 0, "i16", bounds=(0, 2**15 - 1), axis=axis)


def _clip_quant(inputs, in_q, out_q, attrs):
    bounds = [(inputs[k], in_q[k]) if k < len(inputs) else (None, None) for k in (1, 2)]
    return [_clip_lookup(attrs, objects=(in_q[0], out_q[0], *bounds[0], *bounds[1]))(inputs[0])]


@memo_by_attrs
def _clip_lookup(attrs, x_q, o_q, low, low_q, high, high_q):
    """Clip of storage as one table per node (and bounds): the real bounds applied to every code's value."""
    bounds = [None if v is None else dequantize(v, q) if q is not None else v for v, q in ((low, low_q), (high, high_q))]
    return code_lookup(lut_table(lambda real: _clip_kernel([real, *bounds], attrs)[0], x_q, o_q), x_q.qtype)


def _prelu_quant(inputs, in_q, out_q, attrs):
    """Integer PRelu: centered x requantized by x_s/out_s where x >= 0, else x times the centered
    slope requantized by x_s*slope_s/out_s (two multipliers, as TFLite's PRELU)."""
    x_q, s_q, o_q = in_q[0], in_q[1], out_q[0]
    compiled = None if s_q is None else quantized_prelu(inputs[0], inputs[1], x_q, s_q, o_q)
    if compiled is not None:
        return [compiled]
    xc = centered_int(inputs[0], x_q)
    if s_q is None:  # an integer slope input: real values already
        sc, s_scale = np.asarray(inputs[1], np.int64), 1.0
    else:
        if s_q.axis is not None:
            raise RknnError("PRelu slope must be quantized per tensor")
        sc, s_scale = centered_int(inputs[1], s_q), s_q.scale[0]
    xc, sc = np.broadcast_arrays(xc, sc)
    pos = requantize_channels(xc, x_q.scale[0] / o_q.scale[0], o_q.zero_point[0], o_q.qtype)
    neg = requantize_channels(xc * sc, x_q.scale[0] * s_scale / o_q.scale[0], o_q.zero_point[0], o_q.qtype)
    return [np.where(xc < 0, neg, pos)]


def _extreme_quant(pick):
    """Max/Min of several inputs: each rescaled to the output's parameters, then compared (the
    storage order is the real order)."""
    def kernel(inputs, in_q, out_q, attrs):
        parts = [rescale(x, q, out_q[0]) for x, q in zip(inputs, in_q)]
        acc = parts[0]
        for part in parts[1:]:
            acc = pick(acc, part)
        shape = np.broadcast_shapes(*[np.shape(p) for p in parts])
        return [np.broadcast_to(acc, shape).copy()]
    return kernel


def _sum_quant(inputs, in_q, out_q, attrs):
    """Sum of several inputs as a chain of integer ADDs, each into the output's parameters."""
    acc, acc_q = inputs[0], in_q[0]
    if len(inputs) == 1:
        return [rescale(acc, acc_q, out_q[0])]
    for x, q in zip(inputs[1:], in_q[1:]):
        acc, acc_q = quantized_add(acc, x, acc_q, q, out_q[0]), out_q[0]
    return [acc]


def _where_quant(inputs, in_q, out_q, attrs):
    """Where with both branches rescaled to the output's parameters."""
    c = inputs[0]
    a, b = (rescale(v, q, out_q[0]) if q is not None else quantize(v, out_q[0]) for v, q in zip(inputs[1:], in_q[1:]))
    return _where_kernel([c, a, b], attrs)


OPS: list[OpDef] = [
    binary("Add", np.add, quant_kernel=_add_quant),
    binary("Sub", np.subtract, quant_kernel=_sub_quant),
    binary("Mul", np.multiply, quant_kernel=_mul_quant),
    attrs.evolve(binary("Div", _div, quant_kernel=_div_quant), quant_param_inputs=(1,)),
    binary("Pow", _pow, base_dtype=True, doc="Broadcasting power; the result has the base's dtype."),
    binary("Equal", np.equal, out_dtype="bool"),
    binary("Greater", np.greater, out_dtype="bool"),
    binary("Less", np.less, out_dtype="bool"),
    evolve(variadic("Sum", np.add), quant_kernel=_sum_quant),
    evolve(variadic("Max", np.maximum), quant_kernel=_extreme_quant(np.maximum)),
    evolve(variadic("Min", np.minimum), quant_kernel=_extreme_quant(np.minimum)),
    variadic("Mean", np.add, finish=lambda acc, n: acc / n),
    unary("Relu", lambda x: np.maximum(x, 0)),
    unary("LeakyRelu", lambda x, alpha: np.where(x < 0, x * alpha, x), alpha=0.01),
    unary("Sigmoid", _sigmoid),
    unary("Tanh", np.tanh),
    unary("HardSigmoid", hard_sigmoid, alpha=0.2, beta=0.5),
    unary("HardSwish", hard_swish),
    unary("Exp", _no_overflow_exp),
    unary("Log", _log),
    unary("Sqrt", _sqrt),
    unary("Neg", np.negative),
    unary("Abs", np.abs),
    unary("Reciprocal", lambda x: _div(np.ones_like(x), x)),
    unary("Floor", np.floor),
    unary("Ceil", np.ceil),
    unary("Erf", erf),
    unary("Elu", _elu, alpha=1.0),
    unary("Selu", _selu, alpha=1.67326319217681884765625, gamma=1.05070102214813232421875),
    unary("Softplus", _softplus),
    OpDef("Identity", with_values(same_as_first, _copy), _copy, default_cost, 1, 1,
          quant_same_scale=True, doc="A copy of the input."),
    OpDef("Clip", lambda i, a: [TensorInfo(i[0].shape, i[0].dtype)], _clip_kernel, default_cost, 1, 3,
          quant_kernel=_clip_quant, quant_param_inputs=(1, 2),
          doc="Clamp to [min, max]; min and max are optional inputs."),
    OpDef("PRelu", _prelu_infer, _prelu_kernel, default_cost, 2, 2, quant_kernel=_prelu_quant,
          doc="x if x >= 0 else slope * x."),
    OpDef("Where", _where_infer, _where_kernel, default_cost, 3, 3, quant_kernel=_where_quant,
          doc="Select a where condition, else b."),
]
