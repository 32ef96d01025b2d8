"""Helpers shared by op definitions: attribute access, broadcasting, axis handling, costs."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import TensorInfo
from rknn_core.records import Cost, OpDef


def memo_by_attrs(fn: Callable) -> Callable:
    """Memoize ``fn(attrs, *key, *objects)`` per node attribute dict, hashable ``key`` and ``objects``
    (compared by identity and held weakly: constants, quantization parameters): kernels run the same
    nodes again and again, so per-node plans are worked out once. An entry is used only while its dict
    has the same contents (passes may edit attributes); it goes when one of its objects does (so an
    entry found is one of live objects, which no other object's identity can match)."""
    cache: dict = {}

    def memoized(attrs: dict, *key, objects: tuple = ()):
        slot = (id(attrs), *key, *map(id, objects))
        entry = cache.get(slot)
        if entry is not None and entry[0] == attrs:
            return entry[2]
        if len(cache) > 4096:
            cache.clear()
        value = fn(attrs, *key, *objects)
        forget = functools.partial(_forget, cache, slot)
        cache[slot] = (dict(attrs), [weakref.ref(obj, forget) for obj in objects if obj is not None], value)
        return value

    return memoized


def _forget(cache: dict, slot: tuple, _ref) -> None:
    cache.pop(slot, None)


def given_inputs(inputs: list, constants: list, computed: tuple[int, ...]) -> list:
    """A prepared kernel's (``OpDef.quant_prepare``) full inputs: the computed ones from ``inputs``, the others its
    constants."""
    return [inputs[k] if k in computed else value for k, value in enumerate(constants)]


def norm_axis(axis: int, rank: int) -> int:
    """A non-negative axis; refuses out-of-range values."""
    if not -rank <= axis < max(rank, 1):
        raise RknnError(f"axis {axis} is out of range for a rank-{rank} tensor")
    return axis % max(rank, 1)


def const_ints(info: TensorInfo | None, what: str) -> list[int] | None:
    """The integer values of a constant input (axes, shape, pads ...), or None when absent."""
    if info is None:
        return None
    if info.data is None:
        raise RknnError(f"input '{what}' must be a constant (it is computed at run time)")
    return [int(v) for v in np.asarray(info.data).reshape(-1)]


CONST_LIMIT = 4096  # largest tensor (elements) whose value shape inference computes


def with_values(infer: Callable, kernel: Callable) -> Callable:
    """Wrap ``infer`` so that outputs of small, all-constant inputs carry their values."""

    def wrapped(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
        outs = infer(inputs, attrs)
        present = [i for i in inputs if i is not None]
        if (present and all(i.data is not None and i.size <= CONST_LIMIT for i in present)
                and all(o.data is None and o.size <= CONST_LIMIT for o in outs)):
            values = kernel([None if i is None else np.asarray(i.data) for i in inputs], attrs)
            outs = [TensorInfo(tuple(v.shape), str(v.dtype), v) for v in values]
        return outs

    return wrapped


def broadcast(*shapes: Sequence[int]) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*[tuple(s) for s in shapes]))
    except ValueError:
        raise RknnError(f"shapes {' and '.join(str(tuple(s)) for s in shapes)} do not broadcast") from None


def promote(*dtypes: str) -> str:
    return str(np.result_type(*[np.dtype(d) for d in dtypes]))


def default_cost(inputs: list[TensorInfo | None], outputs: list[TensorInfo], attrs: dict) -> Cost:
    """One operation per output element; all inputs read once, outputs written once."""
    moved = sum(i.nbytes for i in inputs if i is not None) + sum(o.nbytes for o in outputs)
    return Cost(sum(o.size for o in outputs), moved)


def same_as_first(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
    return [TensorInfo(inputs[0].shape, inputs[0].dtype)]


def unary(name: str, fn: Callable[..., np.ndarray], doc: str = "", **defaults: Any) -> OpDef:
    """An elementwise op of one input whose attributes (with defaults) are passed as keywords."""

    def kernel(inputs: list[np.ndarray], attrs: dict) -> list[np.ndarray]:
        x = inputs[0]
        kw = {k: attrs.get(k, v) for k, v in defaults.items()}
        return [np.asarray(fn(x, **kw)).astype(x.dtype, copy=False)]

    @functools.cache
    def lookup() -> Callable:  # built on first use: ops._quant imports this module
        from rknn_core.ops._quant import attrs_lut_kernel

        return attrs_lut_kernel(lambda real, attrs: kernel([real], attrs)[0])

    def quant_kernel(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
        return lookup()(inputs, in_q, out_q, attrs)

    return OpDef(name, with_values(same_as_first, kernel), kernel, default_cost, 1, 1, quant_kernel=quant_kernel,
                 doc=doc or f"Elementwise {name}.")


def binary(name: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], out_dtype: str | None = None,
           doc: str = "", quant_kernel: Callable | None = None, base_dtype: bool = False) -> OpDef:
    """A broadcasting op of two inputs; ``out_dtype`` fixes the result type (``bool`` for compares),
    ``base_dtype`` keeps the first input's (Pow); otherwise the inputs' types are promoted."""

    def infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
        a, b = inputs
        return [TensorInfo(broadcast(a.shape, b.shape), out_dtype or (a.dtype if base_dtype else promote(a.dtype, b.dtype)))]

    def kernel(inputs: list[np.ndarray], attrs: dict) -> list[np.ndarray]:
        a, b = inputs
        out = along_short_last_axis(fn, a, b)
        return [np.asarray(out).astype(out_dtype or (a.dtype if base_dtype else np.result_type(a, b)), copy=False)]

    return OpDef(name, with_values(infer, kernel), kernel, default_cost, 2, 2, quant_kernel=quant_kernel,
                 doc=doc or f"Broadcasting {name}.")


SHORT_AXIS, WIDE_ENOUGH = 16, 4096


def along_short_last_axis(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], a: np.ndarray, b: np.ndarray):
    """``fn(a, b)``; when one operand is a large contiguous array whose last axis is short (channels last: an
    NHWC picture) and the other one value per position of that axis, on rows of the last two axes against the
    values repeated along a row: the same elementwise operations, without numpy's slow loops over a short
    broadcast axis."""
    a, b = np.asarray(a), np.asarray(b)
    big, small = (a, b) if a.size >= b.size else (b, a)
    last = big.shape[-1] if big.ndim >= 2 else 0
    if not 1 < last <= SHORT_AXIS or big.size < WIDE_ENOUGH or small.size != last or small.ndim > big.ndim \
            or small.shape[-1] != last or not big.flags.c_contiguous:
        return fn(a, b)
    row = big.shape[-2] * last
    rows, repeated = big.reshape(-1, row), np.tile(small.reshape(-1), row // last)
    out = fn(rows, repeated) if big is a else fn(repeated, rows)
    return np.asarray(out).reshape(big.shape)


def variadic(name: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], finish: Callable | None = None,
             doc: str = "") -> OpDef:
    """A broadcasting reduction over any number of inputs (Sum, Max, Min, Mean)."""

    def infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
        return [TensorInfo(broadcast(*[i.shape for i in inputs]), promote(*[i.dtype for i in inputs]))]

    def kernel(inputs: list[np.ndarray], attrs: dict) -> list[np.ndarray]:
        acc = inputs[0]
        for x in inputs[1:]:
            acc = fn(acc, x)
        if finish is not None:
            acc = finish(acc, len(inputs))
        shape = np.broadcast_shapes(*[x.shape for x in inputs])
        return [np.broadcast_to(acc, shape).astype(np.result_type(*inputs), copy=True)]

    return OpDef(name, with_values(infer, kernel), kernel, default_cost, 1, None,
                 doc=doc or f"Elementwise {name} of all inputs.")
