"""TFLiteIntegerMean: MEAN of an integer tensor exactly as the TFLite CPU kernels round it.

The importer simulates quantized models as float graphs whose tensors sit on their integer grids.
ReduceMean followed by a requantization rounds once, at the exact value; the TFLite kernels round
the sum with a fixed-point multiplier instead, and the two differ by one LSB on many outputs. This
op takes the dequantized input, recovers the stored integers, and applies the kernel LiteRT runs:

- ``mean4d`` (int8/uint8, 4-D, axes {1, 2}, keep_dims; ``optimized_integer_ops::Mean``): the raw
  sum times ``in_scale / (count * out_scale)`` (a float32 value turned into a fixed-point
  multiplier), plus ``out_zero - round(in_zero * in_scale / out_scale)`` computed in float32. On x86
  LiteRT compiles the kernel's NEON branch (through NEON_2_SSE): whole blocks of 16 channels round
  half up in both fixed-point steps (VQRDMULH, VRSHL); the remaining channels take the scalar
  path, which rounds ties away from zero;
- ``reference`` (every other case; ``reference_ops::QuantizedMeanOrSum``): the centered sum times
  the multiplier of ``in_scale / out_scale`` whose mantissa is divided by the count in integers.

Both saturate to the storage type; the output is dequantized again for the float graph.
"""

from __future__ import annotations

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import TensorInfo
from rknn_core.quant.fixedpoint import multiply
from rknn_core.records import Cost, OpDef
from rknn_tflite.fixed_point import STORAGE, centered_storage, multiplier, multiply_half_up, saturated_real


def _axes(attrs: dict, rank: int) -> tuple[int, ...]:
    return tuple(sorted({int(a) % rank for a in attrs["axes"]}))


def variant(dtype: str, rank: int, axes: list[int], keepdims: bool) -> str:
    """Which LiteRT kernel computes this MEAN: ``mean4d`` or ``reference``."""
    axes4 = {int(a) % rank for a in axes} if rank else set()
    if dtype in ("int8", "uint8") and rank == 4 and keepdims and len(axes) == 2 and axes4 == {1, 2}:
        return "mean4d"
    return "reference"


def _mean4d(total: np.ndarray, count: int, attrs: dict) -> np.ndarray:
    f32 = np.float32
    real = f32(attrs["in_scale"]) / (f32(count) * f32(attrs["out_scale"]))
    mult, shift = multiplier(np.float64(real))
    vector = total.shape[-1] // 16 * 16  # channels of whole 16-lane blocks
    scaled = np.concatenate([multiply_half_up(total[..., :vector], mult, shift),
                             multiply(total[..., vector:], mult, shift)], axis=-1)
    shifted_zero = f32(attrs["in_zero"]) * f32(attrs["in_scale"]) / f32(attrs["out_scale"])
    shifted_zero = shifted_zero + f32(0.5) if shifted_zero > 0 else shifted_zero - f32(0.5)
    return scaled - int(shifted_zero)  # C truncation toward zero; the output zero point comes after


def _reference(total: np.ndarray, count: int, attrs: dict) -> np.ndarray:
    mult, shift = (int(v) for v in multiplier(np.float64(attrs["in_scale"]) / np.float64(attrs["out_scale"])))
    bits = min(count.bit_length() - 1, 32, 31 + shift)
    mult, shift = (mult << bits) // count, shift - bits
    return multiply(total - int(attrs["in_zero"]) * count, mult, shift)


def infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
    x = inputs[0]
    axes = _axes(attrs, len(x.shape))
    keep = bool(attrs["keepdims"])
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes)
    return [TensorInfo(shape, "float32")]


def kernel(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]:
    x = inputs[0]
    lo, hi = STORAGE[attrs["dtype"]]
    axes = _axes(attrs, x.ndim)
    stored = centered_storage(x, attrs["in_scale"]) + int(attrs["in_zero"])
    if stored.min(initial=lo) < lo or stored.max(initial=hi) > hi:
        raise RknnError(f"input values are not on the {attrs['dtype']} grid of scale {attrs['in_scale']}")
    total = stored.sum(axis=axes, keepdims=bool(attrs["keepdims"]))
    count = int(np.prod([x.shape[a] for a in axes]))
    if count == 0:
        raise RknnError("MEAN over an empty axis has no value")
    step = _mean4d if attrs["variant"] == "mean4d" else _reference
    return [saturated_real(step(total, count, attrs), attrs["out_zero"], attrs["out_scale"], attrs["dtype"])]


def cost(inputs: list[TensorInfo | None], outputs: list[TensorInfo], attrs: dict) -> Cost:
    return Cost(inputs[0].size, inputs[0].nbytes + outputs[0].nbytes)


OPS = [OpDef("TFLiteIntegerMean", infer, kernel, cost, 1, 1,
             doc="MEAN of a quantized TFLite tensor with the LiteRT kernel's integer rounding; attrs axes, "
                 "keepdims, dtype, in_scale, in_zero, out_scale, out_zero, variant (mean4d | reference).")]
