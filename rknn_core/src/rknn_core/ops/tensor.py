"""Data movement ops: Concat, Split, Reshape, Transpose, Pad, Slice, Gather, Cast, Expand, Tile ...

Shape inference also computes the values of small all-constant results (shape vectors flowing through
Shape -> Gather -> Unsqueeze -> Concat -> Reshape) so that later ops can read them as constants.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import TensorInfo
from rknn_core.ops._common import broadcast, const_ints, given_inputs, norm_axis, with_values
from rknn_core.ops._quant import rescale
from rknn_core.quant.params import dequantize, quantize
from rknn_core.records import Cost, OpDef


def move_cost(inputs: list[TensorInfo | None], outputs: list[TensorInfo], attrs: dict) -> Cost:
    """Pure data movement: no arithmetic; the data input is read and the outputs written."""
    read = inputs[0].nbytes if inputs and inputs[0] is not None else 0
    return Cost(0, read + sum(o.nbytes for o in outputs))


def _concat_cost(inputs, outputs, attrs):
    return Cost(0, sum(i.nbytes for i in inputs if i is not None) + sum(o.nbytes for o in outputs))


def meta_cost(inputs, outputs, attrs):
    return Cost(0, sum(o.nbytes for o in outputs))


def tensor_op(name: str, infer: Callable, kernel: Callable, lo: int, hi: int | None, doc: str,
        cost: Callable = move_cost, fold: bool = True, shape_only: bool = False, same_scale: bool = False,
        quant_kernel: Callable | None = None, param_inputs: tuple[int, ...] = (),
        prepare: Callable | None = None) -> OpDef:
    """An op of this module; ``same_scale`` marks pure data movement (quantized: the float kernel moves
    storage integers and the outputs keep input 0's parameters)."""
    return OpDef(name, with_values(infer, kernel) if fold else infer, kernel, cost, lo, hi,
                 shape_only=shape_only, doc=doc, quant_same_scale=same_scale, quant_kernel=quant_kernel,
                 quant_param_inputs=param_inputs, prepare=prepare)


def reshaping(kernel: Callable) -> Callable:
    """``prepare`` for an op whose output is input 0 reshaped (its other inputs constants): the kernel run once
    per input shape met, then only the reshape."""
    def prepare(attrs: dict, constants: list, computed: tuple[int, ...]):
        if computed != (0,):
            return None
        shapes: dict[tuple, tuple] = {}

        def call(inputs: list) -> list[np.ndarray]:
            x = inputs[0]
            if x.shape not in shapes:
                shapes[x.shape] = kernel(given_inputs(inputs, constants, computed), attrs)[0].shape
            return [x.reshape(shapes[x.shape])]

        return call

    return prepare


# ---------------------------------------------------------------- quantized forms
def _concat_quant(inputs, in_q, out_q, attrs):
    """Inputs whose parameters differ from the output's are rescaled to it (fixed point), then joined."""
    parts = [rescale(x, q, out_q[0]) for x, q in zip(inputs, in_q) if x is not None]
    return _concat_kernel(parts, attrs)


def _pad_quant(inputs, in_q, out_q, attrs):
    """Pad on storage integers; the constant pad value becomes storage of the output's parameters
    (0.0 pads with the zero point)."""
    value, value_q = _opt(inputs, 2), _opt(in_q, 2)
    real = 0.0 if value is None or np.size(value) == 0 else float(
        (dequantize(value, value_q) if value_q is not None else np.asarray(value)).reshape(-1)[0])
    stored = quantize(np.asarray([real]), out_q[0])
    return _pad_kernel([inputs[0], inputs[1], stored, *inputs[3:]], attrs)


def _opt(inputs: list, i: int):
    return inputs[i] if len(inputs) > i else None


# ---------------------------------------------------------------- Concat / Split
def _concat_infer(inputs, attrs):
    present = [i for i in inputs if i is not None]
    rank = len(present[0].shape)
    axis = norm_axis(int(attrs["axis"]), rank)
    out = list(present[0].shape)
    out[axis] = 0
    for i in present:
        if len(i.shape) != rank or any(a != b for k, (a, b) in enumerate(zip(i.shape, present[0].shape)) if k != axis):
            raise RknnError(f"Concat inputs {[tuple(p.shape) for p in present]} differ outside axis {axis}")
        out[axis] += i.shape[axis]
    return [TensorInfo(tuple(out), present[0].dtype)]


def _concat_kernel(inputs, attrs):
    present = [x for x in inputs if x is not None]
    return [np.concatenate(present, axis=norm_axis(int(attrs["axis"]), present[0].ndim))]


def _split_sizes(inputs, attrs, dim: int) -> list[int]:
    split = _opt(inputs, 1)
    if split is not None:
        sizes = [int(v) for v in np.asarray(split).reshape(-1)]
        if sum(sizes) != dim or any(s < 0 for s in sizes):
            raise RknnError(f"Split sizes {sizes} do not add up to the axis length {dim}")
        return sizes
    n = int(attrs.get("num_outputs", 0))
    if n < 1:
        raise RknnError("Split needs a 'split' input or a 'num_outputs' attribute")
    chunk = -(-dim // n)  # opset 18: equal chunks of ceil(dim / n), the last one smaller
    return [max(0, min(chunk, dim - k * chunk)) for k in range(n)]


def _split_infer(inputs, attrs):
    x = inputs[0]
    axis = norm_axis(int(attrs.get("axis", 0)), len(x.shape))
    split = _opt(inputs, 1)
    sizes = _split_sizes([x, None if split is None else const_ints(split, "split")], attrs, x.shape[axis])
    return [TensorInfo(x.shape[:axis] + (s,) + x.shape[axis + 1:], x.dtype) for s in sizes]


def _split_kernel(inputs, attrs):
    x = inputs[0]
    axis = norm_axis(int(attrs.get("axis", 0)), x.ndim)
    sizes = _split_sizes(inputs, attrs, x.shape[axis])
    return [part.copy() for part in np.split(x, np.cumsum(sizes)[:-1], axis=axis)]


# ---------------------------------------------------------------- Reshape family
def reshape_target(in_shape: tuple[int, ...], shape: list[int], allowzero: bool) -> tuple[int, ...]:
    """The output shape of ONNX Reshape: 0 copies the input dimension (unless allowzero), -1 is inferred."""
    out = list(shape)
    for k, d in enumerate(shape):
        if d == 0 and not allowzero:
            if k >= len(in_shape):
                raise RknnError(f"Reshape shape {shape} copies dimension {k} of a rank-{len(in_shape)} input")
            out[k] = in_shape[k]
    total = math.prod(in_shape)
    if out.count(-1) > 1 or any(d < -1 for d in out):
        raise RknnError(f"Reshape shape {shape} is invalid")
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        if known == 0 or total % known:
            raise RknnError(f"cannot reshape {tuple(in_shape)} to {shape}")
        out[out.index(-1)] = total // known
    if math.prod(out) != total:
        raise RknnError(f"cannot reshape {tuple(in_shape)} ({total} elements) to {tuple(out)}")
    return tuple(out)


def _reshape_infer(inputs, attrs):
    x = inputs[0]
    shape = reshape_target(x.shape, const_ints(inputs[1], "shape"), bool(attrs.get("allowzero", 0)))
    return [TensorInfo(shape, x.dtype)]


@functools.lru_cache(maxsize=1024)
def _reshape_shape(in_shape: tuple[int, ...], shape: tuple[int, ...], allowzero: bool) -> tuple[int, ...]:
    """``reshape_target`` cached per input shape and target (kernels reshape the same tensors every run)."""
    return reshape_target(in_shape, list(shape), allowzero)


def _reshape_kernel(inputs, attrs):
    x = inputs[0]
    shape = tuple(map(int, inputs[1].reshape(-1).tolist()))
    return [x.reshape(_reshape_shape(x.shape, shape, bool(attrs.get("allowzero", 0))))]


def _flatten_shape(shape, attrs):
    rank = len(shape)
    axis = int(attrs.get("axis", 1))
    if not -rank <= axis <= rank:
        raise RknnError(f"Flatten axis {axis} is out of range for a rank-{rank} tensor")
    if axis < 0:
        axis += rank
    return math.prod(shape[:axis]), math.prod(shape[axis:])


def _flatten_infer(inputs, attrs):
    return [TensorInfo(_flatten_shape(inputs[0].shape, attrs), inputs[0].dtype)]


def _flatten_kernel(inputs, attrs):
    return [inputs[0].reshape(_flatten_shape(inputs[0].shape, attrs))]


def _perm(attrs, rank):
    perm = attrs.get("perm")
    return _permutation(None if perm is None else tuple(perm), rank)


@functools.lru_cache(maxsize=1024)
def _permutation(perm: tuple | None, rank: int) -> tuple[int, ...]:
    """The axes order of a Transpose (reversed without ``perm``), checked; cached per (perm, rank)."""
    perm = list(range(rank))[::-1] if perm is None or len(perm) == 0 else [norm_axis(int(p), rank) for p in perm]
    if sorted(perm) != list(range(rank)):
        raise RknnError(f"Transpose perm {perm} is not a permutation of {rank} axes")
    return tuple(perm)


def _transpose_infer(inputs, attrs):
    x = inputs[0]
    return [TensorInfo(tuple(x.shape[p] for p in _perm(attrs, len(x.shape))), x.dtype)]


def _transpose_kernel(inputs, attrs):
    x = inputs[0]
    return [np.ascontiguousarray(x.transpose(_perm(attrs, x.ndim)))]


def _squeeze_axes(shape, axes):
    rank = len(shape)
    if axes is None:
        return [k for k, d in enumerate(shape) if d == 1]
    axes = sorted({norm_axis(a, rank) for a in axes})
    bad = [a for a in axes if shape[a] != 1]
    if bad:
        raise RknnError(f"Squeeze axes {bad} of shape {tuple(shape)} are not 1")
    return axes


def _squeeze_infer(inputs, attrs):
    x = inputs[0]
    axes = _squeeze_axes(x.shape, const_ints(_opt(inputs, 1), "axes"))
    return [TensorInfo(tuple(d for k, d in enumerate(x.shape) if k not in axes), x.dtype)]


def _squeeze_kernel(inputs, attrs):
    x, axes = inputs[0], _opt(inputs, 1)
    axes = _squeeze_axes(x.shape, None if axes is None else [int(a) for a in axes.reshape(-1)])
    return [x.reshape(tuple(d for k, d in enumerate(x.shape) if k not in axes))]


def _unsqueeze_shape(shape, axes):
    rank = len(shape) + len(axes)
    axes = [norm_axis(a, rank) for a in axes]
    if len(set(axes)) != len(axes):
        raise RknnError(f"Unsqueeze axes {axes} repeat")
    dims = iter(shape)
    return tuple(1 if k in axes else next(dims) for k in range(rank))


def _unsqueeze_infer(inputs, attrs):
    x = inputs[0]
    return [TensorInfo(_unsqueeze_shape(x.shape, const_ints(inputs[1], "axes")), x.dtype)]


def _unsqueeze_kernel(inputs, attrs):
    x = inputs[0]
    return [x.reshape(_unsqueeze_shape(x.shape, [int(a) for a in inputs[1].reshape(-1)]))]


# ---------------------------------------------------------------- Pad
def _pad_widths(rank: int, pads: list[int], axes: list[int] | None) -> list[tuple[int, int]]:
    axes = list(range(rank)) if axes is None else [norm_axis(a, rank) for a in axes]
    if len(pads) != 2 * len(axes):
        raise RknnError(f"Pad has {len(pads)} pads for {len(axes)} axes (needs begins then ends)")
    widths = [(0, 0)] * rank
    for k, a in enumerate(axes):
        widths[a] = (pads[k], pads[k + len(axes)])
    return widths


def _pad_infer(inputs, attrs):
    x = inputs[0]
    widths = _pad_widths(len(x.shape), const_ints(inputs[1], "pads"), const_ints(_opt(inputs, 3), "axes"))
    shape = tuple(d + b + e for d, (b, e) in zip(x.shape, widths))
    if any(d < 0 for d in shape):
        raise RknnError(f"Pad crops {tuple(x.shape)} below zero size")
    return [TensorInfo(shape, x.dtype)]


def _pad_kernel(inputs, attrs):
    x = inputs[0]
    axes = _opt(inputs, 3)
    widths = _pad_widths(x.ndim, [int(p) for p in inputs[1].reshape(-1)],
                         None if axes is None else [int(a) for a in axes.reshape(-1)])
    mode = attrs.get("mode", "constant")
    if isinstance(mode, bytes):
        mode = mode.decode()
    # negative pads crop first; the positive ones then pad what is left
    x = x[tuple(slice(max(-b, 0), d - max(-e, 0)) for d, (b, e) in zip(x.shape, widths))]
    widths = [(max(b, 0), max(e, 0)) for b, e in widths]
    if mode == "constant":
        value = _opt(inputs, 2)
        value = 0 if value is None or value.size == 0 else value.reshape(-1)[0]
        return [np.pad(x, widths, mode="constant", constant_values=np.asarray(value).astype(x.dtype))]
    np_mode = {"reflect": "reflect", "edge": "edge", "wrap": "wrap"}.get(mode)
    if np_mode is None:
        raise RknnError(f"Pad mode '{mode}' is not supported (constant, reflect, edge, wrap)")
    if x.size == 0 and any(w != (0, 0) for w in widths):
        raise RknnError(f"Pad mode '{mode}' cannot pad an empty tensor")
    return [np.pad(x, widths, mode=np_mode)]


# ---------------------------------------------------------------- Slice
_END_OF_AXIS = (2**31 - 1, 2**63 - 1)


def slice_params(shape, starts, ends, axes, steps) -> list[slice]:
    """Per-axis Python slices for ONNX Slice, with ONNX's clamping of starts and ends.

    An end of INT32_MAX or INT64_MAX means "through the last element in the step's direction", as
    onnxruntime reads it (so starts=INT_MIN, ends=INT_MAX, steps=-1 on a length-1 axis keeps it).
    """
    rank = len(shape)
    axes = list(range(len(starts))) if axes is None else [norm_axis(a, rank) for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise RknnError(f"Slice starts {starts}, ends {ends}, axes {axes}, steps {steps} differ in length")
    if len(set(axes)) != len(axes):
        raise RknnError(f"Slice axes {axes} repeat")
    out = [slice(None)] * rank
    for start, end, axis, step in zip(starts, ends, axes, steps):
        dim = shape[axis]
        if step == 0:
            raise RknnError("Slice step must not be 0")
        start = start + dim if start < 0 else start
        start = min(max(start, 0), dim if step > 0 else dim - 1)
        if end in _END_OF_AXIS:  # as onnxruntime: INT_MAX runs to the end in the step's direction
            end = dim if step > 0 else -1
        else:
            end = end + dim if end < 0 else end
            end = min(max(end, 0), dim) if step > 0 else min(max(end, -1), dim - 1)
        out[axis] = slice(start, None if end < 0 else end, step)
    return out


def _slice_ints(inputs, k, what):
    return const_ints(_opt(inputs, k), what)


def _slice_infer(inputs, attrs):
    x = inputs[0]
    slices = slice_params(x.shape, _slice_ints(inputs, 1, "starts"), _slice_ints(inputs, 2, "ends"),
                          _slice_ints(inputs, 3, "axes"), _slice_ints(inputs, 4, "steps"))
    return [TensorInfo(tuple(len(range(*s.indices(d))) for s, d in zip(slices, x.shape)), x.dtype)]


def _slice_kernel(inputs, attrs):
    x = inputs[0]

    def ints(k):
        v = _opt(inputs, k)
        return None if v is None else [int(a) for a in v.reshape(-1)]

    return [x[tuple(slice_params(x.shape, ints(1), ints(2), ints(3), ints(4)))].copy()]


# ---------------------------------------------------------------- Gather
def _gather_infer(inputs, attrs):
    x, idx = inputs[0], inputs[1]
    axis = norm_axis(int(attrs.get("axis", 0)), len(x.shape))
    return [TensorInfo(x.shape[:axis] + tuple(idx.shape) + x.shape[axis + 1:], x.dtype)]


def _checked_indices(idx: np.ndarray, dim: int, op: str) -> np.ndarray:
    idx = np.asarray(idx, dtype=np.int64)
    if idx.size and (idx.min() < -dim or idx.max() >= dim):
        raise RknnError(f"{op} indices must lie in [{-dim}, {dim - 1}]")
    return np.where(idx < 0, idx + dim, idx)


def _gather_kernel(inputs, attrs):
    x, idx = inputs[0], inputs[1]
    axis = norm_axis(int(attrs.get("axis", 0)), x.ndim)
    return [np.take(x, _checked_indices(idx, x.shape[axis], "Gather"), axis=axis)]


def _gather_elements_infer(inputs, attrs):
    x, idx = inputs[0], inputs[1]
    norm_axis(int(attrs.get("axis", 0)), len(x.shape))
    if len(idx.shape) != len(x.shape):
        raise RknnError(f"GatherElements indices {tuple(idx.shape)} and data {tuple(x.shape)} differ in rank")
    return [TensorInfo(tuple(idx.shape), x.dtype)]


def _gather_elements_kernel(inputs, attrs):
    x, idx = inputs[0], inputs[1]
    axis = norm_axis(int(attrs.get("axis", 0)), x.ndim)
    idx = _checked_indices(idx, x.shape[axis], "GatherElements")
    # indices may be smaller than data on the other axes: take the leading part of data
    view = x[tuple(slice(0, n) if k != axis else slice(None) for k, n in enumerate(idx.shape))]
    return [np.take_along_axis(view, idx, axis=axis)]


# ---------------------------------------------------------------- Cast, Expand, Tile
def _cast_dtype(attrs) -> np.dtype:
    try:
        dtype = np.dtype(attrs["to"])
    except (KeyError, TypeError) as exc:
        raise RknnError(f"Cast needs a numeric 'to' dtype, got {attrs.get('to')!r}") from exc
    if dtype.kind not in "biuf":
        raise RknnError(f"Cast to {dtype} is not supported")
    return dtype


def _cast_infer(inputs, attrs):
    return [TensorInfo(inputs[0].shape, str(_cast_dtype(attrs)))]


def _cast_kernel(inputs, attrs):
    x, dtype = inputs[0], _cast_dtype(attrs)
    with np.errstate(invalid="ignore", over="ignore"):
        return [x.astype(dtype)]


def _expand_infer(inputs, attrs):
    x = inputs[0]
    return [TensorInfo(broadcast(x.shape, const_ints(inputs[1], "shape")), x.dtype)]


def _expand_kernel(inputs, attrs):
    x = inputs[0]
    shape = broadcast(x.shape, [int(v) for v in inputs[1].reshape(-1)])
    return [np.broadcast_to(x, shape).copy()]


def _tile_infer(inputs, attrs):
    x = inputs[0]
    reps = const_ints(inputs[1], "repeats")
    if len(reps) != len(x.shape) or any(r < 0 for r in reps):
        raise RknnError(f"Tile repeats {reps} do not fit a rank-{len(x.shape)} input")
    return [TensorInfo(tuple(d * r for d, r in zip(x.shape, reps)), x.dtype)]


def _tile_kernel(inputs, attrs):
    return [np.tile(inputs[0], [int(r) for r in inputs[1].reshape(-1)])]


# ---------------------------------------------------------------- DepthToSpace / SpaceToDepth
def _d2s_infer(inputs, attrs):
    x = inputs[0]
    bs = int(attrs["blocksize"])
    if len(x.shape) != 4 or x.shape[1] % (bs * bs):
        raise RknnError(f"DepthToSpace needs NCHW input with channels divisible by {bs * bs}, got {x.shape}")
    n, c, h, w = x.shape
    return [TensorInfo((n, c // (bs * bs), h * bs, w * bs), x.dtype)]


def _d2s_kernel(inputs, attrs):
    x = inputs[0]
    bs = int(attrs["blocksize"])
    n, c, h, w = x.shape
    co = c // (bs * bs)
    if str(attrs.get("mode", "DCR")).upper() == "CRD":
        y = x.reshape(n, co, bs, bs, h, w).transpose(0, 1, 4, 2, 5, 3)
    else:
        y = x.reshape(n, bs, bs, co, h, w).transpose(0, 3, 4, 1, 5, 2)
    return [y.reshape(n, co, h * bs, w * bs)]


def _s2d_infer(inputs, attrs):
    x = inputs[0]
    bs = int(attrs["blocksize"])
    if len(x.shape) != 4 or x.shape[2] % bs or x.shape[3] % bs:
        raise RknnError(f"SpaceToDepth needs NCHW input with H and W divisible by {bs}, got {x.shape}")
    n, c, h, w = x.shape
    return [TensorInfo((n, c * bs * bs, h // bs, w // bs), x.dtype)]


def _s2d_kernel(inputs, attrs):
    x = inputs[0]
    bs = int(attrs["blocksize"])
    n, c, h, w = x.shape
    order = (0, 1, 3, 5, 2, 4) if str(attrs.get("mode", "DCR")).upper() == "CRD" else (0, 3, 5, 1, 2, 4)
    y = x.reshape(n, c, h // bs, bs, w // bs, bs).transpose(order)
    return [y.reshape(n, c * bs * bs, h // bs, w // bs)]


OPS: list[OpDef] = [
    tensor_op("Concat", _concat_infer, _concat_kernel, 1, None, "Join inputs along axis.", cost=_concat_cost,
        quant_kernel=_concat_quant),
    tensor_op("Split", _split_infer, _split_kernel, 1, 2,
        "Split along axis by the 'split' input, or into num_outputs chunks (the last one may be smaller).",
        same_scale=True),
    tensor_op("Reshape", _reshape_infer, _reshape_kernel, 2, 2, "Reshape to the constant shape input (0 copies, -1 infers).",
        same_scale=True, prepare=reshaping(_reshape_kernel)),
    tensor_op("Flatten", _flatten_infer, _flatten_kernel, 1, 1, "Flatten to 2-D at axis.", same_scale=True,
        prepare=reshaping(_flatten_kernel)),
    tensor_op("Transpose", _transpose_infer, _transpose_kernel, 1, 1, "Permute axes (default: reverse them).",
        same_scale=True),
    tensor_op("Squeeze", _squeeze_infer, _squeeze_kernel, 1, 2, "Drop size-1 axes (all of them without 'axes').",
        same_scale=True, prepare=reshaping(_squeeze_kernel)),
    tensor_op("Unsqueeze", _unsqueeze_infer, _unsqueeze_kernel, 2, 2, "Insert size-1 axes at 'axes' of the output.",
        same_scale=True, prepare=reshaping(_unsqueeze_kernel)),
    tensor_op("Pad", _pad_infer, _pad_kernel, 2, 4,
        "Pad (or crop, negative pads) in constant, reflect, edge or wrap mode; optional axes input.",
        same_scale=True, quant_kernel=_pad_quant, param_inputs=(2,)),
    tensor_op("Slice", _slice_infer, _slice_kernel, 3, 5, "Strided slice with ONNX clamping; optional axes and steps.",
        same_scale=True),
    tensor_op("Gather", _gather_infer, _gather_kernel, 2, 2, "Take entries along axis (negative indices count back).",
        same_scale=True),
    tensor_op("GatherElements", _gather_elements_infer, _gather_elements_kernel, 2, 2,
        "Take entries along axis elementwise by an index tensor of the same rank.", same_scale=True),
    tensor_op("Cast", _cast_infer, _cast_kernel, 1, 1, "Convert to the numpy dtype in attribute 'to'."),
    tensor_op("Expand", _expand_infer, _expand_kernel, 2, 2, "Broadcast to a shape (bidirectionally).",
        same_scale=True),
    tensor_op("Tile", _tile_infer, _tile_kernel, 2, 2, "Repeat the input along each axis.", same_scale=True),
    tensor_op("DepthToSpace", _d2s_infer, _d2s_kernel, 1, 1, "Move channel blocks into space (DCR or CRD order).",
        same_scale=True),
    tensor_op("SpaceToDepth", _s2d_infer, _s2d_kernel, 1, 1, "Move spatial blocks into channels (DCR or CRD order).",
        same_scale=True),
]
