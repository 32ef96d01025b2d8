"""Geometry shared by convolution and pooling: padding, output sizes, sliding windows."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from rknn_core.errors import RknnError


def resolve_pads(in_size: Sequence[int], kernel: Sequence[int], attrs: dict, ceil_mode: bool = False
                 ) -> tuple[list[int], list[int], list[int]]:
    """Begin pads, end pads and output sizes for ONNX ``auto_pad``/``pads``/``strides``/``dilations``.

    With ``ceil_mode`` the end pads grow so the last partial window fits (those extra cells are not
    part of the declared padding; callers treat them as absent).
    """
    rank = len(in_size)
    strides = list(attrs.get("strides") or [1] * rank)
    dilations = list(attrs.get("dilations") or [1] * rank)
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = [math.ceil(i / s) for i, s in zip(in_size, strides)]
        total = [max(0, (o - 1) * s + e - i) for o, s, e, i in zip(out, strides, eff, in_size)]
        small = [t // 2 for t in total]
        big = [t - t // 2 for t in total]
        begin, end = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
        return begin, end, out
    if auto_pad == "VALID":
        begin = end = [0] * rank
    elif auto_pad == "NOTSET":
        pads = list(attrs.get("pads") or [0] * (2 * rank))
        begin, end = pads[:rank], pads[rank:]
    else:
        raise RknnError(f"unknown auto_pad '{auto_pad}'")
    out = []
    end = list(end)
    for d in range(rank):
        span = in_size[d] + begin[d] + end[d] - eff[d]
        if span < 0:
            raise RknnError(f"kernel {tuple(kernel)} is larger than the padded input {tuple(in_size)}")
        if ceil_mode:
            o = -(-span // strides[d]) + 1
            if (o - 1) * strides[d] >= in_size[d] + begin[d]:
                o -= 1  # the last window would start inside the end padding
            end[d] += max(0, (o - 1) * strides[d] + eff[d] - (in_size[d] + begin[d] + end[d]))
        else:
            o = span // strides[d] + 1
        out.append(o)
    return list(begin), end, out


def pad_spatial(x: np.ndarray, begin: Sequence[int], end: Sequence[int], value: float = 0.0) -> np.ndarray:
    """Pad the trailing spatial axes of an N, C, spatial... array."""
    if not any(begin) and not any(end):
        return x
    lead = x.ndim - len(begin)
    out = np.full((*x.shape[:lead], *(n + b + e for n, b, e in zip(x.shape[lead:], begin, end))), value, x.dtype)
    out[(slice(None),) * lead + tuple(slice(b, b + n) for n, b in zip(x.shape[lead:], begin))] = x
    return out  # np.pad's result, without its general machinery (three times slower on a picture)


def windows(xp: np.ndarray, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int],
            out: Sequence[int]) -> np.ndarray:
    """A read-only view (N, C, kh, kw, oh, ow) of every window of a padded 2-D input."""
    n, c, _, _ = xp.shape
    sn, sc, sh, sw = xp.strides
    shape = (n, c, kernel[0], kernel[1], out[0], out[1])
    view_strides = (sn, sc, sh * dilations[0], sw * dilations[1], sh * strides[0], sw * strides[1])
    return as_strided(xp, shape, view_strides, writeable=False)


def tap_slices(kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int], out: Sequence[int]):
    """For each kernel tap (i, j): the spatial slices of the padded input that tap reads."""
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            hs, ws = i * dilations[0], j * dilations[1]
            yield i, j, (slice(hs, hs + (out[0] - 1) * strides[0] + 1, strides[0]),
                         slice(ws, ws + (out[1] - 1) * strides[1] + 1, strides[1]))


def as_2d(x: np.ndarray) -> np.ndarray:
    """View a 1-D spatial (N, C, L) array as 2-D (N, C, 1, L)."""
    return x[:, :, None, :] if x.ndim == 3 else x


def spatial_attrs_2d(attrs: dict, rank: int) -> dict:
    """Attributes of a 1-D op rewritten for the 2-D kernel (a unit leading spatial axis)."""
    if rank == 2:
        return attrs
    if rank != 1:
        raise RknnError(f"{rank}-D convolution/pooling is not supported (1-D and 2-D are)")
    new = dict(attrs)
    for key in ("strides", "dilations", "kernel_shape", "output_padding"):
        if attrs.get(key):
            new[key] = [1 if key != "output_padding" else 0] + list(attrs[key])
    if attrs.get("pads"):
        p = list(attrs["pads"])
        new["pads"] = [0, p[0], 0, p[1]]
    if "output_shape" in attrs and attrs["output_shape"]:
        new["output_shape"] = [1] + list(attrs["output_shape"])
    return new


def axis_taps(k: int, stride: int, dilation: int, out: int):
    """For each tap ``i`` of one spatial axis: the slice of the padded axis that tap reads."""
    for i in range(k):
        start = i * dilation
        yield i, slice(start, start + (out - 1) * stride + 1, stride)


def tap_slices_nd(kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int], out: Sequence[int]):
    """For each kernel tap (a tuple of indices, row-major): the spatial slices of the padded input
    it reads; any number of spatial axes."""
    per_axis = [list(axis_taps(k, s, d, o)) for k, s, d, o in zip(kernel, strides, dilations, out)]
    for combo in itertools.product(*per_axis):
        yield tuple(i for i, _ in combo), tuple(s for _, s in combo)
