"""Kernel, stride, pad and dilation of Caffe's Convolution and Pooling parameters (scalar, list or _h/_w)."""

from __future__ import annotations

from rknn_core.errors import RknnError


def _pair(param, field: str, default: int | None) -> tuple[int, int]:
    values = list(getattr(param, field))
    if not values:
        if default is None:
            raise RknnError(f"needs {field} (or {field.split('_')[0]}_h and _w)")
        return default, default
    if len(values) == 1:
        return values[0], values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise RknnError(f"{field} has {len(values)} values; only 2-D layers are supported (1 or 2 values)")


def _hw(param, name: str, listed: str, default: int | None) -> tuple[int, int]:
    """``name_h``/``name_w`` when given, else the repeated ``listed`` field (one value for both or h, w)."""
    has_h, has_w = param.HasField(f"{name}_h"), param.HasField(f"{name}_w")
    if has_h or has_w:
        if not (has_h and has_w) and default is None:
            raise RknnError(f"gives {name}_{'h' if has_h else 'w'} without {name}_{'w' if has_h else 'h'}")
        if getattr(param, listed):
            raise RknnError(f"gives both {listed} and {name}_h/{name}_w")
        return (getattr(param, f"{name}_h") if has_h else default), (getattr(param, f"{name}_w") if has_w else default)
    return _pair(param, listed, default)


def kernel(param) -> tuple[int, int]:
    return _hw(param, "kernel", "kernel_size", None)


def stride(param) -> tuple[int, int]:
    return _hw(param, "stride", "stride", 1)


def pad(param) -> tuple[int, int]:
    return _hw(param, "pad", "pad", 0)


def dilation(param) -> tuple[int, int]:
    return _pair(param, "dilation", 1) if hasattr(param, "dilation") else (1, 1)
