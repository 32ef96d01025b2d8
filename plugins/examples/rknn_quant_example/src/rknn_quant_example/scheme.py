"""``asymmetric_quantized-i8``: the int8 scheme of newer NPUs (and of TFLite's full-integer models).

- Activations: int8 in [-128, 127] with a per-tensor scale and zero point covering the calibrated
  range widened to include 0 (so that 0 is exact, as zero padding needs).
- Weights: int8 in [-127, 127], symmetric (zero point 0), one scale per output channel where the op
  takes per-channel weights (``axis``), else one per tensor. A channel of zeros gets scale 1.
- Biases: int32 with scale input scale x weight scale (per channel), zero point 0; the core derives
  them, as for every scheme.
"""

from __future__ import annotations

import numpy as np

from rknn_core.ir import QuantParams
from rknn_core.quant.params import round_half_away

LOW, HIGH = -128, 127
WEIGHT_BOUND = 127  # symmetric weights leave -128 unused, so that -w never overflows


def activation_params(lo: float, hi: float) -> QuantParams:
    """Per-tensor int8 parameters covering [lo, hi] widened to include 0."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise ValueError(f"cannot quantize a tensor whose range [{lo}, {hi}] is not finite")
    if hi == lo:
        hi = lo + 1.0  # a constant-zero tensor: any scale represents it exactly
    scale = (hi - lo) / (HIGH - LOW)
    zero = int(np.clip(round_half_away(np.float64(LOW - lo / scale)), LOW, HIGH))
    return QuantParams("i8", scale, zero, scheme="asymmetric_affine", min_value=lo, max_value=hi)


def weight_params(data: np.ndarray, axis: int | None) -> QuantParams:
    """Symmetric int8 parameters: ``max |w| / 127`` per output channel along ``axis`` (or per tensor)."""
    data = np.asarray(data, dtype=np.float64)
    if axis is None or data.ndim == 0:
        magnitude = np.array([np.abs(data).max(initial=0.0)])
    else:
        magnitude = np.moveaxis(np.abs(data), axis, 0).reshape(data.shape[axis], -1).max(axis=1, initial=0.0)
    scale = np.where(magnitude > 0, magnitude / WEIGHT_BOUND, 1.0)
    return QuantParams("i8", tuple(scale), (0,) * scale.size, axis=None if scale.size == 1 and axis is None else axis,
                       scheme="symmetric_affine", min_value=float(data.min(initial=0.0)),
                       max_value=float(data.max(initial=0.0)), method="layer" if axis is None else "channel")
