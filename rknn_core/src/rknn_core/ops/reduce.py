"""Reductions over axes (Reduce*) and index reductions (ArgMax, ArgMin).

Reduce* take the newest-opset form: ``axes`` is the optional second input (a constant); the ONNX
frontend moves the older ``axes`` attribute there. Absent or empty ``axes`` reduces every axis, or
nothing when ``noop_with_empty_axes`` is 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import TensorInfo
from rknn_core.ops._common import const_ints, default_cost, norm_axis
from rknn_core.ops._quant import centered, requantize_channels, rescale
from rknn_core.records import OpDef


def _axes(rank: int, axes: list[int] | None, attrs: dict) -> tuple[int, ...] | None:
    """The reduced axes, sorted and non-negative; None means 'no reduction' (noop_with_empty_axes)."""
    if not axes:
        return None if int(attrs.get("noop_with_empty_axes", 0)) else tuple(range(rank))
    out = sorted({norm_axis(a, rank) for a in axes})
    if len(out) != len(axes):
        raise RknnError(f"axes {axes} repeat an axis")
    return tuple(out)


def _reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...] | None, keepdims: bool) -> tuple[int, ...]:
    if axes is None:
        return tuple(shape)
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _wide(x: np.ndarray) -> np.ndarray:
    """Accumulate float16/float32 in float64 so long sums stay accurate; integers stay integers."""
    return x.astype(np.float64) if x.dtype in (np.float16, np.float32) else x


def _sum(x, axes, keepdims):
    return np.sum(_wide(x), axis=axes, keepdims=keepdims)


def _sum_square(x, axes, keepdims):
    w = _wide(x)
    return np.sum(w * w, axis=axes, keepdims=keepdims)


def _log_sum_exp(x, axes, keepdims):
    w = _wide(x)
    m = np.max(w, axis=axes, keepdims=True, initial=-np.inf)  # an empty set sums to 0: log gives -inf
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(w - m), axis=axes, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axes)


def _extreme(dtype: np.dtype, lowest: bool):
    """The type's lowest (highest) value: ReduceMax (ReduceMin) of an empty set, as ONNX defines it."""
    if dtype == np.bool_:
        return not lowest
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return info.min if lowest else info.max
    return -np.inf if lowest else np.inf


def _log(v):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(v)


_REDUCERS: dict[str, Callable] = {
    "ReduceSum": _sum,
    "ReduceMean": lambda x, a, k: np.mean(_wide(x), axis=a, keepdims=k),
    "ReduceMax": lambda x, a, k: np.max(x, axis=a, keepdims=k, initial=_extreme(x.dtype, lowest=True)),
    "ReduceMin": lambda x, a, k: np.min(x, axis=a, keepdims=k, initial=_extreme(x.dtype, lowest=False)),
    "ReduceProd": lambda x, a, k: np.prod(_wide(x), axis=a, keepdims=k),
    "ReduceSumSquare": _sum_square,
    "ReduceL1": lambda x, a, k: np.sum(np.abs(_wide(x)), axis=a, keepdims=k),
    "ReduceL2": lambda x, a, k: np.sqrt(_sum_square(x, a, k)),
    "ReduceLogSum": lambda x, a, k: _log(_sum(x, a, k)),
    "ReduceLogSumExp": _log_sum_exp,
}


def _sum_quant(mean: bool) -> Callable:
    """Integer ReduceSum / ReduceMean: an int64 sum of centered storage, requantized by
    x_s / out_s (divided by the element count for the mean) with the fixed-point multiplier."""

    def quant_kernel(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
        x, x_q, o_q = inputs[0], in_q[0], out_q[0]
        given = inputs[1] if len(inputs) > 1 else None
        axes = _axes(x.ndim, None if given is None else [int(v) for v in np.asarray(given).reshape(-1)], attrs)
        if axes is None:
            return [rescale(x, x_q, o_q)]
        keep, reduced = bool(attrs.get("keepdims", 1)), math.prod(x.shape[a] for a in axes)
        if x_q.axis is None:  # the storage summed as it is, less the zero point once per element: the same integers
            total = np.add.reduce(x, axis=axes, dtype=np.int64, keepdims=keep) - reduced * int(x_q.zero_point[0])
        else:
            total = centered(x, x_q, np.int64).sum(axis=axes, keepdims=keep)
        count = reduced if mean else 1
        return [requantize_channels(total, x_q.scale[0] / (o_q.scale[0] * max(count, 1)), o_q.zero_point[0], o_q.qtype)]

    return quant_kernel


# quantized forms: order-preserving reductions move storage; sums are integer; the rest run in float
_QUANT = {"ReduceMax": {"quant_same_scale": True}, "ReduceMin": {"quant_same_scale": True},
          "ReduceSum": {"quant_kernel": _sum_quant(False)}, "ReduceMean": {"quant_kernel": _sum_quant(True)}}


def _reduce(name: str, fn: Callable) -> OpDef:
    def infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
        x = inputs[0]
        axes = _axes(len(x.shape), const_ints(inputs[1] if len(inputs) > 1 else None, "axes"), attrs)
        return [TensorInfo(_reduced_shape(x.shape, axes, bool(attrs.get("keepdims", 1))), x.dtype)]

    def kernel(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]:
        x = inputs[0]
        given = inputs[1] if len(inputs) > 1 else None
        axes = _axes(x.ndim, None if given is None else [int(v) for v in np.asarray(given).reshape(-1)], attrs)
        if axes is None:
            return [x.copy()]
        out = np.asarray(fn(x, axes, bool(attrs.get("keepdims", 1))))
        if np.issubdtype(x.dtype, np.integer) and not np.issubdtype(out.dtype, np.integer):
            out = np.trunc(out)  # integer mean / L2 truncate like the reference
        return [out.astype(x.dtype, copy=False)]

    return OpDef(name, infer, kernel, default_cost, 1, 2, **_QUANT.get(name, {}),
                 doc=f"{name} over the constant `axes` input (all axes when absent); attrs keepdims, "
                     "noop_with_empty_axes.")


def _arg(name: str, pick: Callable) -> OpDef:
    def infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
        x = inputs[0]
        axis = norm_axis(int(attrs.get("axis", 0)), len(x.shape))
        if x.shape[axis] == 0:
            raise RknnError(f"{name} over an empty axis has no value")
        return [TensorInfo(_reduced_shape(x.shape, (axis,), bool(attrs.get("keepdims", 1))), "int64")]

    def kernel(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]:
        x = inputs[0]
        axis = norm_axis(int(attrs.get("axis", 0)), x.ndim)
        if int(attrs.get("select_last_index", 0)):
            idx = x.shape[axis] - 1 - pick(np.flip(x, axis), axis=axis)
        else:
            idx = pick(x, axis=axis)
        idx = np.asarray(idx, dtype=np.int64)
        if int(attrs.get("keepdims", 1)):
            idx = np.expand_dims(idx, axis)
        return [idx]

    return OpDef(name, infer, kernel, default_cost, 1, 1, quant_same_scale=True,  # storage keeps the order
                 doc=f"{name} along `axis` (int64 indices); attrs keepdims, select_last_index.")


OPS: list[OpDef] = [_reduce(name, fn) for name, fn in _REDUCERS.items()] + [
    _arg("ArgMax", np.argmax),
    _arg("ArgMin", np.argmin),
]
