"""The fixed-point rounding of LiteRT's integer kernels on x86, where their NEON branches are compiled
through NEON_2_SSE.

A real multiplier is an int32 mantissa and a shift (``quant.fixedpoint.quantize_multiplier``). The
vector kernels (ruy's convolutions and fully connected layers, depthwise convolutions, the 16-lane
blocks of MEAN) apply it as VSHL, VQRDMULH and VRSHL: both roundings go half up. The 16-lane blocks of
MUL follow VQRDMULH with gemmlowp's RoundingDivideByPOT, whose ties go away from zero. The scalar
loops use gemmlowp's rules throughout (``quant.fixedpoint.multiply``).
"""

from __future__ import annotations

import numpy as np

from rknn_core.quant.fixedpoint import quantize_multiplier, rounding_shift_right
from rknn_core.quant.params import QTYPES
from rknn_tflite.reader import QTYPES as STORAGE_QTYPES

# (lowest, highest) stored value of each 8/16-bit TFLite tensor type
STORAGE = {dtype: QTYPES[qtype][:2] for dtype, qtype in STORAGE_QTYPES.items() if qtype != "i32"}


def multiplier(real) -> tuple[np.ndarray, np.ndarray]:
    """Mantissas and shifts (int64 arrays) of real multipliers given as float64 values."""
    mult, shift = quantize_multiplier(np.asarray(real, dtype=np.float64))
    return np.asarray(mult, np.int64), np.asarray(shift, np.int64)


def high_half_up(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """VSHL (wrapping int32 lanes) then VQRDMULH: ``round(acc * 2**left * mult / 2**31)``, ties up."""
    shifted = ((np.asarray(acc, np.int64) << np.maximum(shift, 0)) + 2**31) % 2**32 - 2**31
    return (shifted * mult + (1 << 30)) >> 31


def multiply_half_up(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``round(acc * m)`` as VSHL, VQRDMULH and VRSHL compute it (both roundings half up)."""
    right = np.maximum(-shift, 0)
    return (high_half_up(acc, mult, shift) + ((np.int64(1) << right) >> 1)) >> right


def multiply_half_up_then_away(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``round(acc * m)`` as VQRDMULH then gemmlowp's RoundingDivideByPOT (ties away from zero)."""
    return rounding_shift_right(high_half_up(acc, mult, shift), np.maximum(-shift, 0))


def centered_storage(x: np.ndarray, scale: float) -> np.ndarray:
    """``stored - zero_point`` (int64) of a dequantized graph value ``(stored - zero_point) * scale``."""
    return np.rint(np.asarray(x, np.float64) / scale).astype(np.int64)


def saturated_real(scaled: np.ndarray, zero: int, scale: float, dtype: str) -> np.ndarray:
    """Requantized values plus the zero point, saturated to ``dtype`` storage, as float32 real values."""
    lo, hi = STORAGE[dtype]
    stored = np.clip(scaled + int(zero), lo, hi)
    return ((stored - int(zero)) * np.float64(scale)).astype(np.float32)
