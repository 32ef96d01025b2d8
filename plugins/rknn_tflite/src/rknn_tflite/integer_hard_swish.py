"""TFLiteQuantizedHardSwish: HARD_SWISH of an 8-bit tensor as LiteRT computes it on x86.

LiteRT's vector branch of this kernel is compiled only for ARM, so on x86 every element takes the
reference code: 16-bit fixed point on a "high-resolution" input scale (``in_scale / 128``), a
"relu-ish" factor ``clamp(x + 3, 0, 6) / 6`` on the scale ``3 / 32768``, both multipliers derived in
float32 and cut down to 16-bit mantissas. The result depends only on the input code, so it is
computed once for all 256 codes and looked up. Attributes: ``dtype``, ``in_scale, in_zero, out_scale,
out_zero``; input and output are float graph values on their grids.
"""

from __future__ import annotations

import functools

import numpy as np

from rknn_core.ops._common import default_cost, same_as_first
from rknn_core.quant.fixedpoint import rounding_shift_right
from rknn_core.records import OpDef
from rknn_tflite.fixed_point import STORAGE, centered_storage, multiplier, saturated_real

I16_MIN, I16_MAX = -(2**15), 2**15 - 1


def _int16_multiplier(real: np.float32) -> tuple[int, int]:
    """QuantizeMultiplier then DownScaleInt32ToInt16Multiplier (rounded to the top 16 bits)."""
    mult, shift = (int(v) for v in multiplier(np.float64(real)))
    if mult >= 2**31 - 1 - 2**15:
        return I16_MAX, shift
    return (mult + 2**15) >> 16, shift


def _rounding_doubling_high_mul16(a: np.ndarray, b: int) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul on int16 (ties away from zero)."""
    ab = a * b
    total = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    high = np.where(total >= 0, total >> 15, -((-total) >> 15))
    return np.where((a == I16_MIN) & (b == I16_MIN), I16_MAX, high)


def _doubling_high_mul16(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TFLite's non-rounding SaturatingDoublingHighMul on int16 (C division truncates)."""
    ab = a * b
    high = np.where(ab >= 0, ab >> 15, -((-ab) >> 15))
    return np.where((a == I16_MIN) & (b == I16_MIN), I16_MAX, high)


def _saturating_left_shift16(x: np.ndarray, amount: int) -> np.ndarray:
    return np.clip(x << amount, I16_MIN, I16_MAX)


@functools.lru_cache(maxsize=256)
def table(dtype: str, in_scale: float, in_zero: int, out_scale: float, out_zero: int) -> np.ndarray:
    """Output codes (minus the output zero point) for every input code of ``dtype``, lowest first."""
    lo, hi = STORAGE[dtype]
    hires_scale = np.float32(1.0 / 128.0) * np.float32(in_scale)
    out_mult, out_exp = _int16_multiplier(hires_scale / np.float32(out_scale))
    relu_mult, relu_exp = _int16_multiplier(hires_scale / np.float32(3.0 / 32768.0))
    hires = (np.arange(lo, hi + 1, dtype=np.int64) - in_zero) * 128
    preshift = _rounding_doubling_high_mul16(hires, out_mult)
    reluish = _saturating_left_shift16(hires, relu_exp - 1) if relu_exp > 0 else hires
    reluish = _rounding_doubling_high_mul16(reluish, relu_mult)
    if relu_exp > 0:
        reluish = _saturating_left_shift16(reluish, 1)
    elif relu_exp < 0:
        reluish = rounding_shift_right(reluish, -relu_exp)
    reluish = (reluish + (1 << 15)) >> 1
    return rounding_shift_right(_doubling_high_mul16(reluish, preshift), -out_exp)


def kernel(inputs: list, attrs: dict) -> list[np.ndarray]:
    lo, _ = STORAGE[attrs["dtype"]]
    codes = centered_storage(inputs[0], attrs["in_scale"]) + int(attrs["in_zero"])
    lut = table(attrs["dtype"], attrs["in_scale"], int(attrs["in_zero"]), attrs["out_scale"], int(attrs["out_zero"]))
    return [saturated_real(lut[codes - lo], attrs["out_zero"], attrs["out_scale"], attrs["dtype"])]


OPS = [OpDef("TFLiteQuantizedHardSwish", same_as_first, kernel, default_cost, 1, 1,
             doc="HARD_SWISH between 8-bit tensors with LiteRT's 16-bit fixed-point reference arithmetic; attrs "
                 "dtype, in_scale, in_zero, out_scale, out_zero.")]
