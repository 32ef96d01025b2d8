"""Ops that make tensors from shapes and scalars: Shape, Size, ConstantOfShape, Range."""

from __future__ import annotations

import math

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import TensorInfo
from rknn_core.ops._common import const_ints
from rknn_core.ops.tensor import meta_cost, tensor_op
from rknn_core.quant.params import dequantize, quantize
from rknn_core.records import OpDef


def _fill_value(attrs) -> np.ndarray:
    value = attrs.get("value")
    if value is None:
        return np.zeros((), np.float32)
    value = np.asarray(value)
    if value.size != 1:
        raise RknnError(f"ConstantOfShape value must hold one element, got {value.size}")
    return value.reshape(())


def _cos_infer(inputs, attrs):
    shape = const_ints(inputs[0], "shape")
    if any(d < 0 for d in shape):
        raise RknnError(f"ConstantOfShape shape {shape} has a negative dimension")
    return [TensorInfo(tuple(shape), str(_fill_value(attrs).dtype))]


def _cos_kernel(inputs, attrs):
    value = _fill_value(attrs)
    return [np.full([int(d) for d in inputs[0].reshape(-1)], value, dtype=value.dtype)]


def _shape_range(attrs) -> slice:
    start, end = attrs.get("start", 0), attrs.get("end")
    return slice(int(start), None if end is None else int(end))


def _shape_infer(inputs, attrs):
    value = np.asarray(inputs[0].shape[_shape_range(attrs)], dtype=np.int64)
    return [TensorInfo(tuple(value.shape), "int64", value)]


def _shape_kernel(inputs, attrs):
    return [np.asarray(inputs[0].shape[_shape_range(attrs)], dtype=np.int64)]


def _size_infer(inputs, attrs):
    return [TensorInfo((), "int64", np.asarray(inputs[0].size, dtype=np.int64))]


def _size_kernel(inputs, attrs):
    return [np.asarray(inputs[0].size, dtype=np.int64)]


def _range_count(start, limit, delta) -> int:
    if delta == 0:
        raise RknnError("Range delta must not be 0")
    return max(int(math.ceil((float(limit) - float(start)) / float(delta))), 0)


def _range_values(start, limit, delta) -> np.ndarray:
    start, limit, delta = (np.asarray(v).reshape(()) for v in (start, limit, delta))
    dtype = start.dtype
    n = _range_count(start, limit, delta)
    if dtype.kind in "iu":
        return (start + np.arange(n, dtype=dtype) * delta).astype(dtype)
    return (start.astype(np.float64) + np.arange(n) * delta.astype(np.float64)).astype(dtype)


def _range_infer(inputs, attrs):
    start, limit, delta = inputs
    if any(i.data is None for i in inputs):
        raise RknnError("Range start, limit and delta must be constants")
    n = _range_count(np.asarray(start.data).reshape(()), np.asarray(limit.data).reshape(()),
                     np.asarray(delta.data).reshape(()))
    return [TensorInfo((n,), start.dtype)]


def _range_kernel(inputs, attrs):
    return [_range_values(*inputs)]


def _constant_quant(kernel):
    """Generators have no data inputs: the value is computed and stored in the output's parameters."""
    def quant_kernel(inputs, in_q, out_q, attrs):
        real = [None if v is None else dequantize(v, q) if q is not None else v for v, q in zip(inputs, in_q)]
        return [v if q is None else quantize(v, q) for v, q in zip(kernel(real, attrs), out_q)]
    return quant_kernel


OPS: list[OpDef] = [
    tensor_op("ConstantOfShape", _cos_infer, _cos_kernel, 1, 1, "A tensor of the given shape filled with 'value'.",
        cost=meta_cost, quant_kernel=_constant_quant(_cos_kernel)),
    tensor_op("Shape", _shape_infer, _shape_kernel, 1, 1, "The input's shape (dimensions start..end) as int64.",
        cost=meta_cost, fold=False, shape_only=True, same_scale=True),
    tensor_op("Size", _size_infer, _size_kernel, 1, 1, "The input's element count as an int64 scalar.",
        cost=meta_cost, fold=False, shape_only=True, same_scale=True),
    tensor_op("Range", _range_infer, _range_kernel, 3, 3, "start, start + delta, ... up to limit (exclusive).",
        cost=meta_cost),
]
