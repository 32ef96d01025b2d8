"""Checks of the public API's arguments at the door: type, range and consistency.

Each check raises :class:`RknnError` with a message naming the method, the argument, the accepted
values and what was given, so that nothing malformed reaches the importers, passes or runtime.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import Graph

MAX_RANK = 6  # tensors of more dimensions than this are not something an NPU of this family runs
MAX_DIM = 1 << 20  # one axis longer than this is a typing error, not a model
MAX_ELEMENTS = 1 << 28  # one input of more elements (1 GiB of float32) is refused before any allocation
MAX_BATCH = 256  # rknn_batch_size: the guide recommends under 32
REORDER_LENGTHS = (3, 4)  # reorder_channel permutes the 3 (or 4) channels of an image


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(method: str, name: str, accepted: str, value: Any) -> RknnError:
    return RknnError(f"{method}: {name} must be {accepted}, got {type(value).__name__} {_shown(value)}")


def is_int(value: Any) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def flag(method: str, name: str, value: Any) -> bool:
    """``True``/``False`` (also 0/1, as C-minded scripts write them)."""
    if isinstance(value, (bool, np.bool_)) or (is_int(value) and value in (0, 1)):
        return bool(value)
    raise _fail(method, name, "True or False", value)


def path(method: str, name: str, value: Any, optional: bool = False) -> str | None:
    """A file or folder path (str or os.PathLike); ``None`` only when ``optional``."""
    if value is None and optional:
        return None
    accepted = "file path (str)" + (" or None" if optional else "")
    if not isinstance(value, (str, os.PathLike)):
        raise _fail(method, name, f"a {accepted}", value)
    text = os.fspath(value)
    if not isinstance(text, str) or not text.strip():
        raise _fail(method, name, f"a non-empty {accepted}", value)
    if "\0" in text:
        raise RknnError(f"{method}: {name} {text!r} contains a NUL character; give a file path")
    return text


def text_choice(method: str, name: str, value: Any, choices: Sequence[str], optional: bool = False) -> str | None:
    """One of ``choices`` (case-insensitive; returned as spelled there); ``None`` only when ``optional``."""
    if value is None and optional:
        return None
    if isinstance(value, str):
        for choice in choices:
            if value == choice or value.lower() == choice.lower():
                return choice
    accepted = "one of " + ", ".join(f"'{c}'" for c in choices) + (" or None" if optional else "")
    raise _fail(method, name, accepted, value)


def text(method: str, name: str, value: Any, optional: bool = False) -> str | None:
    """A non-empty string; ``None`` only when ``optional``."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise _fail(method, name, "a non-empty string" + (" or None" if optional else ""), value)
    return value


def int_range(method: str, name: str, value: Any, low: int, high: int) -> int:
    """An integer from ``low`` to ``high``."""
    if not is_int(value) or not low <= value <= high:
        raise _fail(method, name, f"an integer from {low} to {high}", value)
    return int(value)


def names(method: str, name: str, value: Any, optional: bool = False) -> list[str] | None:
    """A list of tensor or node names; a bare string is refused (it is not split into characters)."""
    if value is None and optional:
        return None
    accepted = "list of names, e.g. ['input']" + (" or None" if optional else "")
    if isinstance(value, str):
        raise RknnError(f"{method}: {name} must be a list of names; got the string {value!r} "
                        f"(write [{value!r}])")
    if not isinstance(value, (list, tuple)) or not value:
        raise _fail(method, name, f"a non-empty {accepted}", value)
    for item in value:
        if not isinstance(item, str) or not item or "\0" in item:
            raise RknnError(f"{method}: {name} must hold non-empty names (str); entry {_shown(item)} is not one")
    if len(set(value)) != len(value):
        raise RknnError(f"{method}: {name} names a tensor twice: {list(value)}")
    return list(value)


def sizes(method: str, name: str, value: Any, optional: bool = False) -> list[list[int]] | None:
    """``input_size_list``: one list of positive sizes per input, e.g. ``[[224, 224, 3]]``."""
    if value is None and optional:
        return None
    accepted = f"a list with one list of positive sizes per input, e.g. [[224, 224, 3]]{' or None' if optional else ''}"
    if not isinstance(value, (list, tuple)) or not value:
        raise _fail(method, name, accepted, value)
    result = []
    for index, entry in enumerate(value):
        if not isinstance(entry, (list, tuple)) or not entry or not all(is_int(d) for d in entry):
            raise RknnError(f"{method}: {name} entry {index} must be a list of positive integer sizes, "
                            f"e.g. [224, 224, 3]; got {_shown(entry)}")
        dims = [int(d) for d in entry]
        _check_dims(method, f"{name} entry {index}", dims)
        result.append(dims)
    return result


def _check_dims(method: str, what: str, dims: Sequence[int]) -> None:
    if len(dims) > MAX_RANK:
        raise RknnError(f"{method}: {what} has {len(dims)} dimensions; at most {MAX_RANK} are supported")
    if any(d < 1 or d > MAX_DIM for d in dims):
        raise RknnError(f"{method}: {what} {list(dims)} must hold sizes from 1 to {MAX_DIM}")
    if math.prod(dims) > MAX_ELEMENTS:
        raise RknnError(f"{method}: {what} {list(dims)} has {math.prod(dims)} elements; at most {MAX_ELEMENTS} "
                        f"are supported")


def tensor_sizes(graph: Graph, what: str) -> None:
    """No tensor of an imported model has more than MAX_ELEMENTS elements, nor one axis longer (absurd sizes)."""
    for tensor in graph.tensors.values():
        dims = [max(int(d), 0) for d in tensor.shape or ()]
        if dims and (max(dims) > MAX_ELEMENTS or math.prod(dims) > MAX_ELEMENTS):  # (one axis too: zero-size tensors)
            raise RknnError(f"{what}: tensor '{tensor.name}' has shape {list(tensor.shape)}; at most {MAX_ELEMENTS} "
                            f"elements (and as many along one axis) can run (is a size in the file damaged?)")


def int_list(method: str, name: str, value: Any) -> list[int]:
    """A non-empty list of integers (layer ids)."""
    if isinstance(value, (list, tuple)) and value and all(is_int(v) for v in value):
        return [int(v) for v in value]
    raise _fail(method, name, "a non-empty list of layer ids (integers), e.g. [3, 7]", value)


def finite_values(method: str, name: str, value: Any, optional: bool = False) -> Any:
    """Per-input numbers (a list with one number or list of numbers per input), all finite."""
    if value is None and optional:
        return None
    accepted = "a list with one number (or list of numbers) per input, e.g. [[127.5]]"
    if not isinstance(value, (list, tuple)) or not value:
        raise _fail(method, name, accepted, value)
    for entry in value:
        items = entry if isinstance(entry, (list, tuple)) else [entry]
        if not items or not all(_is_real(v) for v in items):
            raise _fail(method, name, accepted, value)
        if not all(math.isfinite(float(v)) for v in items):
            raise RknnError(f"{method}: {name} must hold finite numbers, got {_shown(value)}")
    return value


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


# ---- config(channel_mean_value=..., reorder_channel=...) -----------------------------------------------
def input_groups(text_value: Any, name: str) -> list[str]:
    """The ``#``-separated per-input groups of a config string."""
    if not isinstance(text_value, str):
        raise _fail("config", name, "a string such as '0 0 0 255' (several inputs separated by '#')", text_value)
    return [part.strip() for part in text_value.split("#")]


def mean_group(group: str) -> tuple[list[float], float]:
    """One input's ``channel_mean_value`` group ``'M0 M1 M2 S0'``: finite means, then a finite non-zero scale."""
    values = _numbers(group, "channel_mean_value")
    if len(values) < 2:
        raise RknnError(f"config channel_mean_value '{group}' needs means then one scale, e.g. '128 128 128 128'")
    if not all(math.isfinite(v) for v in values):
        raise RknnError(f"config channel_mean_value '{group}' must hold finite numbers (no nan or inf)")
    if values[-1] == 0:
        raise RknnError("config channel_mean_value: the scale (last value) must not be 0")
    return values[:-1], values[-1]


def reorder_group(group: str) -> list[int]:
    """One input's ``reorder_channel`` group: a permutation of 0..2 (or 0..3), e.g. ``'2 1 0'``."""
    values = _numbers(group, "reorder_channel")
    order = [int(v) for v in values if math.isfinite(v) and v == int(v)]
    if len(order) != len(values) or len(order) not in REORDER_LENGTHS or sorted(order) != list(range(len(order))):
        raise RknnError(f"config reorder_channel '{group}' must be a permutation of 0 1 2 (or 0 1 2 3), "
                        f"e.g. '2 1 0'")
    return order


def _numbers(group: str, name: str) -> list[float]:
    try:
        return [float(v) for v in group.split()]
    except ValueError:
        raise RknnError(f"config {name} '{group}' must be numbers separated by spaces") from None


def preprocessing(channel_mean_value: Any, reorder_channel: Any) -> None:
    """Check both strings now (not at build): every group parses, and both give one group per input."""
    counts = {}
    if channel_mean_value is not None:
        groups = input_groups(channel_mean_value, "channel_mean_value")
        for group in groups:
            mean_group(group)
        counts["channel_mean_value"] = len(groups)
    if reorder_channel is not None:
        groups = input_groups(reorder_channel, "reorder_channel")
        for group in groups:
            reorder_group(group)
        counts["reorder_channel"] = len(groups)
    if len({n for n in counts.values() if n > 1}) > 1:
        raise RknnError(f"config: channel_mean_value and reorder_channel must give one group per input; they give "
                        f"{counts['channel_mean_value']} and {counts['reorder_channel']} '#'-separated groups")


# ---- inference(inputs=...) --------------------------------------------------------------------------
def arrays(method: str, name: str, value: Any, optional: bool = False) -> list | None:
    """Input data: a list of real numeric arrays (a single array is taken as a list of one)."""
    if value is None and optional:
        return None
    if isinstance(value, np.ndarray):
        value = [value]
    if not isinstance(value, (list, tuple)):  # (the count is the model's to check)
        raise _fail(method, name, "a list of numpy arrays", value)
    result = []
    for index, item in enumerate(value):
        try:
            arr = np.asarray(item)
        except (ValueError, TypeError, OverflowError) as exc:
            raise RknnError(f"{method}: {name}[{index}] is not an array: {exc}") from None
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
                                       or arr.dtype == bool):
            raise RknnError(f"{method}: {name}[{index}] must be a real numeric array (int, uint, float or bool), "
                            f"got dtype {arr.dtype}")
        if arr.ndim > MAX_RANK:
            raise RknnError(f"{method}: {name}[{index}] has {arr.ndim} dimensions; at most {MAX_RANK} are supported")
        result.append(arr)
    return result


def pass_through(value: Any, count: int) -> list[int] | None:
    """``inputs_pass_through``: None or one 0/1 per input."""
    if value is None:
        return None
    if (not isinstance(value, (list, tuple)) or len(value) != count
            or not all(is_int(v) or isinstance(v, (bool, np.bool_)) for v in value) or any(v not in (0, 1) for v in value)):
        raise _fail("inference", "inputs_pass_through", f"None or a list of {count} flags (0 or 1), e.g. [1, 0]", value)
    return [int(v) for v in value]
