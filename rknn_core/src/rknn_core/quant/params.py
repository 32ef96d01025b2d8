"""Quantized types, the three schemes of ``config(quantized_dtype=...)``, quantize/dequantize."""

from __future__ import annotations

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import QuantParams
from rknn_core.kernels_backend import native as _native

# qtype -> (lowest, highest, storage dtype)
QTYPES = {
    "u8": (0, 255, np.uint8),
    "i8": (-128, 127, np.int8),
    "i16": (-32768, 32767, np.int16),
    "i32": (-(2**31), 2**31 - 1, np.int32),
}
# config quantized_dtype -> (scheme, qtype of activations and weights)
SCHEMES = {
    "asymmetric_quantized-u8": ("asymmetric_affine", "u8"),
    "dynamic_fixed_point-8": ("dynamic_fixed_point", "i8"),
    "dynamic_fixed_point-16": ("dynamic_fixed_point", "i16"),
}


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to nearest, ties away from zero (as the hardware and TFLite do)."""
    return np.where(x >= 0, np.floor(x + 0.5), np.ceil(x - 0.5))


def _broadcast(values: tuple, q: QuantParams, ndim: int) -> np.ndarray:
    arr = np.asarray(values)
    if q.axis is None or arr.size == 1:
        return arr.reshape(())
    shape = [1] * ndim
    shape[q.axis % ndim] = arr.size
    return arr.reshape(shape)


# the array kinds the compiled kernels (rknn_core._native) take: storage types and accumulators
STORAGE_KINDS = {"u8": "B", "i8": "b", "i16": "h"}
ARRAY_KINDS = {np.dtype(np.float32): "f", np.dtype(np.float64): "d", np.dtype(np.int32): "i", np.dtype(np.int64): "q"}


def memory_order(x: np.ndarray) -> tuple[int, ...]:
    """The axes of ``x`` from the largest stride to the smallest: ``x.transpose(order)`` of a transposed view
    of a C-contiguous array is that array (identity for a C-contiguous ``x``)."""
    return tuple(sorted(range(x.ndim), key=lambda axis: -abs(x.strides[axis])))


def quantize(x: np.ndarray, q: QuantParams) -> np.ndarray:
    """Real values to the storage integers of ``q`` (rounded, ties away from zero; saturated)."""
    lo, hi, dtype = QTYPES[q.qtype]
    x = np.asarray(x)
    if x.dtype.kind == "f" and x.dtype in ARRAY_KINDS and q.qtype in STORAGE_KINDS and len(q.scale) == 1 and x.size:
        order = memory_order(x)  # elementwise: quantize a transposed view (NHWC fed to NCHW) in its memory order
        source = x.transpose(order)
        out = np.empty(source.shape, dtype=dtype)
        _native.quantize(np.ascontiguousarray(source), ARRAY_KINDS[x.dtype], float(q.scale[0]), int(q.zero_point[0]),
                         out, STORAGE_KINDS[q.qtype], lo, hi)
        return out.transpose(np.argsort(order))
    x = np.asarray(x, dtype=np.float64)
    scale = _broadcast(q.scale, q, x.ndim)
    zero = _broadcast(q.zero_point, q, x.ndim)
    return np.clip(round_half_away(x / scale) + zero, lo, hi).astype(dtype)


def stored_codes(value: np.ndarray, q: QuantParams) -> np.ndarray:
    """``value`` as storage integers of ``q``: integer data are the codes they hold, real values are quantized."""
    value = np.asarray(value)
    return value if value.dtype.kind in "iu" else quantize(value, q)


def dequantize(v: np.ndarray, q: QuantParams) -> np.ndarray:
    """Storage integers of ``q`` to float32 real values."""
    scale = _broadcast(q.scale, q, np.ndim(v))
    zero = _broadcast(q.zero_point, q, np.ndim(v))
    return ((np.asarray(v, dtype=np.int64) - zero) * scale).astype(np.float32)


def params_from_range(lo: float, hi: float, quantized_dtype: str, method: str = "layer") -> QuantParams:
    """Parameters covering [lo, hi] (widened to include 0) in the scheme of ``quantized_dtype``."""
    if quantized_dtype not in SCHEMES:
        raise RknnError(f"unknown quantized_dtype '{quantized_dtype}'")
    scheme, qtype = SCHEMES[quantized_dtype]
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise RknnError(f"cannot quantize a tensor whose range [{lo}, {hi}] is not finite")
    qmin, qmax, _ = QTYPES[qtype]
    if scheme == "asymmetric_affine":
        if hi == lo:
            hi = lo + 1.0  # a constant-zero tensor: any scale represents it exactly
        scale = (hi - lo) / (qmax - qmin)
        zero = int(np.clip(round_half_away(np.float64(qmin - lo / scale)), qmin, qmax))
        return QuantParams(qtype, scale, zero, scheme=scheme, min_value=lo, max_value=hi, method=method)
    return QuantParams(qtype, 2.0 ** -fraction_length(max(abs(lo), abs(hi)), qmax), 0, scheme=scheme,
                       min_value=lo, max_value=hi, method=method)


def fraction_length(magnitude: float, qmax: int) -> int:
    """Dynamic fixed point: the fractional bits that fit ``magnitude`` into [-qmax-1, qmax]."""
    if magnitude <= 0:
        return 0
    fl = int(np.floor(np.log2(qmax / magnitude)))
    while magnitude * 2.0**fl > qmax:  # guard against log2 rounding
        fl -= 1
    return fl


def bias_params(input_q: QuantParams, weight_q: QuantParams) -> QuantParams:
    """int32 bias with scale input_scale * weight_scale (per channel when the weights are) and zero point 0."""
    scale = np.asarray(input_q.scale[0]) * np.asarray(weight_q.scale)
    return QuantParams("i32", scale, np.zeros_like(scale, dtype=np.int64), axis=0 if weight_q.axis is not None else None,
                       scheme=input_q.scheme)
