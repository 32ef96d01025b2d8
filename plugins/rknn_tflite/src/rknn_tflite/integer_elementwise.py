"""Quantized ADD and MUL with LiteRT's integer arithmetic.

Both kernels loop over contiguous runs of the output (the whole tensor, or the stretches a broadcast
leaves intact), computing whole 16-lane blocks of each run with NEON instructions (compiled through
NEON_2_SSE on x86) and the rest with scalar code that rounds differently; the ops work out which
outputs fall in which.

- MUL: the product of the centered integers times ``a_scale * b_scale / out_scale`` (VQRDMULH, then
  gemmlowp's RoundingDivideByPOT in the blocks; gemmlowp's multiply in the tail).
- ADD: each centered input shifted left by 20 bits (the core's ADD_LEFT_SHIFT for 8-bit data) and
  scaled by ``its_scale / (2 * max scale)``, the sum scaled by ``2 * max scale / (2**20 * out_scale)``. The blocks fold each input's shift into the
  left shift before VQRDMULH; the tail rounds after it, as TFLite's reference ADD does.

Attributes: ``dtype`` (the storage type of all three tensors), ``a_scale, a_zero, b_scale, b_zero,
out_scale, out_zero``. Inputs and output are float graph values on their grids.
"""

from __future__ import annotations

import numpy as np

from rknn_core.ir import TensorInfo
from rknn_core.ops._common import broadcast, default_cost
from rknn_core.ops._quant import ADD_LEFT_SHIFT
from rknn_core.quant.fixedpoint import multiply
from rknn_core.records import OpDef
from rknn_tflite.fixed_point import (
    centered_storage,
    high_half_up,
    multiplier,
    multiply_half_up_then_away,
    saturated_real,
)
from rknn_tflite.reader import QTYPES as STORAGE_QTYPES


def _run_length(a: tuple, b: tuple, out: tuple) -> int:
    """The length of the contiguous runs LiteRT's ADD and MUL loop over: the whole tensor without broadcasting;
    else the trailing dimensions both inputs share, or, when the innermost one is broadcast, the
    trailing dimensions over which one input repeats a single value."""
    rank = len(out)
    a = (1,) * (rank - len(a)) + tuple(a)
    b = (1,) * (rank - len(b)) + tuple(b)
    if a == b:
        return int(np.prod(out))
    run, d = 1, rank - 1
    if a[d] == b[d]:
        while d >= 0 and a[d] == b[d]:
            run, d = run * out[d], d - 1
    else:
        small = a if a[d] == 1 else b
        while d >= 0 and small[d] == 1:
            run, d = run * out[d], d - 1
    return run


def mul_kernel(inputs: list, attrs: dict) -> list[np.ndarray]:
    product = centered_storage(inputs[0], attrs["a_scale"]) * centered_storage(inputs[1], attrs["b_scale"])
    real = np.float64(attrs["a_scale"]) * np.float64(attrs["b_scale"]) / np.float64(attrs["out_scale"])
    mult, shift = multiplier(real)
    lanes = _vector_lanes(inputs, product.shape)
    scaled = np.where(lanes, multiply_half_up_then_away(product, mult, shift), multiply(product, mult, shift))
    return [saturated_real(scaled, attrs["out_zero"], attrs["out_scale"], attrs["dtype"])]


def _vector_lanes(inputs: list, shape: tuple) -> np.ndarray:
    """True for the outputs that fall in whole 16-lane blocks of their run."""
    run = _run_length(np.shape(inputs[0]), np.shape(inputs[1]), shape)
    return (np.arange(int(np.prod(shape))) % run < run // 16 * 16).reshape(shape)


def add_kernel(inputs: list, attrs: dict) -> list[np.ndarray]:
    a, b = (centered_storage(v, attrs[f"{k}_scale"]) for v, k in zip(inputs, "ab"))
    a, b = np.broadcast_arrays(a, b)
    twice_max = 2 * max(np.float32(attrs["a_scale"]), np.float32(attrs["b_scale"]))
    (ma, sa), (mb, sb) = (multiplier(np.float64(np.float32(attrs[f"{k}_scale"])) / np.float64(twice_max))
                          for k in "ab")
    left = ADD_LEFT_SHIFT[STORAGE_QTYPES[attrs["dtype"]]]
    mo, so = multiplier(np.float64(twice_max) / ((1 << left) * np.float64(np.float32(attrs["out_scale"]))))
    vector_sum = high_half_up(a, ma, left + sa) + high_half_up(b, mb, left + sb)
    scalar_sum = multiply(a << left, ma, sa) + multiply(b << left, mb, sb)
    scaled = np.where(_vector_lanes(inputs, a.shape), multiply_half_up_then_away(vector_sum, mo, so),
                      multiply(scalar_sum, mo, so))
    return [saturated_real(scaled, attrs["out_zero"], attrs["out_scale"], attrs["dtype"])]


def infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
    return [TensorInfo(broadcast(inputs[0].shape, inputs[1].shape), "float32")]


OPS = [
    OpDef("TFLiteQuantizedAdd", infer, add_kernel, default_cost, 2, 2,
          doc="ADD of a quantized TFLite model with LiteRT's integer arithmetic (16-lane blocks and scalar tail "
              "rounded as the kernel does); attrs dtype, a_scale, a_zero, b_scale, b_zero, out_scale, out_zero."),
    OpDef("TFLiteQuantizedMul", infer, mul_kernel, default_cost, 2, 2,
          doc="MUL of a quantized TFLite model with LiteRT's integer arithmetic (16-lane blocks and scalar tail "
              "rounded as the kernel does); same attrs as TFLiteQuantizedAdd."),
]
