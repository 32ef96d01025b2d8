"""``Mish``: ``y = x * tanh(softplus(x))`` (ONNX opset 18), with shape inference, float and quantized
kernels and cost."""

from __future__ import annotations

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import TensorInfo
from rknn_core.quant.kernels import lut_kernel
from rknn_core.records import Cost

FLOAT_DTYPES = ("float16", "float32", "float64")


def infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
    """One output with the input's shape and dtype; Mish is defined for floating types only."""
    x = inputs[0]
    if x.dtype not in FLOAT_DTYPES:
        raise RknnError(f"Mish takes a floating-point input, got {x.dtype}")
    return [TensorInfo(tuple(x.shape), x.dtype)]


def mish(x: np.ndarray) -> np.ndarray:
    """``x * tanh(softplus(x))`` without overflow or cancellation.

    ``softplus(x) = log(1 + exp(x))`` is computed as ``logaddexp(0, x)``, which never overflows;
    ``tanh`` saturates to 1 for large ``x``, and for very negative ``x`` both factors go smoothly to 0.
    float16 is computed in float32 and rounded back.
    """
    work = np.asarray(x, dtype=np.promote_types(x.dtype, np.float32))
    return (work * np.tanh(np.logaddexp(0, work))).astype(x.dtype, copy=False)


def kernel(inputs: list[np.ndarray], attrs: dict) -> list[np.ndarray]:
    return [mish(inputs[0])]


# The integer form: a lookup table over every input code, table[q] = quantize(mish(dequantize(q))),
# as the NPU's activation unit computes it; within 0.5 output LSB of ``mish`` on the same inputs.
quant_kernel = lut_kernel(mish)


def cost(inputs: list[TensorInfo | None], outputs: list[TensorInfo], attrs: dict) -> Cost:
    """About four operations per element (exp, log1p, tanh, multiply); input read, output written."""
    out = outputs[0]
    return Cost(macs=4 * out.size, bytes=inputs[0].nbytes + out.nbytes)
