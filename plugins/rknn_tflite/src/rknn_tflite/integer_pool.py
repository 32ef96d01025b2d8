"""TFLiteQuantizedAveragePool: AVERAGE_POOL_2D of an 8-bit tensor as LiteRT's integer kernel computes it.

The kernel sums the stored integers of each window (padding excluded), divides by the window's
element count rounding half away from zero (``(sum +- count / 2) / count`` in C integer division) and
keeps the input's scale and zero point. A float average rounded onto the grid instead centers the
values first, so its ties fall elsewhere. Attributes: those of AveragePool (NCHW) plus ``dtype``,
``in_scale``, ``in_zero`` (the output's too); the input is the float graph value on its grid, and so is
the output.
"""

from __future__ import annotations

import numpy as np

from rknn_core.ops import pool
from rknn_core.records import OpDef
from rknn_tflite.fixed_point import centered_storage, saturated_real

AVERAGE_POOL = next(op for op in pool.OPS if op.name == "AveragePool")
QUANT_ATTRS = ("dtype", "in_scale", "in_zero")


def kernel(inputs: list, attrs: dict) -> list[np.ndarray]:
    zero = int(attrs["in_zero"])
    stored = centered_storage(inputs[0], attrs["in_scale"]) + zero
    plain = {k: v for k, v in attrs.items() if k not in QUANT_ATTRS}
    total, count = pool.window_sums(stored, plain)
    count = np.broadcast_to(count.astype(np.int64), total.shape)
    half = count // 2
    mean = np.where(total > 0, (total + half) // count, -((half - total) // count))  # C truncation
    return [saturated_real(mean - zero, zero, attrs["in_scale"], attrs["dtype"])]


def infer(inputs: list, attrs: dict) -> list:
    return AVERAGE_POOL.infer(inputs, {k: v for k, v in attrs.items() if k not in QUANT_ATTRS})


OPS = [OpDef("TFLiteQuantizedAveragePool", infer, kernel, AVERAGE_POOL.cost, 1, 1,
             doc="AVERAGE_POOL_2D between 8-bit tensors of one scale and zero point, rounded as LiteRT's integer "
                 "kernel does; attrs of AveragePool plus dtype, in_scale, in_zero.")]
