"""QuantizeLinear and DequantizeLinear with ONNX semantics (per tensor or per axis).

``QuantizeLinear(x, scale, zero_point)``: ``saturate(round_half_even(x / scale) + zero_point)`` in
the zero point's integer type (uint8 when absent). ``DequantizeLinear(x, scale, zero_point)``:
``(x - zero_point) * scale`` in the scale's float type. A 1-D scale of more than one element applies
along ``axis`` (default 1). The TFLite frontend uses them at the integer inputs and outputs of
already-quantized models and for QUANTIZE inside them.
"""

from __future__ import annotations

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import TensorInfo
from rknn_core.ops._common import default_cost, norm_axis
from rknn_core.records import OpDef

_INTS = ("uint8", "int8", "uint16", "int16", "int32")


def _along(param: np.ndarray, x: np.ndarray, attrs: dict, what: str) -> np.ndarray:
    """``param`` shaped to broadcast against ``x``: a scalar, or one value per slice along ``axis``."""
    param = np.asarray(param)
    if param.size == 1 and param.ndim <= 1:
        return param.reshape(())
    if param.ndim != 1:
        raise RknnError(f"{what} must be a scalar or 1-D (blocked quantization is not supported), got {param.shape}")
    axis = norm_axis(int(attrs.get("axis", 1)), x.ndim)
    if x.shape[axis] != param.size:
        raise RknnError(f"{what} has {param.size} values for axis {axis} of size {x.shape[axis]}")
    shape = [1] * x.ndim
    shape[axis] = -1
    return param.reshape(shape)


def _check(inputs: list[TensorInfo | None], op: str) -> None:
    scale = inputs[1]
    if scale.shape not in ((), (1,)) and len(scale.shape) != 1:
        raise RknnError(f"{op} scale must be a scalar or 1-D, got {scale.shape}")


def _q_dtype(inputs: list, attrs: dict) -> str:
    zero = inputs[2] if len(inputs) > 2 else None
    dtype = str(zero.dtype) if zero is not None else "uint8"
    if dtype not in _INTS:
        raise RknnError(f"QuantizeLinear zero point type {dtype} is not supported (use one of {', '.join(_INTS)})")
    return dtype


def _q_infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
    _check(inputs, "QuantizeLinear")
    return [TensorInfo(inputs[0].shape, _q_dtype(inputs, attrs))]


def _q_kernel(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]:
    x, scale = inputs[0], inputs[1]
    zero = inputs[2] if len(inputs) > 2 else None
    dtype = np.dtype(_q_dtype(inputs, attrs))
    s = _along(scale, x, attrs, "QuantizeLinear scale").astype(np.float32)
    y = np.rint(x.astype(np.float32) / s).astype(np.float64)  # rint: halves to even, as ONNX specifies
    if zero is not None:
        y = y + _along(zero, x, attrs, "QuantizeLinear zero point").astype(np.float64)
    info = np.iinfo(dtype)
    return [np.clip(y, info.min, info.max).astype(dtype)]


def _dq_infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
    _check(inputs, "DequantizeLinear")
    return [TensorInfo(inputs[0].shape, str(inputs[1].dtype))]


def _dq_kernel(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]:
    x, scale = inputs[0], inputs[1]
    zero = inputs[2] if len(inputs) > 2 else None
    s = _along(scale, x, attrs, "DequantizeLinear scale")
    centered = x.astype(np.int64)
    if zero is not None:
        centered = centered - _along(zero, x, attrs, "DequantizeLinear zero point").astype(np.int64)
    return [(centered.astype(s.dtype) * s).astype(s.dtype)]


OPS: list[OpDef] = [
    OpDef("QuantizeLinear", _q_infer, _q_kernel, default_cost, 2, 3,
          doc="x / scale rounded half to even, plus zero_point, saturated to the zero point's integer type."),
    OpDef("DequantizeLinear", _dq_infer, _dq_kernel, default_cost, 2, 3,
          doc="(x - zero_point) * scale, per tensor or per axis."),
]
