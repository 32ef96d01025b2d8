"""Convolution: float32 on the compiled GEMM (implicit im2col) or depthwise kernel; other dtypes on
im2col + BLAS matmul."""

from __future__ import annotations

import functools

import numpy as np
from attrs import frozen

from rknn_core.errors import RknnError
from rknn_core.ir import TensorInfo
from rknn_core.kernels_backend import native as _native
from rknn_core.ops._common import given_inputs, memo_by_attrs
from rknn_core.ops._epilogue import (
    CompiledPost,
    QuantStages,
    apply_activation,
    apply_post_ops,
    compiled_post,
    finish_quantized,
    float_epilogue,
    float_post_ops,
    quant_stages,
    residual_of,
)
from rknn_core.ops._quant import (
    STORAGE_KINDS,
    RequantPlan,
    centered,
    derived,
    int8_operands,
    requant_plan,
    requantize_accumulator,
    span,
    weight_plan,
)
from rknn_core.ops._spatial import as_2d, pad_spatial, resolve_pads, spatial_attrs_2d, windows
from rknn_core.quant.params import QTYPES
from rknn_core.records import ChainNode, Cost, OpDef

INT32_SUMS = 2**30  # the int32 requantization's bound on the sums of the 8-bit GEMM


@frozen
class Geometry:
    """Where a convolution's windows lie: 2-D kernel, strides, dilations, pads and output size."""

    kernel: list
    strides: list
    dilations: list
    begin: list
    end: list
    out: list


def _geometry(x_shape, w_shape, attrs) -> Geometry:
    return _geometry_of(attrs, tuple(x_shape), tuple(w_shape))


@memo_by_attrs
def _geometry_of(attrs: dict, x_shape: tuple, w_shape: tuple) -> Geometry:
    rank = len(x_shape) - 2
    a = spatial_attrs_2d(attrs, rank)
    in_hw = list(x_shape[2:]) if rank == 2 else [1, x_shape[2]]
    kernel = list(w_shape[2:]) if rank == 2 else [1, w_shape[2]]
    begin, end, out = resolve_pads(in_hw, kernel, a)
    return Geometry(kernel, list(a.get("strides") or [1, 1]), list(a.get("dilations") or [1, 1]), begin, end, out)


def infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
    x, w = inputs[0], inputs[1]
    if len(x.shape) not in (3, 4) or len(w.shape) != len(x.shape):
        raise RknnError(f"Conv needs 3-D or 4-D input and weight of the same rank, got {x.shape} and {w.shape}")
    group = int(attrs.get("group", 1))
    if x.shape[1] != w.shape[1] * group or w.shape[0] % group:
        raise RknnError(f"Conv input channels {x.shape[1]} do not match weight {w.shape} with group={group}")
    if inputs[2:] and inputs[2] is not None and tuple(inputs[2].shape) != (w.shape[0],):
        raise RknnError(f"Conv bias shape {inputs[2].shape} does not match {w.shape[0]} output channels")
    out = _geometry(x.shape, w.shape, attrs).out
    spatial = out if len(x.shape) == 4 else out[1:]
    shape = (x.shape[0], w.shape[0], *spatial)
    residual = inputs[3] if len(inputs) > 3 else None
    if residual is not None and (not int(attrs.get("fused_add", 0)) or tuple(residual.shape) != shape):
        raise RknnError(f"Conv input 3 (a fused residual add) needs fused_add=1 and the output's shape {shape}, got "
                        f"fused_add={attrs.get('fused_add')!r} and shape {tuple(residual.shape)}")
    return [TensorInfo(shape, x.dtype)]


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, attrs: dict, residual: np.ndarray | None = None
           ) -> np.ndarray:
    """NCHW 2-D convolution with bias, a fused residual (added after the bias) and the fused activation
    (``attrs["activation"]``): float32 on the compiled kernels, other dtypes on im2col + matmul."""
    if _all_float32(x, w, residual):
        return _float_runner(attrs, x.shape, w.shape)(x, w, b, residual)
    geo = _geometry(x.shape, w.shape, attrs)
    kernel, strides, dilations, begin, end, out = geo.kernel, geo.strides, geo.dilations, geo.begin, geo.end, geo.out
    group = int(attrs.get("group", 1))
    n, c = x.shape[:2]
    m = w.shape[0]
    xp = pad_spatial(x, begin, end)
    if kernel == [1, 1] and list(strides) == [1, 1] and group == 1:
        y = np.matmul(w.reshape(m, c), xp.reshape(n, c, -1)).reshape(n, m, *out)
    else:
        cols = windows(xp, kernel, strides, dilations, out)  # N, C, kh, kw, oh, ow
        cg, mg = c // group, m // group
        k = cg * kernel[0] * kernel[1]
        cols = cols.reshape(n, group, k, out[0] * out[1])
        wg = w.reshape(group, mg, k)
        y = np.matmul(wg[None], cols).reshape(n, m, *out)
    if b is not None:
        y += b.reshape(1, m, 1, 1).astype(y.dtype, copy=False)
    if residual is not None:
        y = (y + residual).astype(y.dtype, copy=False)
    return apply_post_ops(apply_activation(y, attrs.get("activation")), attrs)


def _all_float32(x: np.ndarray, w: np.ndarray, residual: np.ndarray | None) -> bool:
    """Whether the compiled float32 kernels take these operands."""
    return x.dtype == w.dtype == np.float32 and (residual is None or residual.dtype == np.float32)


@functools.lru_cache(maxsize=512)
def _offsets(channels: int, padded: tuple[int, int], kernel: tuple[int, int], strides: tuple[int, int],
             dilations: tuple[int, int], out: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The implicit im2col of a padded (C, Hp, Wp) plane stack: the flat offset of each (c, i, j) kernel
    tap and of each (oh, ow) output window's origin; tap + origin indexes the input read."""
    hp, wp = padded
    cc, ii, jj = np.meshgrid(np.arange(channels), np.arange(kernel[0]), np.arange(kernel[1]), indexing="ij")
    taps = (cc * hp * wp + ii * dilations[0] * wp + jj * dilations[1]).reshape(-1).astype(np.int64)
    oy, ox = np.meshgrid(np.arange(out[0]), np.arange(out[1]), indexing="ij")
    origins = (oy * strides[0] * wp + ox * strides[1]).reshape(-1).astype(np.int64)
    taps.flags.writeable = origins.flags.writeable = False
    return taps, origins


def _phased(geo: Geometry, size: tuple[int, int], n: int, group: int, unpadded: bool) -> tuple[int, int] | None:
    """(qh, qw), the size of each stride phase of the zero-bordered input of spatial ``size``, when a strided float
    convolution reads it split into its phases (each tap's row of the implicit im2col is then a run of adjacent values,
    not a strided gather); None otherwise. One image and one group, a kernel larger than its strides' 1x1, no
    dilation, and a border to write anyway (an unbordered input is read in place)."""
    strides = tuple(geo.strides)
    if n != 1 or group != 1 or unpadded or strides == (1, 1) or tuple(geo.dilations) != (1, 1) \
            or tuple(geo.kernel) == (1, 1):
        return None
    return tuple(-(-(size[k] + geo.begin[k] + geo.end[k]) // strides[k]) for k in range(2))


@functools.lru_cache(maxsize=512)
def _phase_offsets(channels: int, phases: tuple[int, int], kernel: tuple[int, int], strides: tuple[int, int],
                   out: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``_offsets`` for input split into stride phases (channels, sh, sw, qh, qw): tap (c, i, j) reads phase
    (i % sh, j % sw) at row i // sh, column j // sw from each output's origin oy * qw + ox; the taps keep the
    (c, i, j) order, so the GEMM sums in the same order as from the bordered planes."""
    (qh, qw), (sh, sw) = phases, strides
    cc, ii, jj = np.meshgrid(np.arange(channels), np.arange(kernel[0]), np.arange(kernel[1]), indexing="ij")
    taps = ((((cc * sh + ii % sh) * sw + jj % sw) * qh + ii // sh) * qw + jj // sw).reshape(-1).astype(np.int64)
    oy, ox = np.meshgrid(np.arange(out[0]), np.arange(out[1]), indexing="ij")
    origins = (oy * qw + ox).reshape(-1).astype(np.int64)
    taps.flags.writeable = origins.flags.writeable = False
    return taps, origins


@memo_by_attrs
def _float_runner(attrs: dict, x_shape: tuple, w_shape: tuple):
    """The compiled float32 convolution of one node for inputs of these shapes, prepared once (geometry,
    epilogue, im2col offsets): ``run(x, w, b, residual)`` (the node's arrays are passed in, not held, so
    the cache keeps no model alive). The depthwise kernel for one filter per channel, else the GEMM
    (implicit im2col, threaded); the epilogue fused, an activation the kernels do not have (LeakyRelu)
    applied after."""
    geo = _geometry(x_shape, w_shape, attrs)
    group = int(attrs.get("group", 1))
    act = attrs.get("activation")
    fused = float_epilogue(act)
    lo, hi, code, alpha, beta, slopes = fused or float_epilogue(None)
    post = float_post_ops(attrs) if fused is not None else None
    n, c, h, width = x_shape
    m = w_shape[0]

    def finish(y: np.ndarray) -> np.ndarray:
        return y if fused is not None else apply_post_ops(apply_activation(y, act), attrs)

    if group == c and w_shape[1] == 1 and m == c:
        geometry = (n, c, h, width, *geo.kernel, *geo.out, *geo.strides, *geo.dilations, *geo.begin, lo, hi)

        def depthwise(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, residual: np.ndarray | None) -> np.ndarray:
            y = np.empty((n, c, *geo.out), dtype=np.float32)
            _native.depthwise_conv2d(np.ascontiguousarray(x), np.ascontiguousarray(w), _contiguous_bias(b), y,
                                     *geometry, None if residual is None else np.ascontiguousarray(residual), code,
                                     alpha, beta, slopes, post)
            return finish(y)

        return depthwise
    padded = (h + geo.begin[0] + geo.end[0], width + geo.begin[1] + geo.end[1])
    unpadded = not any(geo.begin) and not any(geo.end)
    phased = _phased(geo, (h, width), n, group, unpadded)
    if phased is not None:
        taps, origins = _phase_offsets(c, phased, tuple(geo.kernel), tuple(geo.strides), tuple(geo.out))
    else:
        taps, origins = _offsets(c // group, padded, tuple(geo.kernel), tuple(geo.strides), tuple(geo.dilations),
                                 tuple(geo.out))
    count = m // group
    shape = (count, taps.size, origins.size)

    def source_of(x: np.ndarray) -> np.ndarray:
        if phased is not None:
            source = np.empty((c, *geo.strides, *phased), dtype=np.float32)
            _native.phase_planes(np.ascontiguousarray(x), source, c, h, width, *geo.begin, *phased, *geo.strides)
            return source
        return np.ascontiguousarray(x) if unpadded else _padded_planes(x, "f", 0, geo.begin, geo.end)

    def gemm(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, residual: np.ndarray | None) -> np.ndarray:
        y = np.empty((n, m, geo.out[0] * geo.out[1]), dtype=np.float32)
        source = source_of(x)
        bias = _contiguous_bias(b)
        r = None if residual is None else np.ascontiguousarray(residual).reshape(n, m, -1)

        def call(weights, image, dst, i, g, c0, rows):
            _native.conv_gemm(weights, image, taps, origins, None if bias is None else bias[c0:c0 + rows], dst,
                              *shape, lo, hi, None if r is None else r[i, c0:c0 + rows], code, alpha, beta,
                              None if slopes is None else slopes[c0:c0 + rows], post)

        if group == 1 and n == 1:  # one GEMM: no per-group views
            call(np.ascontiguousarray(w), source, y, 0, 0, 0, m)
        else:
            _run_groups(source, _layout(c, padded, w, group, geo), y, call)
        return finish(y.reshape(n, m, *geo.out))

    return gemm


def _padded_planes(x: np.ndarray, kind: str, zero: int, begin, end) -> np.ndarray:
    """The (N, C, H, W) planes of ``x`` as float32 inside zero borders ``begin``/``end`` (storage
    integers of ``kind`` B, b or h given minus ``zero``; kind f copies float32)."""
    n, c, h, w = x.shape
    ph, pw = h + begin[0] + end[0], w + begin[1] + end[1]
    out = np.empty((n, c, ph, pw), dtype=np.float32)
    if (ph, pw) == (h, w) and kind != "f":  # no border: one contiguous pass
        _native.center(np.ascontiguousarray(x), kind, zero, out)
    else:
        _native.pad_planes(np.ascontiguousarray(x), kind, zero, out, n * c, h, w, begin[0], begin[1], ph, pw)
    return out


@frozen
class GroupLayout:
    """How a convolution's GEMM reads a padded (C, Hp, Wp) input image: the implicit im2col offsets,
    the weights of each group as (group, channels, taps) and the input elements of one group."""

    taps: np.ndarray
    origins: np.ndarray
    weights: np.ndarray
    plane: int


def _layout(channels: int, padded: tuple[int, int], w: np.ndarray, group: int, geo: Geometry) -> GroupLayout:
    taps, origins = _offsets(channels // group, padded, tuple(geo.kernel), tuple(geo.strides), tuple(geo.dilations),
                             tuple(geo.out))
    weights = np.ascontiguousarray(w).reshape(group, w.shape[0] // group, -1)
    return GroupLayout(taps, origins, weights, (channels // group) * padded[0] * padded[1])


def _run_groups(source: np.ndarray, layout: GroupLayout, y: np.ndarray, call) -> None:
    """``call(weights, image, dst, index, group, first_channel, channels)`` for each image and group of the
    padded input ``source`` (float32, or 8-bit storage for the integer kernel): one group's GEMM into
    ``dst``."""
    count = layout.weights.shape[1]
    for i in range(source.shape[0]):
        image = source[i].reshape(-1)
        for g in range(layout.weights.shape[0]):
            call(layout.weights[g], image[g * layout.plane:(g + 1) * layout.plane], y[i, g * count:(g + 1) * count],
                 i, g, g * count, count)


def kernel(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]:
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    residual = residual_of(inputs, attrs)
    if x.ndim == 3:
        y = conv2d(as_2d(x), as_2d(w), b, spatial_attrs_2d(attrs, 1), None if residual is None else as_2d(residual))
        y = y[:, :, 0, :]
    else:
        y = conv2d(x, w, b, attrs, residual)
    return [y]


def prepare(attrs: dict, constants: list, computed: tuple[int, ...]):
    """``kernel`` of a 2-D node with constant float32 weights (and bias) prepared once for a plan: the compiled
    runner of each input shape it meets; None when the weights are computed or not float32."""
    w, b = constants[1], constants[2] if len(constants) > 2 else None
    if w is None or np.ndim(w) != 4 or w.dtype != np.float32 or any(k not in (0, 3) for k in computed):
        return None
    fused = 3 in computed and bool(int(attrs.get("fused_add", 0)))
    runners: dict[tuple, object] = {}

    def call(inputs: list) -> list[np.ndarray]:
        x, residual = inputs[0], inputs[3] if fused else None
        if x.ndim != 4 or not _all_float32(x, w, residual):
            return kernel(given_inputs(inputs, constants, computed), attrs)
        run = runners.get(x.shape)
        if run is None:
            run = runners[x.shape] = _float_runner(attrs, x.shape, w.shape)
        return [run(x, w, b, residual)]

    return call


def prepare_chain(attrs: dict, constants: list, computed: tuple[int, ...], consumer: ChainNode):
    """A pointwise Conv and the depthwise Conv that alone reads it (an inverted residual block's expand and
    depthwise layers) as one call: ``pw_dw_conv`` keeps the expanded tensor in cache and gives the two
    kernels' values. None unless both have constant float32 4-D weights, no residual and an epilogue the
    compiled kernels have; inputs of other shapes (a batch, padding or strides on the pointwise one) run
    the two prepared nodes one after the other."""
    if consumer.op != "Conv" or computed != (0,) or consumer.computed != (0,):
        return None
    first, second = prepare(attrs, constants, computed), prepare(consumer.attrs, consumer.constants, consumer.computed)
    w1, w2 = constants[1], consumer.constants[1]
    epilogues = _chain_epilogue(attrs), _chain_epilogue(consumer.attrs)
    if first is None or second is None or None in epilogues or w1.shape[2:] != (1, 1) or w2.shape[1] != 1 \
            or int(attrs.get("group", 1)) != 1 or not int(consumer.attrs.get("group", 1)) == w2.shape[0] == w1.shape[0]:
        return None
    biases = [_contiguous_bias(c[2] if len(c) > 2 else None) for c in (constants, consumer.constants)]
    operands = (np.ascontiguousarray(w1.reshape(w1.shape[:2])), biases[0],
                np.ascontiguousarray(w2.reshape(w2.shape[0], -1)), biases[1])
    runners: dict[tuple, object] = {}

    def call(inputs: list) -> list[np.ndarray]:
        x = inputs[0]
        if x.shape not in runners:
            runners[x.shape] = _chain_runner(attrs, consumer.attrs, x, w1.shape, w2.shape, operands, epilogues)
        run = runners[x.shape]
        y = run(x) if run is not None and x.dtype == np.float32 else None
        if y is not None:
            return [y]
        if run is not None and x.dtype == np.float32:  # declined (it depends on the shapes alone): not asked again
            runners[x.shape] = None
        return second(first(inputs))

    return call


def _chain_epilogue(attrs: dict) -> tuple | None:
    """``pw_dw_conv``'s epilogue argument for a node: (lo, hi, act, alpha, beta, slopes, post); None when the
    node adds a residual or has an activation the kernels do not."""
    fused = float_epilogue(attrs.get("activation"))
    if fused is None or int(attrs.get("fused_add", 0)):
        return None
    return (*fused, float_post_ops(attrs))


def _contiguous_bias(b: np.ndarray | None) -> np.ndarray | None:
    """A bias as the compiled kernels read it: contiguous float32, or None."""
    return None if b is None else np.ascontiguousarray(b, dtype=np.float32)


def _chain_runner(pointwise: dict, depthwise: dict, x: np.ndarray, w1_shape: tuple, w2_shape: tuple, operands: tuple,
                  epilogues: tuple):
    """``run(x)`` of ``prepare_chain`` for inputs shaped as ``x`` (None from it where ``pw_dw_conv`` declines: the
    two kernels cost less), or None when the pointwise node does not map one image's pixels one to one (a batch,
    pads, strides)."""
    if x.ndim != 4 or x.shape[0] != 1:
        return None
    n, c, h, w = x.shape
    first = _geometry(x.shape, w1_shape, pointwise)
    if any(first.begin) or any(first.end) or list(first.strides) != [1, 1] or list(first.out) != [h, w]:
        return None
    m = w1_shape[0]
    geo = _geometry((n, m, h, w), w2_shape, depthwise)
    shape = (c, m, h, w, *geo.kernel, *geo.out, *geo.strides, *geo.dilations, *geo.begin)

    def run(x: np.ndarray) -> np.ndarray | None:
        y = np.empty((n, m, *geo.out), dtype=np.float32)
        done = _native.pw_dw_conv(np.ascontiguousarray(x), operands[0], operands[1], operands[2], operands[3], y,
                                  *shape, *epilogues)
        return y if done else None

    return run


def quant_kernel(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """Integer convolution: exact sums of centered products (float32 when the weights' L1 bound
    allows, else float64), + int32 bias, fixed-point requantize per output channel, fused
    activation as output bounds (LeakyRelu: a second multiplier for negative sums); a fused residual
    and table activation as the unfused graph computes them (ops/_epilogue.py)."""
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    residual = residual_of(inputs, attrs)
    x_q, w_q, o_q = in_q[0], in_q[1], out_q[0]
    if w_q.axis not in (None, 0):
        raise RknnError(f"Conv per-channel weights must be quantized along axis 0, not {w_q.axis}")
    r_q = None if residual is None else in_q[3]
    run = _integer_runner(attrs, x.shape, x.dtype, residual is not None and residual.dtype,
                          objects=(w, b, x_q, w_q, o_q, r_q))
    if run is not None:
        return [run(x, residual)]
    stages = _stages(attrs, objects=(o_q, r_q))
    wc, dtype = weight_plan(w, w_q, x_q, 0)
    act = attrs.get("activation")
    plain = {k: v for k, v in attrs.items() if k not in ("activation", "post_ops")}
    acc = kernel([centered(x, x_q, dtype), wc], plain)[0]
    leaky = act if act and act.get("op") == "LeakyRelu" else None
    y = requantize_accumulator(acc, x_q, w_q, stages.conv_q, 1, stages.conv_bounds, b, leaky)
    return [finish_quantized(y, residual, stages)]


def quant_prepare(in_q: list, out_q: list, attrs: dict, constants: list, computed: tuple[int, ...]):
    """``quant_kernel`` of a node with constant weights (and bias) prepared once for a plan: the compiled runner
    of each input shape it meets, worked out on first sight; None when the weights are computed."""
    w = constants[1]
    if w is None or any(k not in (0, 3) for k in computed) or in_q[1].axis not in (None, 0):
        return None
    b = constants[2] if len(constants) > 2 else None
    fused = 3 in computed and bool(int(attrs.get("fused_add", 0)))
    objects = (w, b, in_q[0], in_q[1], out_q[0], in_q[3] if fused else None)
    runners: dict[tuple, object] = {}

    def call(inputs: list) -> list[np.ndarray]:
        x, residual = inputs[0], inputs[3] if fused else None
        key = (x.shape, x.dtype, residual is not None and residual.dtype)
        run = runners.get(key, False)
        if run is False:
            run = runners[key] = _integer_runner(attrs, *key, objects=objects)
        if run is None:
            return quant_kernel(given_inputs(inputs, constants, computed), in_q, out_q, attrs)
        return [run(x, residual)]

    return call


@memo_by_attrs
def _stages(attrs: dict, o_q, r_q) -> QuantStages:
    return quant_stages(attrs, o_q, r_q)


def _fused_integer(ndim: int, x_dtype, act, x_q, o_q) -> bool:
    """Whether the compiled integer kernels apply: 2-D, no LeakyRelu (the other activations are bounds or
    tables), 8/16-bit per-tensor storage in and out."""
    return (ndim == 4 and (not act or act.get("op") != "LeakyRelu")
            and x_q.qtype in STORAGE_KINDS and o_q.qtype in STORAGE_KINDS and x_q.axis is None
            and x_dtype == np.dtype(QTYPES[x_q.qtype][2]))


def _is_depthwise(x_shape, wc, attrs) -> bool:
    return int(attrs.get("group", 1)) == x_shape[1] == wc.shape[0] and wc.shape[1] == 1


def _requant(wc, b, x_q, w_q, conv_q, bounds, group: int) -> tuple[RequantPlan, list]:
    """The requantization plan of a quantized convolution's sums into ``conv_q`` (within ``bounds``) and
    its per-group (first channel, count, bias, multipliers, shifts) slices; cached with the node's
    centered weights."""
    channels = wc.shape[0]

    def make(_):
        multipliers = x_q.scale[0] * np.asarray(w_q.scale, dtype=np.float64) / conv_q.scale[0]
        plan = requant_plan(multipliers, conv_q.qtype, bounds, channels, b)
        count = channels // group
        parts = []
        for c0 in range(0, channels, count):
            part = slice(c0, c0 + count) if plan.mult.size > 1 else slice(0, 1)
            parts.append((c0, count, None if plan.bias is None else plan.bias[c0:c0 + count], plan.mult[part],
                          plan.shift[part]))
        return plan, parts

    key = ("conv_requant", x_q.scale, w_q.scale, conv_q.qtype, conv_q.scale, conv_q.zero_point, bounds,
           None if b is None else id(b), group)
    return derived(wc, key, make)


@memo_by_attrs
def _integer_runner(attrs: dict, x_shape: tuple, x_dtype: np.dtype, r_dtype, w, b, x_q, w_q, o_q, r_q):
    """The compiled integer convolution of one node for inputs of this shape, prepared once (geometry,
    offsets, requantization slices, weights per group, epilogue stages); None when the compiled kernels
    do not apply."""
    wc, dtype = weight_plan(w, w_q, x_q, 0)
    if not _fused_integer(len(x_shape), x_dtype, attrs.get("activation"), x_q, o_q):
        return None
    stages = _stages(attrs, objects=(o_q, r_q))
    post = compiled_post(stages, r_dtype)
    if post is None:
        return None
    if _is_depthwise(x_shape, wc, attrs):  # exact float32 sums only
        return _depthwise_runner(x_shape, wc, b, x_q, w_q, stages, post, attrs) if dtype is np.float32 else None
    return _gemm_runner(x_shape, wc, b, x_q, w_q, stages, post, attrs)


def _gemm_runner(x_shape, wc, b, x_q, w_q, stages: QuantStages, post: CompiledPost, attrs):
    """Integer convolution on the compiled GEMM, each finished block requantized (and its epilogue run) on
    the thread that computed it: on the 8-bit kernels (AVX-512 VNNI or AVX2, exact int32 sums) where the CPU has
    them and the weights fit signed bytes after a shift per row, reading the 8-bit storage (bordered with
    the zero point when padded); else exact float32 sums of centered values (1x1 kernels read the 8-bit
    storage while packing, others a centered zero-bordered copy)."""
    geo = _geometry(x_shape, wc.shape, attrs)
    group = int(attrs.get("group", 1))
    plan, parts = _requant(wc, b, x_q, w_q, stages.conv_q, stages.conv_bounds, group)
    kind, x_zero = STORAGE_KINDS[x_q.qtype], int(x_q.zero_point[0])
    unpadded = not any(geo.begin) and not any(geo.end)
    n, c, h, w = x_shape
    m, zero = wc.shape[0], int(stages.conv_q.zero_point[0])
    padded = (h + geo.begin[0] + geo.end[0], w + geo.begin[1] + geo.end[1])
    layout = _layout(c, padded, wc, group, geo)
    int8 = _int8_groups(layout, x_q) if min(*geo.begin, *geo.end) >= 0 else None
    if int8 is None and wc.dtype != np.float32:
        return None  # sums beyond float32's exact integers: only the int32 lanes hold them
    direct = int8 is not None or (unpadded and kind in ("B", "b"))
    source_kind, source_zero = (kind, x_zero) if direct else ("f", 0)

    def source_of(x: np.ndarray) -> np.ndarray:
        if unpadded and direct:
            return np.ascontiguousarray(x)
        if direct:  # the storage itself inside a border of zero points
            return pad_spatial(x, geo.begin, geo.end, x_zero)
        return _padded_planes(x, kind, x_zero, geo.begin, geo.end)

    gemm = _native.qconv_gemm if int8 is None else _native.qconv_gemm_u8
    shape = (m // group, layout.taps.size, layout.origins.size)
    after = (plan.kind, zero, plan.lo, plan.hi, *shape)  # the arguments after the output, but the epilogue's
    before, between, last = [], [], []  # each group's arguments before the image, between it and the output, and
    # after the epilogue's (its table, then the 8-bit GEMM's weights as this CPU reads them)
    for g, (c0, count, bias, mult, shift) in enumerate(parts):
        before.append((layout.weights[g],) if int8 is None else int8[g])
        between.append(((source_kind, source_zero) if int8 is None else (kind,))
                       + (layout.taps, layout.origins, bias, mult, shift, plan.pot))
        table = post.table if post.table is None or post.table.ndim == 1 else post.table[c0:c0 + count]
        last.append((table,) if int8 is None else (table, int8_pairs(int8[g])))

    def call(add, weights, image, dst, i, g, c0, count):
        part = None if add is None else (add[0][i, c0:c0 + count], *add[1:])
        gemm(*before[g], image, *between[g], dst, *after, part, *last[g])

    out_shape = (n, m, *geo.out)

    def run(x: np.ndarray, residual: np.ndarray | None) -> np.ndarray:
        y = np.empty(out_shape, dtype=plan.dtype)
        add, source = post.add(residual), source_of(x)
        if group == 1 and n == 1:  # one GEMM: no per-group views
            gemm(*before[0], source.reshape(-1), *between[0], y, *after, None if add is None else (add[0][0], *add[1:]),
                 *last[0])
        else:
            _run_groups(source, layout, y.reshape(n, m, -1), functools.partial(call, add))
        return y

    return run


def _int8_groups(layout: GroupLayout, x_q) -> list | None:
    """Each group's operands of the 8-bit GEMM, or None when it does not apply to one of them
    (``int8_gemm_operands``)."""
    groups = [int8_gemm_operands(weights, x_q) for weights in layout.weights]
    return None if any(g is None for g in groups) else groups


def int8_pairs(operands: tuple):
    """The 8-bit GEMM's weights (``operands``' a8) as this CPU's kernels read them, made once: qconv_gemm_u8's
    last argument (None where they read a8 itself)."""
    a8 = operands[0]
    return _native.int8_pairs(a8, *a8.shape)


def int8_gemm_operands(weights: np.ndarray, x_q) -> tuple | None:
    """The operands of the 8-bit GEMM (a8, row terms, row d) for centered weights (rows, k) times activations of
    parameters ``x_q``, or None when it does not apply: a CPU without it, 16-bit storage, weights that do not
    fit a byte after a shift per row, sums that could reach 2**30 (the int32 requantization's bound)."""
    kind = STORAGE_KINDS.get(x_q.qtype)
    if kind not in ("B", "b") or not _native.int8_gemm():
        return None
    if np.abs(weights).sum(axis=1).max(initial=0) * span(x_q) >= INT32_SUMS:
        return None
    return int8_operands(weights, int(x_q.zero_point[0]) + (128 if kind == "b" else 0))  # the byte of a centered 0


def _depthwise_runner(x_shape, wc, b, x_q, w_q, stages: QuantStages, post: CompiledPost, attrs):
    """Integer depthwise convolution in one compiled pass (center, exact float32 sums, requantize, epilogue)."""
    geo = _geometry(x_shape, wc.shape, attrs)
    n, c = x_shape[:2]
    plan, _ = _requant(wc, b, x_q, w_q, stages.conv_q, stages.conv_bounds, 1)
    kind, x_zero, zero = STORAGE_KINDS[x_q.qtype], int(x_q.zero_point[0]), int(stages.conv_q.zero_point[0])
    geometry = (*x_shape[2:], *geo.kernel, *geo.out, *geo.strides, *geo.dilations, *geo.begin)

    def run(x: np.ndarray, residual: np.ndarray | None) -> np.ndarray:
        y = np.empty((n, c, *geo.out), dtype=plan.dtype)
        _native.qdepthwise_conv2d(np.ascontiguousarray(x), kind, x_zero, wc, plan.bias, plan.mult, plan.shift,
                                  plan.pot, y, plan.kind, zero, plan.lo, plan.hi, n, c, *geometry,
                                  post.add(residual), post.table)
        return y

    return run


def cost(inputs: list[TensorInfo | None], outputs: list[TensorInfo], attrs: dict) -> Cost:
    w = inputs[1]
    per_output = int(np.prod(w.shape[1:]))
    moved = sum(i.nbytes for i in inputs if i is not None) + outputs[0].nbytes
    return Cost(outputs[0].size * per_output, moved)


OPS = [OpDef("Conv", infer, kernel, cost, 2, 4, quant_kernel=quant_kernel, quant_bias_input=2,
             quant_weight_axes=lambda attrs: {1: 0}, prepare=prepare, quant_prepare=quant_prepare,
             prepare_chain=prepare_chain,
             doc="N-channel convolution (1-D and 2-D), groups, dilations, pads, auto_pad; NCHW. Fused epilogue: "
                 "activation (Relu, Clip, LeakyRelu, HardSigmoid, HardSwish, PRelu) and, with fused_add=1, a residual "
                 "input 3 added after the bias.")]
