"""Shared pieces of the ops' integer kernels: real-domain offsets, exact float accumulation,
activation bounds, LUTs, requantization (compiled, bit-equal to ``quant.fixedpoint``).

Exactness of float accumulation: a sum of integer products whose absolute values add up to less
than 2**24 is exact in float32 in any order (every partial sum is an integer below 2**24), so BLAS
may block, reorder and fuse it. For constant weights the bound is taken per output channel from the
actual weights (the L1 norm of the centered weights times the largest centered activation), which
lets most 8-bit layers run in float32; otherwise float64 (exact below 2**53).
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Callable

import numpy as np
from attrs import frozen as attrs_frozen

from rknn_core.ir import QuantParams
from rknn_core.kernels_backend import native as _native
from rknn_core.ops._common import memo_by_attrs
from rknn_core.quant.fixedpoint import multiplier_plan, multiply, quantize_multiplier, requantize
from rknn_core.quant.params import ARRAY_KINDS, QTYPES, STORAGE_KINDS, _broadcast, dequantize, quantize

EXACT_FLOAT32 = 2**24  # integers below this add exactly in float32
STORAGE_DTYPES = {qtype: np.dtype(dtype) for qtype, (_, _, dtype) in QTYPES.items()}


def centered(v: np.ndarray, q: QuantParams, dtype=np.float64) -> np.ndarray:
    """Storage integers minus the zero point (per channel along ``q.axis``), as ``dtype``."""
    zero = _broadcast(q.zero_point, q, np.ndim(v))
    if zero.ndim == 0:
        return np.subtract(v, dtype(zero), dtype=dtype)
    return np.asarray(v, dtype=dtype) - zero.astype(dtype)


def centered_int(v: np.ndarray, q: QuantParams) -> np.ndarray:
    """Storage integers minus the zero point (per channel along ``q.axis``) as int32 for 8-bit types (a
    product of two still fits int32), else int64."""
    dtype = np.int32 if q.qtype in ("u8", "i8") else np.int64
    return np.subtract(v, _broadcast(q.zero_point, q, np.ndim(v)).astype(dtype), dtype=dtype)


def span(q: QuantParams) -> int:
    """The largest |storage - zero_point| a tensor with parameters ``q`` can hold."""
    lo, hi, _ = QTYPES[q.qtype]
    return max(max(abs(hi - z), abs(lo - z)) for z in q.zero_point)


def exact_dtype(terms: int, x_q: QuantParams, w_q: QuantParams) -> type:
    """float32 when sums of ``terms`` products of centered values stay exact in it, else float64."""
    return np.float32 if terms * span(x_q) * span(w_q) < EXACT_FLOAT32 else np.float64


_DERIVED: dict[tuple, tuple] = {}


def derived(array: np.ndarray, tag: tuple, make: Callable[[np.ndarray], object]):
    """``make(array)``, cached while ``array`` lives (constants are the same object every run)."""
    key = (id(array), *tag)
    hit = _DERIVED.get(key)
    if hit is not None and hit[0]() is array:
        return hit[1]
    value = make(array)
    try:
        _DERIVED[key] = (weakref.ref(array), value)
        weakref.finalize(array, _DERIVED.pop, key, None)
    except TypeError:  # not weak-referenceable: no caching
        pass
    return value


def weight_plan(w: np.ndarray, w_q: QuantParams, x_q: QuantParams, out_axis: int) -> tuple[np.ndarray, type]:
    """Centered constant weights in the accumulation dtype: float32 when, for every output channel
    (``out_axis`` of ``w``), the L1 norm of its centered weights times ``span(x_q)`` is below 2**24.
    Cached per weight array (the executor passes the same constant every run)."""

    def make(w: np.ndarray) -> tuple[np.ndarray, type]:
        wc = centered(w, w_q, np.float64)
        axes = tuple(a for a in range(wc.ndim) if a != out_axis % max(wc.ndim, 1))
        l1 = np.abs(wc).sum(axis=axes).max(initial=0.0)
        dtype = np.float32 if l1 * span(x_q) < EXACT_FLOAT32 else np.float64
        return np.ascontiguousarray(wc, dtype=dtype), dtype

    return derived(w, ("weights", x_q.qtype, x_q.zero_point, w_q.zero_point, out_axis), make)


@functools.lru_cache(maxsize=4096)
def _plan(m: tuple[float, ...]) -> tuple[bool, np.ndarray, np.ndarray]:
    pot, mult, shift = multiplier_plan(np.asarray(m))
    return pot, np.ascontiguousarray(mult, np.int64), np.ascontiguousarray(shift, np.int64)


def activation_bounds(act: dict | None, q: QuantParams) -> tuple[int, int] | None:
    """A fused Relu/Clip as storage bounds of the output (None: no clamp beyond the type)."""
    if not act:
        return None
    return _bounds(act.get("op"), act.get("min"), act.get("max"), q.qtype, q.scale, q.zero_point)


@functools.lru_cache(maxsize=4096)
def _bounds(op: str | None, low_value, high_value, qtype: str, scale: tuple, zero_point: tuple
            ) -> tuple[int, int] | None:
    act = {"op": op, "min": low_value, "max": high_value}
    q = QuantParams(qtype, scale, zero_point)
    lo, hi, _ = QTYPES[q.qtype]
    if act.get("op") == "Relu":
        return int(quantize(np.float64(0.0), q)), hi
    if act.get("op") == "Clip":
        low = lo if act.get("min") is None else int(quantize(np.float64(act["min"]), q))
        high = hi if act.get("max") is None else int(quantize(np.float64(act["max"]), q))
        return low, high
    return None


@attrs_frozen
class RequantPlan:
    """What the compiled kernels need to requantize per channel: the fixed-point multipliers (or
    power-of-two shifts), the int64 bias, the output bounds and storage kind."""

    pot: bool
    mult: np.ndarray
    shift: np.ndarray
    bias: np.ndarray | None
    lo: int
    hi: int
    dtype: type
    kind: str


def requant_plan(m, qtype: str, bounds: tuple[int, int] | None, channels: int,
                 bias: np.ndarray | None) -> RequantPlan:
    """The requantization of ``channels`` channels by multipliers ``m`` (1 or per channel) to ``qtype``."""
    lo, hi, dtype = QTYPES[qtype]
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    pot, mult, shift = _plan(tuple(np.asarray(m, dtype=np.float64).reshape(-1).tolist()))
    b = None
    if bias is not None:
        b = derived(bias, ("bias", channels), lambda v: np.ascontiguousarray(
            np.broadcast_to(np.asarray(v, np.int64).reshape(-1), (channels,)))) if isinstance(bias, np.ndarray) \
            else np.broadcast_to(np.asarray(bias, np.int64).reshape(-1), (channels,)).copy()
    return RequantPlan(pot, mult, shift, b, lo, hi, dtype, STORAGE_KINDS.get(qtype, ""))


def exact_chunks(wc: np.ndarray, x_q: QuantParams) -> list[tuple[int, int, np.ndarray]]:
    """Splits of the inner axis of centered weights ``wc`` (rows: output channels) into runs whose sums
    of products with centered activations stay exact in float32: (start, stop, float32 rows of the run).
    Cached per weight array."""

    def make(wc: np.ndarray) -> list:
        limit = EXACT_FLOAT32 / max(span(x_q), 1)
        magnitude = np.abs(np.asarray(wc, dtype=np.float64))
        chunks, start, running = [], 0, np.zeros(wc.shape[0])
        for j in range(wc.shape[1]):
            running += magnitude[:, j]
            if running.max(initial=0.0) >= limit and j > start:
                chunks.append(start)
                start, running = j, magnitude[:, j].copy()
        chunks.append(start)
        bounds = [*chunks, wc.shape[1]]
        return [(s, e, np.ascontiguousarray(wc[:, s:e], dtype=np.float32)) for s, e in zip(bounds, bounds[1:])]

    return derived(wc, ("exact_chunks", x_q.qtype, x_q.zero_point), make)


def int8_operands(wc: np.ndarray, zero: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """Centered weights ``wc`` (m, k) as the 8-bit GEMM's operands for activations u - ``zero`` (u unsigned
    bytes): a8 = wc - d as signed bytes (k padded to a multiple of 4 with zeros), d per row (None when
    all zero), and the row terms -zero * sum(a8) - k * d * zero, so that sum(wc * (u - zero)) =
    sum(a8 * u) + d * sum(u) + row term. The kernel's int32 lanes wrap and so do the int32 row terms
    here: the true sums, below 2**24, come out exact. None when a row spans more than 255 or k is so
    large that sum(a8 * u) could leave int32."""
    m, k = wc.shape
    if k * 255 * 128 >= 2**31:
        return None
    w = np.asarray(wc, np.int64)
    lo, hi = w.min(axis=1, initial=0), w.max(axis=1, initial=0)
    if (hi - lo > 255).any():
        return None
    d = np.where((lo >= -128) & (hi <= 127), 0, lo + 128)
    a8 = np.zeros((m, (k + 3) // 4 * 4), np.int8)
    a8[:, :k] = w - d[:, None]
    terms = -zero * a8.sum(axis=1, dtype=np.int64) - k * d * zero

    def wrap(v):
        return ((v + 2**31) % 2**32 - 2**31).astype(np.int32)

    return a8, wrap(terms), wrap(d) if d.any() else None


def requantize_channels(acc: np.ndarray, m, zero_point: int, qtype: str, bounds: tuple[int, int] | None = None,
                        axis: int | None = None, bias: np.ndarray | None = None) -> np.ndarray:
    """``fixedpoint.requantize(acc + bias, m, ...)`` with ``m`` and ``bias`` per channel along ``axis``.

    ``acc`` holds integers (any int dtype, or exact integer values in float32/float64). Runs the
    compiled kernel when it can (it equals the numpy rules bit for bit), else numpy.
    """
    acc = np.asarray(acc)
    m = np.asarray(m, dtype=np.float64).reshape(-1)
    axis = None if axis is None or acc.ndim == 0 else axis % acc.ndim
    channels = 1 if axis is None else acc.shape[axis]
    kind = ARRAY_KINDS.get(acc.dtype)
    if kind is None or qtype not in STORAGE_KINDS or m.size not in (1, channels) or (bias is not None and axis is None):
        lo, hi, _ = QTYPES[qtype]
        if bounds is not None:
            lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
        return _requantize_numpy(acc, m, zero_point, qtype, (lo, hi), axis, bias)
    return requantize_by_plan(acc, requant_plan(m, qtype, bounds, channels, bias), zero_point, axis)


def requantizer(m, zero_point: int, qtype: str, channels: int = 1) -> Callable[..., np.ndarray]:
    """``requantize_channels(acc, m, zero_point, qtype, axis=axis)`` as ``call(acc, axis=None)`` for float32,
    float64, int32 or int64 ``acc`` with ``channels`` channels along ``axis``, the plan worked out once (kernels
    keep it per node)."""
    m = np.asarray(m, dtype=np.float64).reshape(-1)
    if qtype not in STORAGE_KINDS or m.size not in (1, channels):
        return lambda acc, axis=None: requantize_channels(acc, m, zero_point, qtype, axis=axis)
    plan = requant_plan(m, qtype, None, channels, None)
    return lambda acc, axis=None: requantize_by_plan(acc, plan, zero_point, axis)


def requantize_by_plan(acc: np.ndarray, plan: RequantPlan, zero_point: int, axis: int | None) -> np.ndarray:
    """``acc`` (float32, float64, int32 or int64 integer values) requantized on the compiled kernel by a plan of one
    multiplier, or of one per channel along ``axis`` (non-negative); kernels that run a node again and again
    keep the plan."""
    acc = np.ascontiguousarray(acc)
    channels = 1 if axis is None else acc.shape[axis]
    outer = math.prod(acc.shape[:axis]) if axis is not None else 1
    inner = math.prod(acc.shape[axis + 1:]) if axis is not None else acc.size
    out = np.empty(acc.shape, dtype=plan.dtype)
    _native.requantize(acc, ARRAY_KINDS[acc.dtype], plan.bias, plan.mult, plan.shift, plan.pot, out, plan.kind, outer,
                       channels, inner, int(zero_point), plan.lo, plan.hi)
    return out


def _requantize_numpy(acc, m, zero_point, qtype, bounds, axis, bias):
    shape = [1] * acc.ndim
    if axis is not None:
        shape[axis] = -1
    total = to_int(acc) if acc.dtype.kind == "f" else acc.astype(np.int64)
    if bias is not None:
        total = total + np.asarray(bias, np.int64).reshape(shape)
    return requantize(total, m.reshape(shape) if m.size > 1 else m.reshape(()), zero_point, qtype, bounds)


def requantize_accumulator(acc: np.ndarray, x_q: QuantParams, w_q: QuantParams, out_q: QuantParams,
                           channel_axis: int, bounds: tuple[int, int] | None = None,
                           bias: np.ndarray | None = None, act: dict | None = None) -> np.ndarray:
    """Accumulators of x*w products (+ int32 ``bias``) to output storage: scale x_s*w_s/out_s per
    output channel; a fused Relu/Clip as ``bounds``; a fused LeakyRelu (``act``) applies the
    multiplier times alpha to negative accumulators (two multipliers, as TFLite's LEAKY_RELU)."""
    m = x_q.scale[0] * np.asarray(w_q.scale, dtype=np.float64) / out_q.scale[0]
    axis = channel_axis if m.size > 1 or bias is not None else None
    zp, qtype = out_q.zero_point[0], out_q.qtype
    out = requantize_channels(acc, m, zp, qtype, bounds, axis, bias)
    if act and act.get("op") == "LeakyRelu":
        neg = requantize_channels(acc, m * float(act.get("alpha", 0.01)), zp, qtype, bounds, axis, bias)
        total = acc if bias is None else acc + _along(np.asarray(bias), acc.ndim, channel_axis).astype(acc.dtype)
        out = np.where(total < 0, neg, out)
    return out


def _along(v: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return v.reshape(shape)


def to_int(acc: np.ndarray) -> np.ndarray:
    """Exact integer-valued float accumulators to int64."""
    return np.rint(acc).astype(np.int64)


def lut_table(fn: Callable[[np.ndarray], np.ndarray], in_q: QuantParams, out_q: QuantParams) -> np.ndarray:
    """table[q - lowest code] = quantize(fn(dequantize(q))) for every storage code q of ``in_q``."""
    lo, hi, dtype = QTYPES[in_q.qtype]
    real = dequantize(np.arange(lo, hi + 1, dtype=np.int64).astype(dtype), in_q)
    return quantize(np.asarray(fn(real), dtype=np.float64), out_q)


def code_lookup(table: np.ndarray, qtype: str) -> Callable[[np.ndarray], np.ndarray]:
    """``x -> table[x - lowest code]`` for storage ``x`` of ``qtype`` (``table`` lists every code's value); 8-bit
    codes index a copy ordered by their byte, without widening."""
    lo, _, dtype = QTYPES[qtype]
    storage = np.dtype(dtype)
    if storage.itemsize != 1:
        return lambda x: table[np.asarray(x, dtype=np.int64) - lo]
    by_byte = np.roll(table, lo)  # i8: the bytes 128..255 are the codes -128..-1
    bytes_out = by_byte.dtype.itemsize == 1
    # a dequantization (float32 values): planes8 with one channel, two thirds of take's time
    float_table = by_byte.reshape(1, 256) if by_byte.dtype == np.float32 else None

    def run(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype == storage and x.ndim:
            if bytes_out:
                return _looked_up(x, by_byte, 1, by_byte.dtype)
            if float_table is not None:
                out = np.empty(x.shape, np.float32)
                _native.planes8(np.ascontiguousarray(x), float_table, out, 1, x.size, 1, 4)
                return out
            return by_byte.take(x.view(np.uint8))
        return table[np.asarray(x, dtype=np.int64) - lo]

    return run


def tables_by_byte(tables: np.ndarray, qtype: str) -> np.ndarray | None:
    """Per-row tables of every code of ``qtype`` (lowest first) reordered to be indexed by the code's byte (i8: the
    bytes 128..255 are the codes -128..-1); None when the codes or the tables' values are not 8-bit."""
    lo, _, dtype = QTYPES[qtype]
    if np.dtype(dtype).itemsize != 1 or tables.dtype.itemsize != 1:
        return None
    return np.ascontiguousarray(np.roll(tables, lo, axis=1))


def rows_lookup(tables: np.ndarray, qtype: str) -> Callable[[np.ndarray], np.ndarray] | None:
    """``x -> out`` with out[n, r] = tables[r][x[n, r] - lowest code] for 8-bit storage ``x`` of ``qtype`` of
    shape (N, rows, ...), on the compiled lookup (one 256-entry byte table per row); None when the codes or
    the tables' values are not 8-bit."""
    by_byte = tables_by_byte(tables, qtype)
    if by_byte is None:
        return None
    repeated: dict[int, np.ndarray] = {}

    def run(x: np.ndarray) -> np.ndarray:
        batch = x.shape[0]
        if batch not in repeated:
            repeated[batch] = np.ascontiguousarray(np.tile(by_byte, (batch, 1)))
        return _looked_up(x, repeated[batch], batch * len(by_byte), by_byte.dtype)

    return run


def channels_last_planes(x: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """The planes (N, C, H, W) of channels-last bytes ``x`` (N, H, W, C) through one 256-entry table per channel,
    indexed by the byte: ``tables`` (C, 256) of bytes or float32, in one compiled pass."""
    n, h, w, c = x.shape
    out = np.empty((n, c, h, w), tables.dtype)
    _native.planes8(np.ascontiguousarray(x), np.ascontiguousarray(tables), out, n, h * w, c, tables.dtype.itemsize)
    return out


def _looked_up(x: np.ndarray, tables: np.ndarray, rows: int, dtype) -> np.ndarray:
    """8-bit ``x`` through 256-entry byte tables indexed by the code's byte on the compiled kernel: one table
    (``rows`` 1) or one per leading row of ``x`` (``tables`` (rows, 256)); the result has ``x``'s shape."""
    x = np.ascontiguousarray(x)
    out = np.empty(x.shape, dtype)
    _native.lookup8(x, tables, out, rows, x.size // max(rows, 1), rows > 1)
    return out


CODES_BY_BYTE = {qtype: np.arange(256, dtype=np.uint8).view(STORAGE_DTYPES[qtype]) for qtype in ("u8", "i8")}
TABLE_FRACTION = 1024  # per-row tables pay when the input has this many elements per table entry


def _params_key(q: QuantParams | None) -> tuple | None:
    return None if q is None else (q.qtype, q.scale, q.zero_point, q.axis)


def _table_axes(x_shape: tuple, other_shape: tuple) -> int | None:
    """How many leading axes of ``x`` an operand of ``other_shape`` varies along (it is constant along the
    rest and broadcasts into ``x`` without enlarging it); None when it varies along the last axis."""
    padded = (1,) * (len(x_shape) - len(other_shape)) + tuple(other_shape)
    if len(padded) != len(x_shape) or any(o not in (1, d) for o, d in zip(padded, x_shape)):
        return None
    k = max((i + 1 for i, o in enumerate(padded) if o != 1), default=0)
    return k if k < len(x_shape) else None


def lookup_by_code(x: np.ndarray, x_q: QuantParams, out_q: QuantParams, other: np.ndarray,
                   evaluate: Callable[[np.ndarray], np.ndarray], tag: tuple) -> np.ndarray | None:
    """``evaluate(x)``, an elementwise integer op of 8-bit storage ``x`` and a much smaller operand ``other``
    (constant along ``x``'s trailing axes) into 8-bit storage, as one code table per leading row of ``x``: the
    op evaluated on every code (so the same codes), then looked up on the compiled kernel. Tables are kept
    while ``other`` lives (``tag`` names the op and everything else it depends on). None when it does not
    apply or the tables would cost more than they save."""
    k = _table_axes(x.shape, np.shape(other))
    if (k is None or x_q.qtype not in CODES_BY_BYTE or out_q.qtype not in CODES_BY_BYTE
            or x.dtype != STORAGE_DTYPES[x_q.qtype]):
        return None
    rows = math.prod(x.shape[:k])
    if rows * TABLE_FRACTION > x.size:
        return None
    probe_shape = (*x.shape[:k], *(1,) * (x.ndim - k - 1), 256)

    def make(_) -> np.ndarray:
        codes = np.broadcast_to(CODES_BY_BYTE[x_q.qtype], probe_shape)
        table = np.asarray(evaluate(codes), dtype=STORAGE_DTYPES[out_q.qtype])  # codes of out_q: exact
        return np.ascontiguousarray(table.reshape(rows, 256)).view(np.uint8)

    tables = derived(other, ("code_tables", *tag, _params_key(x_q), _params_key(out_q), probe_shape), make)
    return _looked_up(x, tables, rows, STORAGE_DTYPES[out_q.qtype])


def binary_by_code(a: np.ndarray, b: np.ndarray, a_q: QuantParams | None, b_q: QuantParams | None,
                   out_q: QuantParams, op: Callable[[np.ndarray, np.ndarray], np.ndarray], tag: tuple,
                   either: bool = True) -> np.ndarray:
    """``op(a, b)``, an elementwise integer op, through ``lookup_by_code`` when one operand is 8-bit storage much
    larger than the other (a constant, a per-channel scale), else directly. Same codes either way. ``either``
    False: only ``a`` is looked up (an op that may refuse codes of ``b`` that are not there, as a zero divisor)."""
    a, b = np.asarray(a), np.asarray(b)
    key = (*tag, _params_key(a_q), _params_key(b_q))
    out = None
    if a.size >= b.size and a_q is not None:
        out = lookup_by_code(a, a_q, out_q, b, lambda codes: op(codes, b), (*key, 0))
    elif either and b.size > a.size and b_q is not None:
        out = lookup_by_code(b, b_q, out_q, a, lambda codes: op(a, codes), (*key, 1))
    return op(a, b) if out is None else out


def lut_kernel(fn: Callable[[np.ndarray], np.ndarray]) -> Callable:
    """An elementwise op on 8/16-bit storage as a lookup table over every input code (as the NPU's
    activation unit does): table[q] = quantize(fn(dequantize(q))), worked out once per node."""
    return attrs_lut_kernel(lambda real, attrs: fn(real))


def attrs_lut_kernel(fn: Callable[[np.ndarray, dict], np.ndarray]) -> Callable:
    """``lut_kernel`` of ``fn(real, attrs)``: each node's table is worked out once (per attribute contents and
    parameters)."""
    lookups = memo_by_attrs(lambda attrs, in_q, out_q: code_lookup(lut_table(lambda real: fn(real, attrs), in_q, out_q),
                                                                   in_q.qtype))

    def kernel(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
        return [lookups(attrs, objects=(in_q[0], out_q[0]))(inputs[0])]

    return kernel


def same_params(a: QuantParams, b: QuantParams) -> bool:
    return a.qtype == b.qtype and a.scale == b.scale and a.zero_point == b.zero_point


def rescale(v: np.ndarray, src: QuantParams, dst: QuantParams) -> np.ndarray:
    """Storage integers of ``src`` re-expressed in ``dst`` (same real value, fixed point)."""
    if same_params(src, dst):
        return np.asarray(v)
    v = np.asarray(v)
    if src.qtype in CODES_BY_BYTE and dst.qtype in CODES_BY_BYTE and v.dtype == STORAGE_DTYPES[src.qtype] \
            and v.size >= TABLE_FRACTION:
        return _looked_up(v, _rescale_table(_params_key(src), _params_key(dst)), 1, STORAGE_DTYPES[dst.qtype])
    return _rescaled(v, src, dst)


def _rescaled(v: np.ndarray, src: QuantParams, dst: QuantParams) -> np.ndarray:
    """``rescale`` element by element."""
    acc = np.subtract(v, np.int32(src.zero_point[0]), dtype=np.int32)
    return requantize_channels(acc, src.scale[0] / dst.scale[0], dst.zero_point[0], dst.qtype)


@functools.lru_cache(maxsize=1024)
def _rescale_table(src: tuple, dst: tuple) -> np.ndarray:
    """``rescale`` of every 8-bit code of ``src`` (by byte) into ``dst`` (parameter keys), as bytes."""
    src_q, dst_q = QuantParams(*src), QuantParams(*dst)
    return np.ascontiguousarray(_rescaled(CODES_BY_BYTE[src_q.qtype], src_q, dst_q)).view(np.uint8)


@functools.lru_cache(maxsize=1024)
def _mul_layout(a_shape: tuple, b_shape: tuple) -> tuple[int, int, int] | None:
    """(rows, inner, b_step) of the compiled MUL for ``b`` broadcast against ``a``: one value (b_step 0), one
    per leading (N, C) position (1) or ``a``'s own shape (2); None for other broadcasts. Cached per shapes."""
    padded = (1,) * (len(a_shape) - len(b_shape)) + tuple(b_shape)
    rows = math.prod(a_shape[:2]) if len(a_shape) >= 2 else 1
    inner = math.prod(a_shape) // max(rows, 1)
    if len(padded) != len(a_shape):
        return None
    if math.prod(b_shape) == 1:
        return rows, inner, 0
    if padded == tuple(a_shape):
        return rows, inner, 2
    if len(a_shape) >= 2 and padded[:2] == tuple(a_shape[:2]) and all(d == 1 for d in padded[2:]):
        return rows, inner, 1
    return None


def _compiled_mul(a: np.ndarray, b: np.ndarray, a_q: QuantParams, b_q: QuantParams, out_q: QuantParams, m: float,
                  positive: float | None = None) -> np.ndarray | None:
    """``quantized_mul`` on the compiled kernel (with ``positive``: PRelu, a's non-negative codes requantized
    by it alone), or None when it does not apply: 8-bit per-tensor storage of one type, b one value, one per
    (N, C) position or a's shape."""
    kind = STORAGE_KINDS.get(out_q.qtype)
    layout = _mul_layout(a.shape, b.shape)
    dtype = STORAGE_DTYPES[out_q.qtype]
    if not (kind in ("B", "b") and layout is not None and a_q.qtype == b_q.qtype == out_q.qtype
            and a.dtype == b.dtype == dtype and a_q.axis is None and b_q.axis is None):
        return None
    pot, mult, shift = _plan((float(m),))
    extra = ()
    if positive is not None:
        positive_pot, positive_mult, positive_shift = _plan((float(positive),))
        extra = (positive_mult, positive_shift, positive_pot)
    out = np.empty(a.shape, dtype)
    _native.quantized_mul(np.ascontiguousarray(a), np.ascontiguousarray(b), out, kind, *layout, a_q.zero_point[0],
                          b_q.zero_point[0], mult, shift, pot, out_q.zero_point[0], *QTYPES[out_q.qtype][:2], *extra)
    return out


def quantized_mul(a: np.ndarray, b: np.ndarray, a_q: QuantParams, b_q: QuantParams, out_q: QuantParams
                  ) -> np.ndarray:
    """a * b in integers: (a - za)(b - zb) requantized by a_s * b_s / out_s, on the compiled kernel where it
    applies (either operand may be the broadcast one), else in numpy on centered codes. Same codes."""
    a, b = np.asarray(a), np.asarray(b)
    if a.size < b.size:
        a, b, a_q, b_q = b, a, b_q, a_q
    m = a_q.scale[0] * b_q.scale[0] / out_q.scale[0]
    out = _compiled_mul(a, b, a_q, b_q, out_q, m)
    if out is not None:
        return out
    acc = centered_int(a, a_q) * centered_int(b, b_q)
    return requantize_channels(acc, m, out_q.zero_point[0], out_q.qtype)


def quantized_prelu(x: np.ndarray, slope: np.ndarray, x_q: QuantParams, s_q: QuantParams, out_q: QuantParams
                    ) -> np.ndarray | None:
    """PRelu on the compiled kernel: x - zx requantized by x_s / out_s where it is not negative, else
    (x - zx)(slope - zs) by x_s * s_s / out_s (the codes of the numpy form); None when it does not apply."""
    x, slope = np.asarray(x), np.asarray(slope)
    if x.size < slope.size:
        return None
    return _compiled_mul(x, slope, x_q, s_q, out_q, x_q.scale[0] * s_q.scale[0] / out_q.scale[0],
                         x_q.scale[0] / out_q.scale[0])


ADD_LEFT_SHIFT = {"u8": 20, "i8": 20, "i16": 15}


@functools.lru_cache(maxsize=4096)
def _add_plan(a_scale: float, b_scale: float, out_scale: float, qtype: str) -> tuple:
    """The fixed-point constants of ``quantized_add`` (computed once per scale triple, not per run)."""
    shift = ADD_LEFT_SHIFT[qtype]
    twice_max = 2 * max(a_scale, b_scale)
    (ma, sa), (mb, sb) = [tuple(int(t) for t in quantize_multiplier(s / twice_max)) for s in (a_scale, b_scale)]
    return shift, ma, sa, mb, sb, twice_max / ((1 << shift) * out_scale)


@functools.lru_cache(maxsize=4096)
def _add_out_plan(m_out: float) -> tuple:
    pot, mo, so = multiplier_plan(m_out)
    return pot, mo, so


@functools.lru_cache(maxsize=4096)
def _add_constants(a_scale: float, b_scale: float, out_scale: float, qtype: str) -> tuple:
    """The compiled ADD's constants after its zero points: (left shift, ma, sa, mb, sb) and after the sign
    (mo, so, pot) (``_add_plan`` and ``_add_out_plan`` looked up once per scale triple)."""
    shift, ma, sa, mb, sb, m_out = _add_plan(a_scale, b_scale, out_scale, qtype)
    pot, mo, so = _add_out_plan(m_out)
    return (shift, ma, sa, mb, sb), (int(mo), int(so), pot)


@functools.lru_cache(maxsize=1024)
def _broadcast_shape(a_shape: tuple, b_shape: tuple) -> tuple[int, ...]:
    return tuple(np.broadcast_shapes(a_shape, b_shape))


def _expanded(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` as C-contiguous arrays of their broadcast shape (views where they hold every value)."""
    if a.shape != b.shape:
        shape = _broadcast_shape(a.shape, b.shape)
        size = math.prod(shape)
        a, b = (v.reshape(shape) if v.size == size else np.broadcast_to(v, shape) for v in (a, b))
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


PAIR_TABLE_MIN = 1 << 17  # 8-bit ADDs of this many elements look each pair of codes up (one table per node)


def _compiled_add(a: np.ndarray, b: np.ndarray, a_q: QuantParams, b_q: QuantParams, out_q: QuantParams,
                  sign: int) -> np.ndarray:
    """``quantized_add`` of storage arrays of one shape and kind on the compiled integer ADD."""
    left, right = _add_constants(a_q.scale[0], b_q.scale[0], out_q.scale[0], out_q.qtype)
    out = np.empty(a.shape, dtype=STORAGE_DTYPES[out_q.qtype])
    _native.quantized_add(a, b, out, STORAGE_KINDS[out_q.qtype], out.size, a_q.zero_point[0], b_q.zero_point[0],
                          *left, sign, *right, out_q.zero_point[0], *QTYPES[out_q.qtype][:2])
    return out


@functools.lru_cache(maxsize=256)
def _add_pair_table(a_key: tuple, b_key: tuple, out_key: tuple, sign: int) -> np.ndarray:
    """The compiled ADD of every pair of 8-bit codes (parameter keys), as bytes indexed by a's byte * 256 + b's
    byte (then 3 bytes the gathers read past the end)."""
    a_q, b_q, out_q = QuantParams(*a_key), QuantParams(*b_key), QuantParams(*out_key)
    a = np.repeat(CODES_BY_BYTE[a_q.qtype], 256)
    b = np.tile(CODES_BY_BYTE[b_q.qtype], 256)
    table = np.zeros(65536 + 3, np.uint8)
    table[:65536] = _compiled_add(a, b, a_q, b_q, out_q, sign).view(np.uint8)
    return table


def quantized_add(a: np.ndarray, b: np.ndarray, a_q: QuantParams, b_q: QuantParams, out_q: QuantParams,
                  sign: int = 1) -> np.ndarray:
    """a + sign * b with TFLite's integer ADD: both sides scaled to a common fixed-point grid."""
    a, b = np.asarray(a), np.asarray(b)
    kind = STORAGE_KINDS.get(out_q.qtype)
    dtype = STORAGE_DTYPES[out_q.qtype]
    if kind is not None and a.dtype == b.dtype == dtype == STORAGE_DTYPES[a_q.qtype]:
        a2, b2 = _expanded(a, b)
        if kind in ("B", "b") and a2.size >= PAIR_TABLE_MIN:
            table = _add_pair_table(_params_key(a_q), _params_key(b_q), _params_key(out_q), sign)
            out = np.empty(a2.shape, dtype=dtype)
            _native.lookup8_pairs(a2, b2, table, out, out.size)
            return out
        return _compiled_add(a2, b2, a_q, b_q, out_q, sign)
    shift, ma, sa, mb, sb, m_out = _add_plan(a_q.scale[0], b_q.scale[0], out_q.scale[0], out_q.qtype)
    terms = [multiply(centered(v, q).astype(np.int64) << shift, m, s) for v, q, m, s in ((a, a_q, ma, sa), (b, b_q, mb, sb))]
    return requantize(terms[0] + sign * terms[1], m_out, out_q.zero_point[0], out_q.qtype)
