"""Neural-network ops: ConvTranspose, Gemm, normalizations and the softmax family."""

from __future__ import annotations

import functools
import math

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import QuantParams, TensorInfo
from rknn_core.kernels_backend import native as _native
from rknn_core.ops import conv as conv_op
from rknn_core.ops._common import broadcast, default_cost, memo_by_attrs, norm_axis, promote, same_as_first
from rknn_core.ops._epilogue import compiled_post, quant_stages
from rknn_core.ops._quant import (
    CODES_BY_BYTE,
    STORAGE_KINDS,
    centered,
    derived,
    exact_chunks,
    requant_plan,
    requantize_accumulator,
    requantizer,
    to_int,
    weight_plan,
)
from rknn_core.ops._spatial import axis_taps
from rknn_core.ops.matmul import int8_by_weights
from rknn_core.quant.params import QTYPES, quantize, round_half_away
from rknn_core.records import Cost, OpDef


def _moved(inputs: list[TensorInfo | None], outputs: list[TensorInfo]) -> int:
    return sum(i.nbytes for i in inputs if i is not None) + sum(o.nbytes for o in outputs)


def _opt(inputs: list, i: int):
    return inputs[i] if len(inputs) > i else None


# --- ConvTranspose -------------------------------------------------------------------------------

def _deconv_geometry(x_shape, w_shape, attrs: dict):
    """kernel, strides, dilations, begin pads, end pads (negative = extend), output spatial size.

    With ``output_shape`` (or SAME auto_pad, which asks for ``in * stride``) the total padding is
    split as the ONNX spec and onnxruntime do: the odd cell goes to the end for SAME_UPPER, to the
    beginning otherwise. An ``output_shape`` beyond the full result extends it at the end.
    """
    rank = len(x_shape) - 2
    if rank < 1 or len(w_shape) != rank + 2:
        raise RknnError(f"ConvTranspose needs input and weight of the same rank >= 3, got {tuple(x_shape)} "
                        f"and {tuple(w_shape)}")
    kernel = [int(k) for k in w_shape[2:]]
    if attrs.get("kernel_shape") and [int(k) for k in attrs["kernel_shape"]] != kernel:
        raise RknnError(f"ConvTranspose kernel_shape {list(attrs['kernel_shape'])} does not match weight {tuple(w_shape)}")
    strides = [int(s) for s in (attrs.get("strides") or [1] * rank)]
    dilations = [int(d) for d in (attrs.get("dilations") or [1] * rank)]
    out_pad = [int(p) for p in (attrs.get("output_padding") or [0] * rank)]
    if not len(strides) == len(dilations) == len(out_pad) == rank:
        raise RknnError(f"ConvTranspose: strides/dilations/output_padding must have {rank} values")
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    if auto_pad not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
        raise RknnError(f"unknown auto_pad '{auto_pad}'")
    in_size = [int(i) for i in x_shape[2:]]
    full = [(i - 1) * s + op + (k - 1) * d + 1 for i, s, op, k, d in zip(in_size, strides, out_pad, kernel, dilations)]
    out_shape = list(attrs.get("output_shape") or [])
    if len(out_shape) == rank + 2:
        out_shape = out_shape[2:]
    if out_shape and len(out_shape) != rank:
        raise RknnError(f"ConvTranspose output_shape {out_shape} does not have {rank} spatial values")
    if not out_shape and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        # asks for in * stride; like onnxruntime, never pad negatively (a kernel smaller than the
        # stride gives the full result, not a zero-extended one)
        out_shape = [min(i * s, f) for i, s, f in zip(in_size, strides, full)]
    if out_shape:
        total = [max(0, f - int(o)) for f, o in zip(full, out_shape)]
        if auto_pad == "SAME_UPPER":
            begin = [t // 2 for t in total]
        else:
            begin = [t - t // 2 for t in total]
        out = [int(o) for o in out_shape]
        end = [f - b - o for f, b, o in zip(full, begin, out)]
    elif auto_pad == "VALID":
        begin, end, out = [0] * rank, [0] * rank, full
    else:
        pads = [int(p) for p in (attrs.get("pads") or [0] * (2 * rank))]
        begin, end = pads[:rank], pads[rank:]
        out = [f - b - e for f, b, e in zip(full, begin, end)]
    if min(out) < 1:
        raise RknnError(f"ConvTranspose output size {out} is not positive")
    return kernel, strides, dilations, begin, end, out, full


def _deconv_infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
    x, w = inputs[0], inputs[1]
    group = int(attrs.get("group", 1))
    if len(x.shape) < 3 or x.shape[1] != w.shape[0] or w.shape[0] % group:
        raise RknnError(f"ConvTranspose input {tuple(x.shape)} does not match weight {tuple(w.shape)} "
                        f"with group={group}")
    m = w.shape[1] * group
    b = _opt(inputs, 2)
    if b is not None and tuple(b.shape) != (m,):
        raise RknnError(f"ConvTranspose bias shape {tuple(b.shape)} does not match {m} output channels")
    *_, out, _ = _deconv_geometry(x.shape, w.shape, attrs)
    return [TensorInfo((x.shape[0], m, *out), x.dtype)]


def _deconv_kernel(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]:
    x, w, b = inputs[0], inputs[1], _opt(inputs, 2)
    woven = _float_deconv_by_taps(x, w, b, attrs)
    if woven is not None:
        return [woven]
    kernel, strides, dilations, begin, end, out, full = _deconv_geometry(x.shape, w.shape, attrs)
    group = int(attrs.get("group", 1))
    n, c = x.shape[:2]
    cg, mg = c // group, w.shape[1]
    rank = len(kernel)
    taps = int(np.prod(kernel))
    pixels = int(np.prod(x.shape[2:]))
    dtype = np.result_type(x, w)
    # every input pixel times every kernel tap: (N, group, mg*taps, pixels)
    wg = w.reshape(group, cg, mg * taps).transpose(0, 2, 1)
    xg = x.reshape(n, group, cg, pixels)
    # one input channel per group (depthwise) is an outer product: skip the degenerate matmul
    cols = wg[None] * xg if cg == 1 else np.matmul(wg[None], xg)
    cols = cols.reshape(n, group * mg, *kernel, *x.shape[2:])
    # scatter-add each tap into the full (unpadded-crop) output, one strided slice per tap and axis
    lo = [max(0, -e) for e in end]  # output_shape larger than the full result extends at the end
    y = np.zeros((n, group * mg, *[f + extra for f, extra in zip(full, lo)]), dtype=dtype)
    in_size = x.shape[2:]
    per_axis = [list(axis_taps(k, s, d, i)) for k, s, d, i in zip(kernel, strides, dilations, in_size)]
    for flat in range(taps):
        tap = np.unravel_index(flat, kernel)
        sl = tuple(per_axis[ax][tap[ax]][1] for ax in range(rank))
        y[(slice(None), slice(None)) + sl] += cols[(slice(None), slice(None)) + tuple(tap)]
    crop = tuple(slice(bb, bb + o) for bb, o in zip(begin, out))
    y = y[(slice(None), slice(None)) + crop]
    if b is not None:
        y = y + b.reshape(1, -1, *[1] * rank).astype(dtype, copy=False)
    return [np.ascontiguousarray(y, dtype=x.dtype)]


def _tap_plan(x_shape: tuple, w_shape: tuple, attrs: dict) -> tuple | None:
    """(kernel, begin, out, full) of a ConvTranspose whose kernel equals its strides (2-D, group 1, no dilation,
    no output padding, pads not negative: every output pixel is one tap of one input pixel), else None."""
    if len(x_shape) != 4 or int(attrs.get("group", 1)) != 1:
        return None
    kernel, strides, dilations, begin, end, out, full = _deconv_geometry(x_shape, w_shape, attrs)
    h, width = x_shape[2:]
    if kernel != strides or dilations != [1, 1] or min(*begin, *end) < 0 or full != [h * kernel[0], width * kernel[1]]:
        return None
    return kernel, begin, out, full


def _cropped(y: np.ndarray, begin: list, out: list, full: list) -> np.ndarray:
    """The full ConvTranspose result ``y`` cropped by its pads."""
    if full == out:
        return y
    return np.ascontiguousarray(y[:, :, begin[0]:begin[0] + out[0], begin[1]:begin[1] + out[1]])


def _float_deconv_by_taps(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, attrs: dict) -> np.ndarray | None:
    """The float32 ConvTranspose whose kernel equals its strides (``_tap_plan``) as a 1x1 Conv on the compiled
    GEMM into kh * kw tap planes per output channel (bias added to each sum, as the scatter-add form adds it
    after), woven into the output planes; None when that does not apply."""
    plan = _tap_plan(x.shape, w.shape, attrs) if x.dtype == w.dtype == np.float32 else None
    if plan is None or (b is not None and b.dtype != np.float32):
        return None
    kernel, begin, out, full = plan
    conv_w, conv_b, _, conv_attrs = _taps_as_conv(w, b, FLOAT_WEIGHTS)
    n, m, (h, width), (kh, kw) = x.shape[0], w.shape[1], x.shape[2:], kernel
    taps = conv_op.conv2d(x, conv_w, conv_b, conv_attrs).reshape(n, m, kh, kw, h, width)
    y = np.empty((n, m, h, kh, width, kw), dtype=np.float32)
    for i in range(kh):  # one strided copy per tap (numpy's 6-D transposing copy is several times slower)
        for j in range(kw):
            y[:, :, :, i, :, j] = taps[:, :, i, j]
    return _cropped(y.reshape(n, m, *full), begin, out, full)


def _deconv_cost(inputs: list[TensorInfo | None], outputs: list[TensorInfo], attrs: dict) -> Cost:
    x, w = inputs[0], inputs[1]
    macs = x.size * int(np.prod(w.shape[1:]))
    return Cost(macs, _moved(inputs, outputs))


# --- Gemm -------------------------------------------------------------------------------------

def _gemm_dims(a_shape, b_shape, attrs):
    if len(a_shape) != 2 or len(b_shape) != 2:
        raise RknnError(f"Gemm needs 2-D A and B, got {tuple(a_shape)} and {tuple(b_shape)}")
    m, k = a_shape[::-1] if int(attrs.get("transA", 0)) else a_shape
    k2, n = b_shape[::-1] if int(attrs.get("transB", 0)) else b_shape
    if k != k2:
        raise RknnError(f"Gemm inner dimensions differ: A {tuple(a_shape)}, B {tuple(b_shape)} "
                        f"(transA={attrs.get('transA', 0)}, transB={attrs.get('transB', 0)})")
    return int(m), int(k), int(n)


def gemm_infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
    a, b, c = inputs[0], inputs[1], _opt(inputs, 2)
    m, _, n = _gemm_dims(a.shape, b.shape, attrs)
    if c is not None and broadcast(c.shape, (m, n)) != (m, n):
        raise RknnError(f"Gemm C of shape {tuple(c.shape)} does not broadcast to ({m}, {n})")
    return [TensorInfo((m, n), promote(a.dtype, b.dtype))]


@functools.lru_cache(maxsize=256)
def _gemm_offsets(k: int, m: int, trans_a: bool) -> tuple[np.ndarray, np.ndarray]:
    """Offsets of A[p, j] in A's buffer: j along k, p along m (A stored (M, K), or (K, M) when transposed)."""
    taps, rows = np.arange(k, dtype=np.int64), np.arange(m, dtype=np.int64)
    taps, rows = (taps * m, rows) if trans_a else (taps, rows * k)
    taps.flags.writeable = rows.flags.writeable = False
    return taps, rows


def _compiled_gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray | None, attrs: dict) -> np.ndarray | None:
    """float32 Gemm with B given as (N, K) rows (transB=1, the fully connected layout) on the compiled kernel,
    C (one value per output column) fused as its bias; None when that does not apply."""
    if not (a.dtype == b.dtype == np.float32 and int(attrs.get("transB", 0)) and float(attrs.get("alpha", 1.0)) == 1.0):
        return None
    m, k, n = _gemm_dims(a.shape, b.shape, attrs)
    if c is not None and (float(attrs.get("beta", 1.0)) != 1.0 or c.dtype != np.float32 or c.size != n
                          or c.shape not in ((n,), (1, n))):
        return None
    trans_a = bool(int(attrs.get("transA", 0)))
    taps, rows = _gemm_offsets(k, m, trans_a)
    yt = np.empty((n, m), dtype=np.float32)
    _native.conv_gemm(np.ascontiguousarray(b), np.ascontiguousarray(a), taps, rows,
                      None if c is None else np.ascontiguousarray(c).reshape(-1), yt, n, k, m, -np.inf, np.inf)
    return np.ascontiguousarray(yt.T)


def gemm_kernel(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]:
    a, b, c = inputs[0], inputs[1], _opt(inputs, 2)
    compiled = _compiled_gemm(a, b, c, attrs)
    if compiled is not None:
        return [compiled]
    dtype = np.result_type(a, b)
    if int(attrs.get("transA", 0)):
        a = a.T
    if int(attrs.get("transB", 0)):
        b = b.T
    y = np.matmul(a, b)
    alpha = float(attrs.get("alpha", 1.0))
    if alpha != 1.0:
        y = y * np.asarray(alpha, dtype=dtype)
    if c is not None:
        beta = float(attrs.get("beta", 1.0))
        y = y + (c if beta == 1.0 else c * np.asarray(beta, dtype=dtype)).astype(dtype, copy=False)
    return [np.asarray(y, dtype=dtype)]


def gemm_cost(inputs: list[TensorInfo | None], outputs: list[TensorInfo], attrs: dict) -> Cost:
    m, k, n = _gemm_dims(inputs[0].shape, inputs[1].shape, attrs)
    return Cost(m * k * n, _moved(inputs, outputs))


# --- normalizations ------------------------------------------------------------------------------

def _channel_shape(x: np.ndarray) -> tuple[int, ...]:
    return (1, x.shape[1], *[1] * (x.ndim - 2))


def _bn_infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
    x = inputs[0]
    if len(x.shape) < 2:
        raise RknnError(f"BatchNormalization needs an input of rank >= 2, got {tuple(x.shape)}")
    if int(attrs.get("training_mode", 0)):
        raise RknnError("BatchNormalization with training_mode=1 is not supported (inference only)")
    if "spatial" in attrs and not int(attrs["spatial"]):
        raise RknnError("BatchNormalization with spatial=0 (per-activation statistics) is not supported")
    for i, name in enumerate(("scale", "B", "mean", "var"), start=1):
        if inputs[i].size != x.shape[1]:
            raise RknnError(f"BatchNormalization {name} has shape {tuple(inputs[i].shape)}, expected ({x.shape[1]},)")
    return [TensorInfo(x.shape, x.dtype)]


def _bn_kernel(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]:
    x, scale, bias, mean, var = inputs[:5]
    eps = float(attrs.get("epsilon", 1e-5))
    # fold into one multiply-add, computed in float64 then rounded once
    a = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    b = bias.astype(np.float64) - mean.astype(np.float64) * a
    shape = _channel_shape(x)
    y = x * a.astype(x.dtype).reshape(shape)
    y += b.astype(x.dtype).reshape(shape)
    return [y]


def _in_infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
    x, scale, bias = inputs[:3]
    if len(x.shape) < 3:
        raise RknnError(f"InstanceNormalization needs an input of rank >= 3, got {tuple(x.shape)}")
    if scale.size != x.shape[1] or bias.size != x.shape[1]:
        raise RknnError(f"InstanceNormalization scale/B must have {x.shape[1]} values")
    return [TensorInfo(x.shape, x.dtype)]


def _in_kernel(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]:
    x, scale, bias = inputs[:3]
    eps = float(attrs.get("epsilon", 1e-5))
    axes = tuple(range(2, x.ndim))
    xd = x.astype(np.float64)
    mean = xd.mean(axis=axes, keepdims=True)
    centered = xd - mean
    var = np.mean(centered * centered, axis=axes, keepdims=True)
    shape = _channel_shape(x)
    y = centered * (scale.astype(np.float64).reshape(shape) / np.sqrt(var + eps)) + bias.reshape(shape)
    return [y.astype(x.dtype)]


def _lrn_kernel(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]:
    x = inputs[0]
    if x.ndim < 3:
        raise RknnError(f"LRN needs an input of rank >= 3, got {x.shape}")
    size = int(attrs["size"])
    alpha = float(attrs.get("alpha", 1e-4))
    beta = float(attrs.get("beta", 0.75))
    bias = float(attrs.get("bias", 1.0))
    c = x.shape[1]
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = (x.astype(np.float64)) ** 2
    padded = np.pad(sq, [(0, 0), (before, after)] + [(0, 0)] * (x.ndim - 2))
    total = np.zeros_like(sq)
    for i in range(size):  # loop over the channel window, vectorized over everything else
        total += padded[:, i:i + c]
    y = x / (bias + (alpha / size) * total) ** beta
    return [y.astype(x.dtype)]


def _lrn_infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
    if "size" not in attrs:
        raise RknnError("LRN needs the size attribute")
    return same_as_first(inputs, attrs)


# --- softmax family ------------------------------------------------------------------------------

def _view_shape(shape: tuple, attrs: dict) -> tuple[tuple, int]:
    """The shape the softmax family views an input of ``shape`` as (2-D when ``coerce_2d``, the opset < 13 form),
    and the reduced axis."""
    if attrs.get("coerce_2d"):
        axis = norm_axis(int(attrs.get("axis", 1)), len(shape))
        return (math.prod(shape[:axis]), -1), 1
    return tuple(shape), norm_axis(int(attrs.get("axis", -1)), len(shape))


def _softmax_family(fn):
    def kernel(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]:
        return [_family_of(fn, inputs[0], *_view_shape(inputs[0].shape, attrs))]
    return kernel


def _family_of(fn, x: np.ndarray, view: tuple, axis: int) -> np.ndarray:
    """``fn`` (softmax, log-softmax, hardmax) of ``x`` seen as ``view`` along ``axis``, in x's dtype and shape."""
    return np.asarray(fn(x.reshape(view), axis)).astype(x.dtype, copy=False).reshape(x.shape)


def _softmax_prepare(fn):
    """``prepare`` for ``_softmax_family(fn)``: the view and axis worked out once per input shape (a two-class
    head's softmax is a few microseconds of numpy; the rest of its call was this bookkeeping)."""
    def prepare(attrs: dict, constants: list, computed: tuple[int, ...]):
        views: dict[tuple, tuple[tuple, int]] = {}

        def call(inputs: list) -> list[np.ndarray]:
            x = inputs[0]
            if x.shape not in views:
                views[x.shape] = _view_shape(x.shape, attrs)
            return [_family_of(fn, x, *views[x.shape])]

        return call

    return prepare


PAIR_ROWS = 64  # from this many rows of two values on, reductions run as one elementwise call


def _reduced(ufunc: np.ufunc, v: np.ndarray, axis: int) -> np.ndarray:
    """``ufunc.reduce(v, axis=axis, keepdims=True)`` (max or sum) to broadcast against ``v``. Along an axis of
    two values (two-class heads, ``PAIR_ROWS`` rows or more) it is one elementwise call on the halves (the
    same single operation per row) given back twice along the axis: numpy loops row by row both to reduce
    and to broadcast a reduced array, slowly when there are many short rows."""
    if v.shape[axis] != 2 or v.size < 2 * PAIR_ROWS:
        return ufunc.reduce(v, axis=axis, keepdims=True)
    before = (slice(None),) * axis
    once = ufunc(v[before + (slice(0, 1),)], v[before + (slice(1, 2),)])
    return np.concatenate((once, once), axis=axis)


def _softmax(v: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(v - _reduced(np.maximum, v, axis))
    e /= _reduced(np.add, e, axis)
    return e


def _log_softmax(v: np.ndarray, axis: int) -> np.ndarray:
    shifted = v - _reduced(np.maximum, v, axis)
    return shifted - np.log(_reduced(np.add, np.exp(shifted), axis))


def _hardmax(v: np.ndarray, axis: int) -> np.ndarray:
    first = np.expand_dims(np.argmax(v, axis=axis), axis)
    out = np.zeros_like(v)
    np.put_along_axis(out, first, 1, axis=axis)
    return out


def _softmax_infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
    x = inputs[0]
    default = 1 if attrs.get("coerce_2d") else -1
    norm_axis(int(attrs.get("axis", default)), len(x.shape))
    return [TensorInfo(x.shape, x.dtype)]


def _softmax_cost(inputs: list[TensorInfo | None], outputs: list[TensorInfo], attrs: dict) -> Cost:
    base = default_cost(inputs, outputs, attrs)
    return Cost(3 * outputs[0].size, base.bytes)


# --- quantized forms -----------------------------------------------------------------------------

def _deconv_quant(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """Integer ConvTranspose: exact float sums of centered products (float32 when the weights' L1
    bound allows), + int32 bias, fixed-point requantize per output channel."""
    x, w, b = inputs[0], inputs[1], _opt(inputs, 2)
    x_q, w_q, o_q = in_q[0], in_q[1], out_q[0]
    if w_q.axis is not None and (w_q.axis != 1 or int(attrs.get("group", 1)) != 1):
        raise RknnError("ConvTranspose per-channel weights must be along axis 1 (output channels), group 1")
    woven = _deconv_by_taps(x, w, b, x_q, w_q, o_q, attrs)
    if woven is not None:
        return [woven]
    wc, dtype = weight_plan(w, w_q, x_q, 1)
    acc = _deconv_kernel([centered(x, x_q, dtype), wc], attrs)[0]
    return [requantize_accumulator(acc, x_q, w_q, o_q, 1, bias=b)]


def _deconv_by_taps(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, x_q: QuantParams, w_q: QuantParams,
                    o_q: QuantParams, attrs: dict) -> np.ndarray | None:
    """The integer ConvTranspose whose kernel equals its strides (2-D, group 1, no dilation, no output padding:
    every output pixel is one tap of one input pixel) as the integer 1x1 Conv into kh * kw tap planes per output
    channel (conv.quant_kernel: the same exact sums, multipliers and bias, so the same codes), woven into the
    output planes on the compiled kernel and cropped by the pads; None when that does not apply (8-bit
    output storage only)."""
    plan = _tap_plan(x.shape, w.shape, attrs) if o_q.qtype in ("u8", "i8") else None
    if plan is None:
        return None
    kernel, begin, out, full = plan
    conv_w, conv_b, conv_wq, conv_attrs = _taps_as_conv(w, b, w_q)
    taps = conv_op.quant_kernel([x, conv_w, conv_b], [x_q, conv_wq, None], [o_q], conv_attrs)[0]
    n, m, (h, width) = x.shape[0], w.shape[1], x.shape[2:]
    y = np.empty((n, m, *full), dtype=taps.dtype)
    _native.depth_to_space8(np.ascontiguousarray(taps), y, n * m, *kernel, h, width)
    return _cropped(y, begin, out, full)


FLOAT_WEIGHTS = QuantParams("float32", 1.0, 0)  # stands for "not quantized" in _taps_as_conv's cache key


def _taps_as_conv(w: np.ndarray, b: np.ndarray | None, w_q: QuantParams) -> tuple:
    """ConvTranspose weights (c, m, kh, kw) as a 1x1 Conv's (m * kh * kw, c, 1, 1): output row (o, i, j) is tap
    (i, j) of output channel o; its bias and per-channel parameters repeated per tap; the Conv's attributes.
    Kept with the weights (the same objects every run, as the Conv's own caches need)."""

    def make(w: np.ndarray) -> tuple:
        c, m = w.shape[:2]
        taps = math.prod(w.shape[2:])
        conv_w = np.ascontiguousarray(w.reshape(c, m * taps).T).reshape(m * taps, c, 1, 1)
        conv_b = None if b is None else np.repeat(np.asarray(b).reshape(-1), taps)
        conv_wq = w_q if w_q.axis is None else QuantParams(
            w_q.qtype, tuple(np.repeat(w_q.scale, taps).tolist()), tuple(np.repeat(w_q.zero_point, taps).tolist()),
            axis=0)
        return conv_w, conv_b, conv_wq, {"kernel_shape": [1, 1], "strides": [1, 1], "pads": [0, 0, 0, 0],
                                         "dilations": [1, 1], "group": 1}

    key = ("deconv_taps", None if b is None else id(b), w_q.qtype, w_q.scale, w_q.zero_point, w_q.axis)
    return derived(w, key, make)


def _gemm_bias(b: np.ndarray | None, attrs: dict) -> np.ndarray | None:
    """The int32 bias (units x_s * w_s) scaled by beta / alpha and rounded once (half away from zero),
    so that alpha folds into the output multiplier: alpha * (A'B' + round(beta / alpha * C))."""
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    if b is None or beta == alpha:
        return None if b is None else np.asarray(b, np.int64)
    return round_half_away(np.asarray(b, np.float64) * (beta / alpha)).astype(np.int64)


def _exact_fully_connected(a: np.ndarray, wc: np.ndarray, a_q: QuantParams) -> np.ndarray:
    """A @ W.T of centered storage on the compiled GEMM: float32 runs of the inner axis that stay exact,
    summed in float64 (exact below 2**53)."""
    m, k = a.shape
    ac = np.empty((m, k), dtype=np.float32)
    _native.center(np.ascontiguousarray(a), STORAGE_KINDS[a_q.qtype], int(a_q.zero_point[0]), ac)
    flat = ac.reshape(-1)
    total = np.zeros((wc.shape[0], m), dtype=np.float64)
    part = np.empty((wc.shape[0], m), dtype=np.float32)
    _, rows = _gemm_offsets(k, m, False)
    for start, stop, w in exact_chunks(wc, a_q):
        taps, _ = _gemm_offsets(stop - start, m, False)
        _native.conv_gemm(w, flat[start:], taps, rows, None, part, w.shape[0], stop - start, m, -np.inf, np.inf)
        total += part
    return total.T


def _gemm_quant(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """Integer Gemm: A' @ B' of centered storage (exact float), + int32 C, per-output-column
    requantization by alpha * a_s * b_s / out_s (alpha and beta folded, see ``_gemm_bias``)."""
    a, b, c = inputs[0], inputs[1], _opt(inputs, 2)
    a_q, b_q, o_q = in_q[0], in_q[1], out_q[0]
    alpha = float(attrs.get("alpha", 1.0))
    if alpha <= 0:
        raise RknnError(f"Gemm alpha={alpha} has no integer form (it must be positive)")
    trans_b = int(attrs.get("transB", 0))
    out_axis = 0 if trans_b else 1
    if b_q.axis is not None and b_q.axis % 2 != out_axis:
        raise RknnError(f"Gemm per-channel B must be quantized along its output axis {out_axis}")
    if a_q.axis is not None:
        raise RknnError("Gemm input A must be quantized per tensor")
    bc, dtype = weight_plan(b, b_q, a_q, out_axis)
    fully_connected = trans_b and not int(attrs.get("transA", 0)) and a.ndim == 2 and a_q.qtype in STORAGE_KINDS \
        and a.dtype == np.dtype(QTYPES[a_q.qtype][2])
    eight_bit = _gemm_by_weights(attrs, objects=(b, c, a_q, b_q, o_q)) if fully_connected else None
    if eight_bit is not None:
        return [eight_bit(a)]
    if fully_connected:
        acc = _exact_fully_connected(a, bc, a_q)
    else:
        ac = centered(a, a_q, dtype)
        acc = np.matmul(ac.T if int(attrs.get("transA", 0)) else ac, bc.T if trans_b else bc)
    bias = _gemm_bias(c, attrs)
    if bias is not None and bias.ndim > 1 or (bias is not None and bias.size not in (1, acc.shape[1])):
        acc = to_int(acc) + bias  # a 2-D C: add it elementwise, requantize per column
        bias = None
    elif bias is not None:
        bias = np.broadcast_to(bias.reshape(-1), (acc.shape[1],))
    m_q = QuantParams(b_q.qtype, np.asarray(b_q.scale) * alpha, b_q.zero_point, axis=b_q.axis)
    return [requantize_accumulator(acc, a_q, m_q, o_q, 1, bias=bias)]


@memo_by_attrs
def _gemm_by_weights(attrs: dict, b: np.ndarray, c: np.ndarray | None, a_q: QuantParams, b_q: QuantParams,
                     o_q: QuantParams):
    """A fully connected Gemm (A @ B.T, B constant rows) on the 8-bit GEMM, as MatMul by weights runs: the int32 C
    one value per column added to the sums, requantized by alpha * a_s * b_s / out_s; prepared once per node, None
    where it does not apply (``int8_by_weights``, or a C that is not one value per column)."""
    bc, _ = weight_plan(b, b_q, a_q, 0)
    bias = _gemm_bias(c, attrs)
    if bias is not None and bias.size not in (1, bc.shape[0]):
        return None
    m = float(attrs.get("alpha", 1.0)) * a_q.scale[0] * np.asarray(b_q.scale, dtype=np.float64) / o_q.scale[0]
    stages = quant_stages({}, o_q, None)
    run = int8_by_weights(bc.T, a_q, m, stages, compiled_post(stages, None), bias)
    return None if run is None else lambda a: run(a, None)


SOFTMAX_EXP_BITS = 20  # exp table entries are round(2**20 * exp(-d * x_scale))
SOFTMAX_PROB_BITS = 30  # probabilities as round(2**30 * e / sum) before the output requantization


@functools.lru_cache(maxsize=256)
def _exp_table(qtype: str, scale: float) -> np.ndarray:
    """round(2**20 * exp(-d * scale)) for every storage distance d of ``qtype``."""
    lo, hi, _ = QTYPES[qtype]
    table = round_half_away(np.exp(-np.arange(hi - lo + 1) * scale) * 2.0**SOFTMAX_EXP_BITS).astype(np.int64)
    table.flags.writeable = False
    return table


def _softmax_quant(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """Integer softmax (LUT form, as int8 NPUs and TFLite's LUT softmax compute it): with d = max - x
    in storage steps, e = round(2**20 * exp(-d * x_s)) from a table, p = round(2**30 * e / sum(e))
    (integer division, ties up), out = requantize(p, 2**-30 / out_s)."""
    x = np.asarray(inputs[0])
    return [_softmax_runner(attrs, x.shape, objects=(in_q[0], out_q[0]))(x)]


@memo_by_attrs
def _softmax_runner(attrs: dict, shape: tuple, x_q: QuantParams, o_q: QuantParams):
    """``_softmax_quant`` for storage of ``shape``, prepared once per node: the exp table, the reduced axis
    (of the 2-D view with ``coerce_2d``) and the output requantization."""
    if x_q.qtype not in STORAGE_KINDS or o_q.qtype not in STORAGE_KINDS:
        raise RknnError(f"the integer Softmax takes 8/16-bit storage, not {x_q.qtype} -> {o_q.qtype}")
    table = _exp_table(x_q.qtype, x_q.scale[0])
    view, axis = _view_shape(shape, attrs)
    rows, inner = _rows_of(shape, view, axis)
    if _by_histograms(rows, inner, x_q, o_q):
        requantize = requantizer(2.0**-SOFTMAX_PROB_BITS / o_q.scale[0], o_q.zero_point[0], o_q.qtype)
        return _softmax_by_histograms(table, requantize, x_q, o_q, rows, inner)
    return _softmax_compiled(table, x_q, o_q, shape, view, axis)


def _softmax_compiled(table: np.ndarray, x_q: QuantParams, o_q: QuantParams, shape: tuple, view: tuple, axis: int):
    """``_softmax_quant`` of 8/16-bit storage on the compiled kernel (the same integer steps, any axis)."""
    size, known = math.prod(shape), math.prod(d for d in view if d != -1)
    full = tuple(size // max(known, 1) if d == -1 else d for d in view)  # coerce_2d's (rows, -1) resolved
    outer, n, inner = math.prod(full[:axis]), full[axis], math.prod(full[axis + 1:])
    plan = requant_plan(2.0**-SOFTMAX_PROB_BITS / o_q.scale[0], o_q.qtype, None, 1, None)
    arguments = (STORAGE_KINDS[x_q.qtype], table, plan.mult, plan.shift, plan.pot)
    after = (plan.kind, outer, n, inner, int(o_q.zero_point[0]), plan.lo, plan.hi)

    def run(x: np.ndarray) -> np.ndarray:
        out = np.empty(shape, plan.dtype)
        if size:
            _native.softmax_lut(np.ascontiguousarray(x), *arguments, out, *after)
        return out

    return run


def _rows_of(shape: tuple, view: tuple, axis: int) -> tuple[int, int]:
    """(rows, codes per row) when the reduced axis is the last of ``view`` (that of an input of ``shape``), else
    (0, 0)."""
    size = math.prod(shape)
    if axis != len(view) - 1 or size == 0:
        return 0, 0
    inner = view[-1] if view[-1] != -1 else size // view[0]
    return size // inner, inner


def _by_histograms(rows: int, inner: int, x_q: QuantParams, o_q: QuantParams) -> bool:
    """Whether ``_softmax_by_histograms`` applies and pays: 8-bit storage in and out, ``rows`` rows of ``inner``
    codes along the reduced last axis (``inner`` 0: another axis), at least ``LONG_ROW`` of them (a row's 256
    table entries cost less than its codes)."""
    return x_q.qtype in CODES_BY_BYTE and o_q.qtype in CODES_BY_BYTE and rows > 0 and inner >= LONG_ROW


def _softmax_by_histograms(table: np.ndarray, requantize, x_q: QuantParams, o_q: QuantParams, rows: int,
                           inner: int):
    """``_softmax_quant`` of long rows of 8-bit codes: a row's output code depends only on the input code once
    the row's largest code and sum of exp terms are known, and both follow from how often each code occurs.
    So per row: a histogram of its codes (compiled), its maximum and sum of table entries, the probability
    and output code of every code (the same integer steps as element by element), then one lookup per code."""
    codes = CODES_BY_BYTE[x_q.qtype].astype(np.intp)  # the code of each byte
    lowest = QTYPES[x_q.qtype][0]
    out_dtype = QTYPES[o_q.qtype][2]

    def run(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x)
        counts = np.empty((rows, 256), np.int64)
        _native.byte_histograms(x, counts, rows, inner)
        top = np.where(counts > 0, codes, lowest).max(axis=1, keepdims=True)
        e = table[np.maximum(top - codes, 0)]  # codes above the maximum do not occur: any entry
        total = (counts * e).sum(axis=1, keepdims=True)
        e <<= SOFTMAX_PROB_BITS
        e += total // 2
        e //= total
        tables = np.ascontiguousarray(requantize(e)).view(np.uint8)
        out = np.empty(x.shape, out_dtype)
        _native.lookup8(x, tables, out, rows, inner, True)
        return out

    return run


LONG_ROW = 1024  # rows at least this long: by histograms


def _hardmax_quant(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """Hardmax on storage (order-preserving), ones and zeros stored in the output's parameters."""
    x, o_q = inputs[0], out_q[0]
    one_hot = _softmax_family(_hardmax)([np.asarray(x, np.int64)], attrs)[0]
    zero, one = quantize(np.asarray([0.0, 1.0]), o_q)
    return [np.where(one_hot == 1, one, zero).astype(zero.dtype)]


OPS = [
    OpDef("ConvTranspose", _deconv_infer, _deconv_kernel, _deconv_cost, 2, 3, quant_kernel=_deconv_quant,
          quant_bias_input=2, quant_weight_axes=lambda attrs: {1: 1} if int(attrs.get("group", 1)) == 1 else {},
          doc="Transposed convolution (any spatial rank): group, strides, dilations, pads, output_padding, "
              "output_shape, auto_pad; matmul then a scatter-add per kernel tap."),
    OpDef("Gemm", gemm_infer, gemm_kernel, gemm_cost, 2, 3, quant_kernel=_gemm_quant, quant_bias_input=2,
          quant_weight_axes=lambda attrs: {1: 0 if int(attrs.get("transB", 0)) else 1},
          doc="alpha * A' @ B' + beta * C with optional transposes and a broadcast C."),
    OpDef("BatchNormalization", _bn_infer, _bn_kernel, default_cost, 5, 5,
          doc="Inference batch normalization with running statistics (channel axis 1)."),
    OpDef("InstanceNormalization", _in_infer, _in_kernel, default_cost, 3, 3,
          doc="Per-sample, per-channel normalization over the spatial axes."),
    OpDef("LRN", _lrn_infer, _lrn_kernel, default_cost, 1, 1,
          doc="Local response normalization across channels."),
    OpDef("Softmax", _softmax_infer, _softmax_family(_softmax), _softmax_cost, 1, 1, quant_kernel=_softmax_quant,
          prepare=_softmax_prepare(_softmax),
          doc="Numerically stable softmax along axis (default -1); coerce_2d gives the opset < 13 form."),
    OpDef("LogSoftmax", _softmax_infer, _softmax_family(_log_softmax), _softmax_cost, 1, 1,
          doc="Log of softmax along axis (default -1); coerce_2d gives the opset < 13 form."),
    OpDef("Hardmax", _softmax_infer, _softmax_family(_hardmax), default_cost, 1, 1, quant_kernel=_hardmax_quant,
          doc="One-hot of the first maximum along axis (default -1); coerce_2d gives the opset < 13 form."),
]
