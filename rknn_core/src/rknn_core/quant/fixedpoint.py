"""Integer requantization as the NPU (and TFLite's reference kernels) compute it.

A real multiplier ``m`` is stored as an int32 ``mult`` in [2**30, 2**31) and a shift, with
``m = mult * 2**(shift - 31)``. ``acc * m`` is then a saturating rounding doubling high multiply
followed by a rounding right shift — no floating point at run time.
"""

from __future__ import annotations

import numpy as np

from rknn_core.quant.params import QTYPES


def quantize_multiplier(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int32 mantissas and shifts with ``m == mult * 2**(shift - 31)`` (mult 0 for m == 0)."""
    m = np.asarray(m, dtype=np.float64)
    mantissa, shift = np.frexp(m)  # m = mantissa * 2**shift, mantissa in [0.5, 1)
    mult = np.round(mantissa * (1 << 31)).astype(np.int64)
    overflow = mult == (1 << 31)
    mult = np.where(overflow, mult // 2, mult)
    shift = np.where(overflow, shift + 1, shift).astype(np.int64)
    return np.where(m == 0, 0, mult), np.where(m == 0, 0, shift)


def _rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    total = ab + nudge
    # integer division by 2**31 truncating toward zero
    return np.where(total >= 0, total >> 31, -((-total) >> 31))


def rounding_shift_right(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """``round(x / 2**exponent)``, ties away from zero; shifts beyond 62 act as 62 (the result is 0)."""
    exponent = np.minimum(exponent, 62)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``round(acc * m)`` in fixed point, for int32 accumulators (held as int64)."""
    acc = np.clip(np.asarray(acc, dtype=np.int64), -(2**31), 2**31 - 1)
    left = np.minimum(np.maximum(shift, 0), 32)  # beyond 32 every nonzero value saturates anyway
    right = np.maximum(-shift, 0)
    high = _rounding_doubling_high_mul(np.clip(acc << left, -(2**31), 2**31 - 1), mult)
    return rounding_shift_right(high, right)


def shift_by_power_of_two(acc: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """``round(acc * 2**exponent)`` for 64-bit accumulators (dynamic fixed point needs no multiplier)."""
    acc = np.asarray(acc, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    return np.where(exponent >= 0, acc << np.minimum(np.maximum(exponent, 0), 62),
                    rounding_shift_right(acc, np.maximum(-exponent, 0)))


def multiplier_plan(real_multiplier: np.ndarray) -> tuple[bool, np.ndarray, np.ndarray]:
    """How ``requantize`` applies ``real_multiplier``: (power_of_two, mult, shift), int64 arrays.

    All powers of two (dynamic fixed point): a rounding shift of the 64-bit accumulator by ``shift``
    (``mult`` unused). Otherwise the int32 fixed-point multiplier ``mult * 2**(shift - 31)``.
    """
    m = np.asarray(real_multiplier, dtype=np.float64)
    mantissa, exponent = np.frexp(m)
    if np.all(mantissa == 0.5):
        return True, np.zeros_like(exponent, dtype=np.int64), (exponent - 1).astype(np.int64)
    mult, shift = quantize_multiplier(m)
    return False, mult.astype(np.int64), shift.astype(np.int64)


def requantize(acc: np.ndarray, real_multiplier: np.ndarray, zero_point: np.ndarray | int, qtype: str,
               bounds: tuple[int, int] | None = None) -> np.ndarray:
    """Accumulators to output storage: multiply, add the zero point, saturate (to ``bounds`` if tighter).

    A power-of-two multiplier (dynamic fixed point) is a rounding shift of the 64-bit accumulator, as
    16-bit hardware with wide accumulators computes it; any other goes through the int32 fixed-point
    multiplier.
    """
    pot, mult, shift = multiplier_plan(real_multiplier)
    out = (shift_by_power_of_two(acc, shift) if pot else multiply(acc, mult, shift)) + zero_point
    lo, hi, dtype = QTYPES[qtype]
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return np.clip(out, lo, hi).astype(dtype)
