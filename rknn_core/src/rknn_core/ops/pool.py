"""Pooling: MaxPool, AveragePool, LpPool and their Global forms, over any number of spatial axes.

Windows are products of per-axis tap sets, so max, sum and Lp pooling are separable: each spatial
axis is pooled in turn with a loop over its taps (strided slices), never over pixels. That costs
``sum(kernel)`` vectorized passes instead of ``prod(kernel)``. 2-D and 1-D MaxPool of float32 and
8/16-bit storage runs on the compiled ``maxpool2d`` instead, separable in the same order: the same
values bit for bit.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import TensorInfo
from rknn_core.kernels_backend import native as _native
from rknn_core.ops._common import default_cost, memo_by_attrs
from rknn_core.ops._quant import STORAGE_KINDS, centered
from rknn_core.ops._spatial import axis_taps, pad_spatial, resolve_pads, tap_slices_nd
from rknn_core.quant.fixedpoint import multiply, quantize_multiplier
from rknn_core.quant.params import QTYPES
from rknn_core.records import Cost, OpDef


def _geometry(x_shape, attrs: dict, op: str):
    """kernel, strides, dilations, begin pads, end pads (ceil extension included), declared end pads, out."""
    if "kernel_shape" not in attrs:
        raise RknnError(f"{op} needs the kernel_shape attribute")
    kernel = [int(k) for k in attrs["kernel_shape"]]
    rank = len(kernel)
    if len(x_shape) != rank + 2:
        raise RknnError(f"{op} with a {rank}-D kernel needs a rank-{rank + 2} input, got shape {tuple(x_shape)}")
    strides = [int(s) for s in (attrs.get("strides") or [1] * rank)]
    dilations = [int(d) for d in (attrs.get("dilations") or [1] * rank)]
    if len(strides) != rank or len(dilations) != rank:
        raise RknnError(f"{op}: strides {strides} / dilations {dilations} do not match kernel {kernel}")
    if min(kernel + strides + dilations) < 1:
        raise RknnError(f"{op}: kernel {kernel}, strides {strides} and dilations {dilations} must be positive")
    ceil = bool(int(attrs.get("ceil_mode", 0)))
    in_size = list(x_shape[2:])
    begin, end, out = resolve_pads(in_size, kernel, attrs, ceil_mode=ceil)
    declared_end = resolve_pads(in_size, kernel, attrs)[1] if ceil else list(end)
    return kernel, strides, dilations, list(begin), list(end), declared_end, out


def _infer(op: str):
    def infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
        x = inputs[0]
        *_, out = _geometry(x.shape, attrs, op)
        y = TensorInfo((*x.shape[:2], *out), x.dtype)
        if op == "MaxPool" and attrs.get("_indices"):
            return [y, TensorInfo(y.shape, "int64")]
        return [y]
    return infer


def _pool_cost(inputs: list[TensorInfo | None], outputs: list[TensorInfo], attrs: dict) -> Cost:
    window = int(np.prod(attrs.get("kernel_shape") or [1]))
    base = default_cost(inputs, outputs[:1], attrs)
    return Cost(outputs[0].size * window, base.bytes)


def _lowest(dtype) -> float | int:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return float(np.finfo(dtype).min)
    if dtype.kind in "iu":
        return int(np.iinfo(dtype).min)
    raise RknnError(f"MaxPool does not support dtype {dtype}")


def _separable(xp: np.ndarray, kernel, strides, dilations, out, combine) -> np.ndarray:
    """Reduce every window of the padded ``xp`` with a binary in-place ``combine(acc, v)``, axis by axis."""
    y = xp
    for axis, (k, s, d, o) in enumerate(zip(kernel, strides, dilations, out)):
        ax = 2 + axis
        acc = None
        for _, sl in axis_taps(k, s, d, o):
            v = y[(slice(None),) * ax + (sl,)]
            if acc is None:
                acc = np.array(v, copy=True)
            else:
                combine(acc, v, out=acc)
        y = acc
    return y


# dtypes of the compiled MaxPool, by their kind in rknn_core._native (native byte order only)
NATIVE_MAXPOOL = {np.dtype(np.float32): "f", np.dtype(np.uint8): "B", np.dtype(np.int8): "b", np.dtype(np.int16): "h"}


def _maxpool_kernel(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]:
    x = inputs[0]
    if x.ndim in (3, 4) and x.dtype in NATIVE_MAXPOOL and not attrs.get("_indices"):
        return [_compiled_maxpool(x, attrs)]
    kernel, strides, dilations, begin, end, _, out = _geometry(x.shape, attrs, "MaxPool")
    xp = pad_spatial(x, begin, end, _lowest(x.dtype))
    y = _separable(xp, kernel, strides, dilations, out, np.maximum)
    if not attrs.get("_indices"):
        return [y]
    return [y, _argmax_indices(x, xp, y, kernel, strides, dilations, begin, out, int(attrs.get("storage_order", 0)))]


def _two_axes(values, fill: int = 1) -> list[int]:
    """Per-axis values of a 1-D or 2-D geometry as 2-D: a leading ``fill`` (a unit axis) for 1-D."""
    return [fill] * (2 - len(values)) + [int(v) for v in values]


@memo_by_attrs
def _compiled_geometry(attrs: dict, x_shape: tuple) -> tuple[tuple, tuple]:
    """The output shape and the geometry arguments of ``maxpool2d`` (planes, h, w, kh, kw, oh, ow, sh, sw,
    dh, dw, pt, pl) for a 2-D MaxPool, or a 1-D one as one row, on an input of ``x_shape``."""
    kernel, strides, dilations, begin, _, _, out = _geometry(x_shape, attrs, "MaxPool")
    geometry = (x_shape[0] * x_shape[1], *_two_axes(x_shape[2:]), *_two_axes(kernel), *_two_axes(out),
                *_two_axes(strides), *_two_axes(dilations), *_two_axes(begin, 0))
    return (*x_shape[:2], *out), geometry


def _compiled_maxpool(x: np.ndarray, attrs: dict) -> np.ndarray:
    """MaxPool of a 2-D or 1-D input on the compiled kernel, which pads with the lowest value and
    combines as np.maximum does: the numpy path's results bit for bit."""
    shape, geometry = _compiled_geometry(attrs, tuple(x.shape))
    y = np.empty(shape, dtype=x.dtype)
    _native.maxpool2d(np.ascontiguousarray(x), NATIVE_MAXPOOL[x.dtype], y, *geometry)
    return y


def _argmax_indices(x, xp, y, kernel, strides, dilations, begin, out, storage_order) -> np.ndarray:
    """MaxPool's Indices output: flat positions (N and C included) of the first maximum of each
    window, scanning real input cells in row-major window order as onnxruntime does."""
    n, c = x.shape[:2]
    spatial = x.shape[2:]
    rank = len(spatial)
    if storage_order not in (0, 1):
        raise RknnError(f"MaxPool storage_order must be 0 or 1, got {storage_order}")
    # flat-index weight of each spatial axis (row-major, or column-major when storage_order=1)
    order = range(rank) if storage_order == 0 else range(rank - 1, -1, -1)
    weights = [0] * rank
    step = 1
    for ax in reversed(list(order)):
        weights[ax] = step
        step *= spatial[ax]
    plane = int(np.prod(spatial, dtype=np.int64))
    base = (np.arange(n * c, dtype=np.int64) * plane).reshape(n, c, *([1] * rank))
    # per-axis input positions of each output cell for tap 0
    grids = [np.arange(o, dtype=np.int64) * s - b for o, s, b in zip(out, strides, begin)]
    idx = np.zeros(y.shape, dtype=np.int64)
    taps = list(tap_slices_nd(kernel, strides, dilations, out))
    for tap, sl in reversed(taps):  # the last write wins, so scan backwards to keep the first maximum
        hit = xp[(slice(None), slice(None)) + sl] == y
        flat = base
        for ax in range(rank):
            pos = grids[ax] + tap[ax] * dilations[ax]
            valid = (pos >= 0) & (pos < spatial[ax])
            shape = [1] * (rank + 2)
            shape[2 + ax] = out[ax]
            hit &= valid.reshape(shape)
            flat = flat + (pos * weights[ax]).reshape(shape)
        np.copyto(idx, np.broadcast_to(flat, idx.shape), where=hit)
    return idx


def _axis_counts(in_size: int, k: int, s: int, d: int, o: int, begin: int, lo: int, hi: int) -> np.ndarray:
    """How many taps of each output window along one axis fall in input positions [lo, hi)."""
    pos = np.arange(o)[:, None] * s - begin + np.arange(k)[None, :] * d
    return ((pos >= lo) & (pos < hi)).sum(axis=1)


def _divisor(x_shape, kernel, strides, dilations, begin, declared_end, out, include_pad: bool) -> np.ndarray:
    """Per-window element counts: the pooled mask of ones over the real input (plus declared pads
    when ``include_pad``); cells added by ceil_mode never count. Separable, so an outer product."""
    div = np.ones([1] * len(kernel), dtype=np.float64)
    for ax, (size, k, s, d, o, b, e) in enumerate(zip(x_shape[2:], kernel, strides, dilations, out, begin,
                                                        declared_end)):
        lo, hi = (-b, size + e) if include_pad else (0, size)
        counts = _axis_counts(size, k, s, d, o, b, lo, hi)
        shape = [1] * len(kernel)
        shape[ax] = o
        div = div * counts.reshape(shape)
    return div


def window_sums(x: np.ndarray, attrs: dict) -> tuple[np.ndarray, np.ndarray]:
    """AveragePool's window sums of ``x`` (padding adds 0) and each window's element count (which
    counts the declared padding with ``count_include_pad``), broadcastable against the sums."""
    kernel, strides, dilations, begin, end, declared_end, out = _geometry(x.shape, attrs, "AveragePool")
    total = _separable(pad_spatial(x, begin, end, 0), kernel, strides, dilations, out, np.add)
    div = _divisor(x.shape, kernel, strides, dilations, begin, declared_end, out,
                   bool(int(attrs.get("count_include_pad", 0))))
    return total, div


def _avgpool_kernel(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]:
    x = inputs[0]
    if x.dtype.kind != "f":
        raise RknnError(f"AveragePool needs a floating-point input, got {x.dtype}")
    total, div = window_sums(x, attrs)
    # a window that covers only padding (possible with dilations) averages to 0, as onnxruntime gives
    y = np.divide(total, div.astype(x.dtype), out=np.zeros_like(total), where=div > 0)
    return [y.astype(x.dtype, copy=False)]


def _lp(x: np.ndarray, p: int) -> np.ndarray:
    a = np.abs(x)
    return a * a if p == 2 else a ** p


def _lppool_kernel(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]:
    x = inputs[0]
    p = int(attrs.get("p", 2))
    kernel, strides, dilations, begin, end, _, out = _geometry(x.shape, attrs, "LpPool")
    xp = pad_spatial(_lp(x, p), begin, end, 0.0)
    total = _separable(xp, kernel, strides, dilations, out, np.add)
    y = np.sqrt(total) if p == 2 else total ** (1.0 / p)
    return [y.astype(x.dtype, copy=False)]


def _global_infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
    x = inputs[0]
    if len(x.shape) < 3:
        raise RknnError(f"global pooling needs an input of rank >= 3 (N, C, spatial...), got {tuple(x.shape)}")
    return [TensorInfo((*x.shape[:2], *[1] * (len(x.shape) - 2)), x.dtype)]


def _global(reduce):
    def kernel(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]:
        x = inputs[0]
        axes = tuple(range(2, x.ndim))
        return [np.asarray(reduce(x, axes, attrs)).astype(x.dtype, copy=False)]
    return kernel


def _global_lp(x, axes, attrs):
    p = int(attrs.get("p", 2))
    total = np.sum(_lp(x, p), axis=axes, keepdims=True)
    return np.sqrt(total) if p == 2 else total ** (1.0 / p)


def _average_requantize(total: np.ndarray, div: np.ndarray, x_q, o_q) -> np.ndarray:
    """Integer window sums of centered inputs to output storage: always the int32 fixed-point
    multiplier of x_scale / (out_scale * count) per window, as TFLite averages (also when that is a
    power of two); a count of 0 (an all-padding window) gives the zero point."""
    lo, hi, dtype = QTYPES[o_q.qtype]
    div = np.asarray(div)
    if div.size > 1 and div.flat[0] > 0 and (div == div.flat[0]).all():  # one count for all: one multiplier
        div = div.reshape(-1)[:1]
    m = np.where(div > 0, x_q.scale[0] / (o_q.scale[0] * np.maximum(div, 1)), 0.0)
    if m.size == 1 and o_q.qtype in STORAGE_KINDS:  # one multiplier: the compiled fixed-point multiply
        mult, shift = _one_multiplier(float(m.reshape(-1)[0]))
        out = np.empty(total.shape, dtype=dtype)
        _native.requantize(np.ascontiguousarray(total, dtype=np.int64), "q", None, mult, shift, False, out,
                           STORAGE_KINDS[o_q.qtype], 1, 1, total.size, int(o_q.zero_point[0]), lo, hi)
        return out
    mult, shift = quantize_multiplier(m)
    return np.clip(multiply(total, mult, shift) + o_q.zero_point[0], lo, hi).astype(dtype)


@functools.lru_cache(maxsize=1024)
def _one_multiplier(m: float) -> tuple[np.ndarray, np.ndarray]:
    """The fixed-point (mult, shift) of ``m``, as int64 arrays of one element (the compiled kernel's form)."""
    mult, shift = quantize_multiplier(np.float64(m))
    return np.atleast_1d(np.asarray(mult, np.int64)), np.atleast_1d(np.asarray(shift, np.int64))


def _avgpool_quant(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """Integer AveragePool: sums of centered storage over each window (padding adds 0, the real zero)
    in int64, then the per-window fixed-point multiplier x_s / (o_s * count), as TFLite averages."""
    x, x_q, o_q = inputs[0], in_q[0], out_q[0]
    run = _inside_windows_runner(attrs, tuple(x.shape), x.dtype, objects=(x_q, o_q))
    if run is not None:
        return [run(x)]
    total, div = window_sums(centered(x, x_q, np.int64), attrs)
    return [_average_requantize(total, div, x_q, o_q)]


EXACT_SUMS = 2**24  # float32 holds every integer below this: window sums of centered bytes under it are exact


@memo_by_attrs
def _inside_windows_runner(attrs: dict, shape: tuple, dtype: np.dtype, x_q, o_q):
    """``_avgpool_quant`` of 2-D 8-bit storage whose windows all lie inside the image (no padding, no ceil
    extension) in one compiled pass: the window sums of centered storage are those of a depthwise
    convolution by a kernel of ones (exact in float32), requantized by the one multiplier x_s / (o_s * count)
    as ``_average_requantize`` does; None where it does not apply."""
    if (len(shape) != 4 or x_q.axis is not None or x_q.qtype not in ("u8", "i8") or o_q.qtype not in STORAGE_KINDS
            or dtype != QTYPES[x_q.qtype][2]):
        return None
    kernel, strides, dilations, begin, end, _, out = _geometry(shape, attrs, "AveragePool")
    count = math.prod(kernel)
    if any(begin) or any(end) or min(out) < 1 or count * 255 >= EXACT_SUMS:
        return None
    n, c = shape[:2]
    ones = np.ones((c, *kernel), np.float32)
    lo, hi, out_dtype = QTYPES[o_q.qtype]
    mult, shift = _one_multiplier(float(x_q.scale[0]) / (float(o_q.scale[0]) * count))
    kind, out_kind = STORAGE_KINDS[x_q.qtype], STORAGE_KINDS[o_q.qtype]
    geometry = (*shape[2:], *kernel, *out, *strides, *dilations, *begin)
    zero_in, zero_out = int(x_q.zero_point[0]), int(o_q.zero_point[0])

    def run(x: np.ndarray) -> np.ndarray:
        y = np.empty((n, c, *out), dtype=out_dtype)
        _native.qdepthwise_conv2d(np.ascontiguousarray(x), kind, zero_in, ones, None, mult, shift, False, y, out_kind,
                                  zero_out, lo, hi, n, c, *geometry)
        return y

    return run


def _global_avg_quant(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """Integer GlobalAveragePool: int64 sum of centered storage, multiplier x_s / (o_s * count)."""
    x, x_q, o_q = inputs[0], in_q[0], out_q[0]
    run = _global_avg_runner(attrs, tuple(x.shape), x.dtype, objects=(x_q, o_q))
    if run is not None:
        return [run(x)]
    axes = tuple(range(2, x.ndim))
    total = centered(x, x_q, np.int64).sum(axis=axes, keepdims=True)
    return [_average_requantize(total, np.asarray(float(np.prod(x.shape[2:]))), x_q, o_q)]


@memo_by_attrs
def _global_avg_runner(attrs: dict, shape: tuple, dtype: np.dtype, x_q, o_q):
    """``_global_avg_quant`` of 8/16-bit storage of ``shape`` on the compiled kernels, prepared once: the sums of
    each plane in one pass, then the one multiplier x_s / (o_s * count) with the zero point's share of the
    sums as their bias (``_average_requantize``'s integers); None where it does not apply."""
    count, planes = math.prod(shape[2:]), math.prod(shape[:2])
    if (len(shape) < 3 or not count or x_q.axis is not None or x_q.qtype not in STORAGE_KINDS
            or o_q.qtype not in STORAGE_KINDS or dtype != QTYPES[x_q.qtype][2]):
        return None
    lo, hi, out_dtype = QTYPES[o_q.qtype]
    mult, shift = _one_multiplier(float(x_q.scale[0]) / (float(o_q.scale[0]) * count))
    bias = np.array([-count * int(x_q.zero_point[0])], np.int64)
    kind, out_kind = STORAGE_KINDS[x_q.qtype], STORAGE_KINDS[o_q.qtype]
    out_shape = (*shape[:2], *[1] * (len(shape) - 2))

    def run(x: np.ndarray) -> np.ndarray:
        total, out = np.empty(planes, np.int64), np.empty(out_shape, out_dtype)
        _native.plane_sums(np.ascontiguousarray(x), kind, total, planes, count)
        _native.requantize(total, "q", bias, mult, shift, False, out, out_kind, 1, 1, planes, int(o_q.zero_point[0]),
                           lo, hi)
        return out

    return run


def _global_avg_prepare(in_q: list, out_q: list, attrs: dict, constants: list, computed: tuple[int, ...]):
    """``_global_avg_quant`` prepared once for a plan: the compiled runner of each input shape it meets."""
    runners: dict[tuple, object] = {}

    def call(inputs: list) -> list[np.ndarray]:
        x = inputs[0]
        key = (x.shape, x.dtype)
        if key not in runners:
            runners[key] = _global_avg_runner(attrs, *key, objects=(in_q[0], out_q[0]))
        run = runners[key]
        return [run(x)] if run is not None else _global_avg_quant(inputs, in_q, out_q, attrs)

    return call


def _global_avg_kernel(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]:
    """The mean over every spatial axis; float32 planes summed in float64 one value after the other (compiled
    ``plane_sums``), then divided and rounded once."""
    x = inputs[0]
    planes, count = math.prod(x.shape[:2]), math.prod(x.shape[2:])
    if x.dtype != np.float32 or x.ndim < 3 or not count:
        return [np.mean(x, axis=tuple(range(2, x.ndim)), keepdims=True).astype(x.dtype, copy=False)]
    sums = np.empty(planes, np.float64)
    _native.plane_sums(np.ascontiguousarray(x), "f", sums, planes, count)
    return [(sums / count).astype(np.float32).reshape(*x.shape[:2], *[1] * (x.ndim - 2))]


def _global_cost(inputs: list[TensorInfo | None], outputs: list[TensorInfo], attrs: dict) -> Cost:
    return Cost(inputs[0].size, inputs[0].nbytes + outputs[0].nbytes)


OPS = [
    OpDef("MaxPool", _infer("MaxPool"), _maxpool_kernel, _pool_cost, 1, 1, quant_same_scale=True,
          doc="Max pooling (any spatial rank): pads, auto_pad, strides, dilations, ceil_mode; the Indices "
              "output when the node's attrs carry _indices (set by the frontend)."),
    OpDef("AveragePool", _infer("AveragePool"), _avgpool_kernel, _pool_cost, 1, 1, quant_kernel=_avgpool_quant,
          doc="Average pooling (any spatial rank): pads, auto_pad, strides, dilations, ceil_mode, "
              "count_include_pad."),
    OpDef("LpPool", _infer("LpPool"), _lppool_kernel, _pool_cost, 1, 1,
          doc="Lp-norm pooling (p, default 2) over zero-padded windows."),
    OpDef("GlobalAveragePool", _global_infer, _global_avg_kernel, _global_cost, 1, 1,
          quant_kernel=_global_avg_quant, quant_prepare=_global_avg_prepare,
          doc="Mean over every spatial axis (rank >= 3)."),
    OpDef("GlobalMaxPool", _global_infer,
          _global(lambda x, axes, a: np.max(x, axis=axes, keepdims=True)), _global_cost, 1, 1,
          quant_same_scale=True, doc="Max over every spatial axis (rank >= 3)."),
    OpDef("GlobalLpPool", _global_infer, _global(_global_lp), _global_cost, 1, 1,
          doc="Lp norm (p, default 2) over every spatial axis (rank >= 3)."),
]
