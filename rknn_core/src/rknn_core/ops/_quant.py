"""Shared pieces of the ops' integer kernels: real-domain offsets, activation bounds, LUTs, requant."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rknn_core.ir import QuantParams
from rknn_core.quant.fixedpoint import multiply, quantize_multiplier, requantize
from rknn_core.quant.params import QTYPES, _broadcast, dequantize, quantize

EXACT_FLOAT32 = 2**24  # integers below this add exactly in float32


def centered(v: np.ndarray, q: QuantParams, dtype=np.float64) -> np.ndarray:
    """Storage integers minus the zero point (per channel along ``q.axis``), as ``dtype``."""
    return np.asarray(v, dtype=dtype) - _broadcast(q.zero_point, q, np.ndim(v)).astype(dtype)


def exact_dtype(terms: int, x_q: QuantParams, w_q: QuantParams) -> type:
    """float32 when sums of ``terms`` products of centered values stay exact in it, else float64."""
    def span(q: QuantParams) -> int:
        lo, hi, _ = QTYPES[q.qtype]
        return max(max(abs(hi - z), abs(lo - z)) for z in q.zero_point)

    return np.float32 if terms * span(x_q) * span(w_q) < EXACT_FLOAT32 else np.float64


def activation_bounds(act: dict | None, q: QuantParams) -> tuple[int, int] | None:
    """A fused Relu/Clip as storage bounds of the output (None: no clamp beyond the type)."""
    if not act:
        return None
    lo, hi, _ = QTYPES[q.qtype]
    if act.get("op") == "Relu":
        return int(quantize(np.float64(0.0), q)), hi
    if act.get("op") == "Clip":
        low = lo if act.get("min") is None else int(quantize(np.float64(act["min"]), q))
        high = hi if act.get("max") is None else int(quantize(np.float64(act["max"]), q))
        return low, high
    return None


def requantize_accumulator(acc: np.ndarray, x_q: QuantParams, w_q: QuantParams, out_q: QuantParams,
                           channel_axis: int, bounds: tuple[int, int] | None = None) -> np.ndarray:
    """int accumulators of x*w products (+ int32 bias) to output storage: scale x_s*w_s/out_s."""
    w_scale = np.asarray(w_q.scale)
    if w_scale.size > 1:
        shape = [1] * acc.ndim
        shape[channel_axis] = w_scale.size
        w_scale = w_scale.reshape(shape)
    m = x_q.scale[0] * w_scale / out_q.scale[0]
    return requantize(acc, m, out_q.zero_point[0], out_q.qtype, bounds)


def to_int(acc: np.ndarray) -> np.ndarray:
    """Exact integer-valued float accumulators to int64."""
    return np.rint(acc).astype(np.int64)


def lut_kernel(fn: Callable[[np.ndarray], np.ndarray]) -> Callable:
    """An elementwise op on 8/16-bit storage as a lookup table over every input code (as the NPU's
    activation unit does): table[q] = quantize(fn(dequantize(q)))."""

    def kernel(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
        x, xq, oq = inputs[0], in_q[0], out_q[0]
        lo, hi, _ = QTYPES[xq.qtype]
        codes = np.arange(lo, hi + 1, dtype=np.int64)
        real = dequantize(codes.astype(QTYPES[xq.qtype][2]), xq)
        table = quantize(np.asarray(fn(real), dtype=np.float64), oq)
        return [table[np.asarray(x, dtype=np.int64) - lo]]

    return kernel


def rescale(v: np.ndarray, src: QuantParams, dst: QuantParams) -> np.ndarray:
    """Storage integers of ``src`` re-expressed in ``dst`` (same real value, fixed point)."""
    if src.scale == dst.scale and src.zero_point == dst.zero_point:
        return np.asarray(v)
    acc = centered(v, src, np.float64).astype(np.int64)
    return requantize(acc, src.scale[0] / dst.scale[0], dst.zero_point[0], dst.qtype)


ADD_LEFT_SHIFT = {"u8": 20, "i8": 20, "i16": 15}


def quantized_add(a: np.ndarray, b: np.ndarray, a_q: QuantParams, b_q: QuantParams, out_q: QuantParams,
                  sign: int = 1) -> np.ndarray:
    """a + sign * b with TFLite's integer ADD: both sides scaled to a common fixed-point grid."""
    shift = ADD_LEFT_SHIFT[out_q.qtype]
    twice_max = 2 * max(a_q.scale[0], b_q.scale[0])
    terms = []
    for v, q in ((a, a_q), (b, b_q)):
        mult, sh = quantize_multiplier(q.scale[0] / twice_max)
        terms.append(multiply(centered(v, q).astype(np.int64) << shift, mult, sh))
    total = terms[0] + sign * terms[1]
    return requantize(total, twice_max / ((1 << shift) * out_q.scale[0]), out_q.zero_point[0], out_q.qtype)
