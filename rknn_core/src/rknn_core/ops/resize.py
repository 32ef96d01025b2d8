"""Resize in the newest-opset form ``Resize(X, roi, scales, sizes)``, computed axis by axis.

Each resized axis gets an index array and a weight array (one tap for nearest, two for linear,
four for cubic); the output is the weighted sum of ``np.take`` gathers along that axis, so there are
no pixel loops. Like onnxruntime (and unlike the ONNX reference), an output of the input's own shape is
a plain copy even when the scales are not 1. Coordinates follow onnxruntime's float32 arithmetic so that rounding ties and output
sizes agree with it exactly. The ONNX frontend rewrites Upsample and opset-10 Resize to this form
with ``coordinate_transformation_mode='asymmetric'`` and ``nearest_mode='simple'`` (floor when an
axis grows, ceil when it shrinks — onnxruntime's behaviour for those old ops).
"""

from __future__ import annotations

import functools

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import TensorInfo
from rknn_core.kernels_backend import native as _native
from rknn_core.quant.params import QTYPES, quantize
from rknn_core.records import Cost, OpDef

_F = np.float32
_COORD_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                "tf_half_pixel_for_nearest", "tf_crop_and_resize")
_NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple")


def _present(v) -> np.ndarray | None:
    """A constant input's values, or None when the input is absent or empty."""
    if v is None:
        return None
    a = np.asarray(v)
    return None if a.size == 0 else a.reshape(-1)


def _check_attrs(attrs: dict) -> tuple[str, str, str]:
    mode = attrs.get("mode", "nearest")
    coord = attrs.get("coordinate_transformation_mode", "half_pixel")
    nearest = attrs.get("nearest_mode", "round_prefer_floor")
    if mode not in ("nearest", "linear", "cubic"):
        raise RknnError(f"Resize mode '{mode}' is not supported (nearest, linear, cubic)")
    if coord not in _COORD_MODES:
        raise RknnError(f"Resize coordinate_transformation_mode '{coord}' is not supported")
    if mode == "nearest" and nearest not in _NEAREST_MODES:
        raise RknnError(f"Resize nearest_mode '{nearest}' is not supported")
    if int(attrs.get("antialias", 0)) and mode != "nearest":
        raise RknnError("Resize with antialias=1 is not supported")
    return mode, coord, nearest


def _plan(shape: tuple[int, ...], roi, scales, sizes, attrs: dict):
    """Output shape, per-axis float32 scale and per-axis (start, end) roi for input ``shape``."""
    rank = len(shape)
    axes = attrs.get("axes")
    axes = list(range(rank)) if axes is None else [int(a) for a in axes]
    for a in axes:
        if not -rank <= a < rank:
            raise RknnError(f"Resize axis {a} is out of range for a rank-{rank} input")
    axes = [a % rank for a in axes]
    if len(set(axes)) != len(axes):
        raise RknnError(f"Resize axes {axes} repeat an axis")
    roi, scales, sizes = _present(roi), _present(scales), _present(sizes)
    if (scales is None) == (sizes is None):
        raise RknnError("Resize needs exactly one of the 'scales' and 'sizes' inputs")
    out = list(shape)
    scale = [_F(1)] * rank
    if scales is not None:
        if scales.size != len(axes):
            raise RknnError(f"Resize scales has {scales.size} values for {len(axes)} axes")
        for a, s in zip(axes, scales.astype(_F)):
            if not s > 0:
                raise RknnError(f"Resize scale {s} must be positive")
            scale[a] = _F(s)
            out[a] = int(np.floor(_F(s) * _F(shape[a])))  # float32 product like onnxruntime
    else:
        if sizes.size != len(axes):
            raise RknnError(f"Resize sizes has {sizes.size} values for {len(axes)} axes")
        sizes = [int(v) for v in sizes]
        policy = attrs.get("keep_aspect_ratio_policy", "stretch")
        ratios = [_F(n) / _F(shape[a]) for a, n in zip(axes, sizes)]
        if policy == "stretch":
            for a, n, r in zip(axes, sizes, ratios):
                out[a], scale[a] = n, r
        elif policy in ("not_larger", "not_smaller"):
            r = _F(min(ratios) if policy == "not_larger" else max(ratios))
            for a in axes:
                scale[a] = r
                out[a] = int(np.floor(np.float64(r * _F(shape[a])) + 0.5))  # std::round
        else:
            raise RknnError(f"Resize keep_aspect_ratio_policy '{policy}' is not supported")
    if any(n <= 0 for n in out):
        raise RknnError(f"Resize output shape {tuple(out)} is empty")
    box = [(0.0, 1.0)] * rank
    if attrs.get("coordinate_transformation_mode") == "tf_crop_and_resize":
        if roi is None or roi.size != 2 * len(axes):
            raise RknnError(f"Resize tf_crop_and_resize needs a constant roi of {2 * len(axes)} values")
        for i, a in enumerate(axes):
            box[a] = (float(roi[i]), float(roi[len(axes) + i]))
    return out, scale, box


def _original(coord: str, n_out: int, n_in: int, scale, box) -> np.ndarray:
    """Input coordinate (float32) of every output position along one axis, as onnxruntime computes it."""
    x = np.arange(n_out, dtype=_F)
    s = _F(scale)
    if coord == "half_pixel":
        return (x + _F(0.5)) / s - _F(0.5)
    if coord == "half_pixel_symmetric":
        adjustment = _F(n_out) / (s * _F(n_in))
        offset = _F(n_in) / _F(2) * (_F(1) - adjustment)
        return offset + (x + _F(0.5)) / s - _F(0.5)
    if coord == "pytorch_half_pixel":
        return (x + _F(0.5)) / s - _F(0.5) if n_out > 1 else np.zeros(n_out, _F)
    if coord == "align_corners":
        return x * _F(n_in - 1) / _F(n_out - 1) if n_out > 1 else np.zeros(n_out, _F)
    if coord == "asymmetric":
        return x / s
    if coord == "tf_half_pixel_for_nearest":
        return (x + _F(0.5)) / s
    start, end = _F(box[0]), _F(box[1])
    if n_out > 1:
        return start * _F(n_in - 1) + x * (end - start) * _F(n_in - 1) / _F(n_out - 1)
    return np.full(n_out, _F(0.5) * (start + end) * _F(n_in - 1), _F)


def _nearest(x: np.ndarray, mode: str, scale) -> np.ndarray:
    x = x.astype(np.float64)  # exact: every float32 is a float64, and x + 0.5 cannot round here
    if mode == "simple":
        mode = "ceil" if scale < 1 else "floor"
    if mode == "floor":
        return np.floor(x)
    if mode == "ceil":
        return np.ceil(x)
    away = np.sign(x) * np.floor(np.abs(x) + 0.5)  # std::round: halves away from zero
    if mode == "round_prefer_floor":
        return np.where(x == np.trunc(x) + 0.5, np.floor(x), away)
    return away


def _cubic_coeffs(s: np.ndarray, a: float) -> np.ndarray:
    """The four cubic-convolution weights for fractional offsets ``s`` (shape (n, 4))."""
    d = np.stack([s + 1, s, 1 - s, 2 - s], axis=1)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, far)


def _taps(mode: str, coord: str, nearest: str, n_out: int, n_in: int, scale, box, attrs: dict):
    """Indices (n_out, k), weights (n_out, k) or None, and the out-of-range mask (or None) of one axis."""
    orig = _original(coord, n_out, n_in, scale, box)
    outside = None
    if coord == "tf_crop_and_resize":
        outside = (orig < 0) | (orig > n_in - 1)
        if not outside.any():
            outside = None
    if mode == "nearest":
        idx = np.clip(_nearest(orig, nearest, scale), 0, n_in - 1).astype(np.int64)
        return idx[:, None], None, outside
    if mode == "linear":
        x = np.clip(orig.astype(np.float64), 0, n_in - 1)
        i0 = np.floor(x).astype(np.int64)
        i1 = np.minimum(i0 + 1, n_in - 1)
        w1 = x - i0
        return np.stack([i0, i1], axis=1), np.stack([1 - w1, w1], axis=1), outside
    x = orig.astype(np.float64)
    base = np.floor(x).astype(np.int64)
    idx = base[:, None] + np.arange(-1, 3)[None, :]
    w = _cubic_coeffs(x - base, float(attrs.get("cubic_coeff_a", -0.75)))
    if int(attrs.get("exclude_outside", 0)):
        w = np.where((idx >= 0) & (idx < n_in), w, 0.0)
        w = w / w.sum(axis=1, keepdims=True)
    return np.clip(idx, 0, n_in - 1), w, outside


def _needs_work(coord: str, scale, n_out: int, n_in: int) -> bool:
    """False when an axis maps every position to itself (scale 1 in a mode without offsets)."""
    return not (n_out == n_in and scale == 1 and coord not in ("tf_half_pixel_for_nearest", "tf_crop_and_resize",
                                                                "half_pixel_symmetric"))


def infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
    _check_attrs(attrs)
    x = inputs[0]

    def data(i: int, what: str):
        info = inputs[i] if len(inputs) > i else None
        if info is None or info.size == 0:
            return None
        if info.data is None:
            raise RknnError(f"Resize input '{what}' must be a constant (it is computed at run time)")
        return info.data

    roi = data(1, "roi") if attrs.get("coordinate_transformation_mode") == "tf_crop_and_resize" else None
    out, _, _ = _plan(tuple(x.shape), roi, data(2, "scales"), data(3, "sizes"), attrs)
    return [TensorInfo(tuple(out), x.dtype)]


def kernel(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]:
    mode, coord, nearest = _check_attrs(attrs)
    x = inputs[0]
    get = lambda i: inputs[i] if len(inputs) > i else None  # noqa: E731
    out_shape, scale, box = _plan(x.shape, get(1), get(2), get(3), attrs)
    if tuple(out_shape) == x.shape:
        return [x.copy()]  # onnxruntime copies whenever the shape is unchanged, whatever the scales
    if mode == "nearest":
        y = _by_copies(x, out_shape, scale, box, coord, nearest, attrs)
        if y is not None:
            return [y]
    floating = np.issubdtype(x.dtype, np.floating)
    y = x
    mask = None
    for axis in range(x.ndim):
        n_in, n_out = x.shape[axis], out_shape[axis]
        if not _needs_work(coord, scale[axis], n_out, n_in):
            continue
        idx, w, outside = _taps(mode, coord, nearest, n_out, n_in, scale[axis], box[axis], attrs)
        bshape = [1] * x.ndim
        bshape[axis] = n_out
        if w is None:
            y = np.take(y, idx[:, 0], axis=axis)
        else:
            src = y if floating else y.astype(np.float32)
            w = w.astype(src.dtype)
            acc = None
            for k in range(idx.shape[1]):
                term = np.take(src, idx[:, k], axis=axis)
                term *= w[:, k].reshape(bshape)
                acc = term if acc is None else np.add(acc, term, out=acc)
            y = acc
        if outside is not None:
            m = outside.reshape(bshape)
            mask = m if mask is None else mask | m
    if mask is not None:
        y = np.where(np.broadcast_to(mask, y.shape), y.dtype.type(attrs.get("extrapolation_value", 0.0)), y)
    if not floating and y.dtype != x.dtype:
        info = np.iinfo(x.dtype)
        y = np.clip(np.rint(y), info.min, info.max)
    return [np.ascontiguousarray(y, dtype=x.dtype)]


RESIZE_WEIGHT_BITS = 10  # linear/cubic weights as integers of 2**-10, as TFLite's quantized bilinear resize


def integer_weights(w: np.ndarray) -> np.ndarray:
    """Tap weights as integers of 2**-RESIZE_WEIGHT_BITS that sum exactly to 2**RESIZE_WEIGHT_BITS per
    output position: every tap rounded half away from zero, the first tap takes the remainder."""
    one = 1 << RESIZE_WEIGHT_BITS
    iw = np.where(w >= 0, np.floor(w * one + 0.5), np.ceil(w * one - 0.5)).astype(np.int64)
    iw[:, 0] += one - iw.sum(axis=1)
    return iw


def quant_kernel(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """Resize on storage integers; the output keeps the input's parameters. Nearest moves codes.
    Linear/cubic: centered storage times integer weights (``integer_weights``) summed in int64 axis
    by axis, then one rounding division by 2**(10 * axes) (ties away from zero), + zero point,
    saturated; tf_crop_and_resize's extrapolation value is stored in the output's parameters."""
    mode, coord, nearest = _check_attrs(attrs)
    x, x_q, o_q = inputs[0], in_q[0], out_q[0]
    get = lambda i: inputs[i] if len(inputs) > i else None  # noqa: E731
    out_shape, scale, box = _plan(x.shape, get(1), get(2), get(3), attrs)
    if tuple(out_shape) == x.shape:
        return [np.array(x, copy=True)]
    if mode == "nearest":  # moves codes (``kernel`` copies them on the compiled kernel where it can)
        y = kernel(inputs, {**attrs, "extrapolation_value": 0.0})[0]
        return [_extrapolate(x, y, out_shape, scale, box, coord, nearest, attrs, o_q)]
    zero = x_q.zero_point[0]
    y = np.asarray(x, np.int64) - zero
    worked = 0
    for axis in range(x.ndim):
        n_in, n_out = x.shape[axis], out_shape[axis]
        if not _needs_work(coord, scale[axis], n_out, n_in):
            continue
        idx, w, _ = _taps(mode, coord, nearest, n_out, n_in, scale[axis], box[axis], attrs)
        iw = integer_weights(w)
        bshape = [1] * x.ndim
        bshape[axis] = n_out
        y = sum(np.take(y, idx[:, k], axis=axis) * iw[:, k].reshape(bshape) for k in range(idx.shape[1]))
        worked += 1
    shift = RESIZE_WEIGHT_BITS * worked
    half = (1 << shift) >> 1
    mag = (np.abs(y) + half) >> shift
    y = np.where(y < 0, -mag, mag) + zero
    lo, hi, dtype = QTYPES[o_q.qtype]
    y = np.clip(y, lo, hi).astype(dtype)
    return [_extrapolate(x, y, out_shape, scale, box, coord, nearest, attrs, o_q)]


def _by_copies(x: np.ndarray, out_shape, scale, box, coord: str, nearest: str, attrs: dict) -> np.ndarray | None:
    """Nearest resize of 1- or 4-byte elements (8-bit codes, float32) that repeats every input pixel of the last
    two axes a whole number of times (output position o reads input o // factor, as ``kernel``'s taps say) on
    the compiled kernel; None otherwise (other axes resized, other index patterns, wider storage)."""
    if x.ndim < 2 or x.dtype.itemsize not in (1, 4) or tuple(out_shape[:-2]) != x.shape[:-2] \
            or coord == "tf_crop_and_resize":
        return None
    factors = [_whole_factor(x.shape[axis], out_shape[axis], scale[axis], tuple(box[axis]), coord, nearest)
               for axis in (x.ndim - 2, x.ndim - 1)]
    if None in factors:
        return None
    y = np.empty(tuple(out_shape), dtype=x.dtype)
    planes = int(np.prod(x.shape[:-2]))
    _native.upsample8(np.ascontiguousarray(x), y, planes, *x.shape[-2:], *factors, x.dtype.itemsize)
    return y


@functools.lru_cache(maxsize=1024)
def _whole_factor(n_in: int, n_out: int, scale, box: tuple, coord: str, nearest: str) -> int | None:
    """f when nearest's taps read input o // f at every output position o of an axis, else None."""
    if n_out % n_in:
        return None
    idx, _, _ = _taps("nearest", coord, nearest, n_out, n_in, scale, box, {})
    return n_out // n_in if np.array_equal(idx[:, 0], np.arange(n_out) // (n_out // n_in)) else None


def _extrapolate(x, y, out_shape, scale, box, coord, nearest, attrs, o_q) -> np.ndarray:
    """tf_crop_and_resize: positions outside the input take the stored extrapolation value."""
    if coord != "tf_crop_and_resize":
        return y
    mask = np.zeros(y.shape, dtype=bool)
    for axis in range(x.ndim):
        n_in, n_out = x.shape[axis], out_shape[axis]
        outside = _original(coord, n_out, n_in, scale[axis], box[axis])
        outside = (outside < 0) | (outside > n_in - 1)
        shape = [1] * x.ndim
        shape[axis] = n_out
        mask |= outside.reshape(shape)
    value = quantize(np.asarray([float(attrs.get("extrapolation_value", 0.0))]), o_q)[0]
    return np.where(mask, value, y).astype(y.dtype)


def cost(inputs: list[TensorInfo | None], outputs: list[TensorInfo], attrs: dict) -> Cost:
    taps = {"nearest": 0, "linear": 2, "cubic": 4}.get(attrs.get("mode", "nearest"), 1)
    moved = inputs[0].nbytes + sum(o.nbytes for o in outputs)
    return Cost(outputs[0].size * taps * max(len(inputs[0].shape) - 2, 1), moved)


OPS: list[OpDef] = [
    OpDef("Resize", infer, kernel, cost, 1, 4, quant_kernel=quant_kernel, quant_same_scale=True,
          quant_param_inputs=(1, 2, 3),
          doc="Resize(X, roi, scales, sizes): nearest, linear or cubic along every scaled axis; "
              "roi is used only by tf_crop_and_resize."),
]
