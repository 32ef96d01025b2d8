"""Quantized CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED with LiteRT's integer arithmetic.

A float Conv on dequantized values, rounded once onto the output grid, differs by one LSB from the
integer kernel wherever the exact value lies near a rounding tie, and those differences compound over
deep models. These ops compute what LiteRT computes: the input's stored integers are recovered from
the dequantized graph value, the int32 accumulator ``sum((x - x_zero) * (w - w_zero)) + bias`` is
formed exactly (float32 when the weights' L1 bound keeps every partial sum below 2**24, else float64),
then requantized per output channel by ``x_scale * w_scale / out_scale`` with the half-up fixed-point
rounding of LiteRT's vector kernels (ruy's for convolutions and fully connected layers; the int8
depthwise kernel rounds blocks of 8 channels so and the remaining channels with gemmlowp's ties away
from zero), and saturated to the storage type. The output is dequantized
again for the float graph. Fused activations stay separate Relu/Clip nodes: on grid values they clamp
exactly as the integer kernels' output bounds do.

Attributes: those of the inner op (Conv: ``kernel_shape, group, strides, pads, dilations``; Gemm:
``transB``) plus ``dtype`` (storage type of input and output), ``x_scale, x_zero, w_scales, w_zero,
out_scale, out_zero``. Inputs: x (float, on its grid), the weights' stored integers, the int32 bias
(also accepted as real values, as a quantized build hands them to nodes it runs in float).
"""

from __future__ import annotations

import numpy as np

from rknn_core.ir import TensorInfo
from rknn_core.ops import conv, nn
from rknn_core.ops._quant import EXACT_FLOAT32, derived
from rknn_core.quant.fixedpoint import multiply
from rknn_core.records import OpDef
from rknn_tflite.fixed_point import centered_storage, multiplier, multiply_half_up, saturated_real

QUANT_ATTRS = ("dtype", "x_scale", "x_zero", "w_scales", "w_zero", "out_scale", "out_zero")


def _along(values, ndim: int, axis: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return np.asarray(values, np.float64).reshape(shape)


def _centered_weights(w: np.ndarray, attrs: dict, out_axis: int) -> tuple[np.ndarray, np.ndarray]:
    """float64 centered weights and each output channel's L1 norm (cached per constant). Real-valued
    weights (a quantized build hands float nodes dequantized constants) are mapped back to storage."""
    zero = int(attrs["w_zero"])

    def make(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if w.dtype.kind == "f":
            wc = np.rint(w.astype(np.float64) / _along(attrs["w_scales"], w.ndim, out_axis))
        else:
            wc = w.astype(np.float64) - zero
        axes = tuple(a for a in range(wc.ndim) if a != out_axis)
        return wc, np.abs(wc).sum(axis=axes)

    return derived(w, ("tflite_centered", zero, tuple(attrs["w_scales"]), out_axis), make)


def _stored_bias(bias: np.ndarray, attrs: dict) -> np.ndarray:
    """The int32 bias as int64 (mapped back from real values when it comes dequantized)."""
    if bias.dtype.kind != "f":
        return bias.astype(np.int64)
    scales = np.float64(attrs["x_scale"]) * np.asarray(attrs["w_scales"], np.float64)
    return np.rint(bias.astype(np.float64) / scales).astype(np.int64)


def _accumulate(inputs: list, attrs: dict, inner, out_axis: int) -> np.ndarray:
    """The exact integer accumulators (int64) of the inner op on centered integers, bias added."""
    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    xc = centered_storage(x, attrs["x_scale"])
    wc, l1 = _centered_weights(w, attrs, out_axis)
    exact32 = float(l1.max(initial=0.0)) * float(np.abs(xc).max(initial=0.0)) < EXACT_FLOAT32
    dtype = np.float32 if exact32 else np.float64
    plain = {k: v for k, v in attrs.items() if k not in QUANT_ATTRS}
    acc = inner([xc.astype(dtype), wc.astype(dtype, copy=False), None], plain)[0]
    acc = np.rint(acc).astype(np.int64)
    if bias is not None:
        shape = [1] * acc.ndim
        shape[1 if acc.ndim > 2 else -1] = -1
        acc += _stored_bias(np.asarray(bias), attrs).reshape(shape)
    return acc


def _requantize(acc: np.ndarray, attrs: dict, channel_axis: int, scalar_from: int | None = None) -> np.ndarray:
    """Per-channel fixed point, saturated, dequantized to float32: half up, except that channels from
    ``scalar_from`` on round ties away from zero (the scalar tail of LiteRT's int8 depthwise kernel)."""
    real = np.float64(attrs["x_scale"]) * np.asarray(attrs["w_scales"], np.float64) / np.float64(attrs["out_scale"])
    mult, shift = multiplier(real)
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    if mult.size > 1:
        mult, shift = mult.reshape(shape), shift.reshape(shape)
    scaled = multiply_half_up(acc, mult, shift)
    if scalar_from is not None and scalar_from < acc.shape[channel_axis]:
        tail = (np.arange(acc.shape[channel_axis]) >= scalar_from).reshape(shape)
        scaled = np.where(tail, multiply(acc, mult, shift), scaled)
    return saturated_real(scaled, attrs["out_zero"], attrs["out_scale"], attrs["dtype"])


def conv_kernel(inputs: list, attrs: dict) -> list[np.ndarray]:
    acc = _accumulate(inputs, attrs, conv.kernel, 0)
    channels = acc.shape[1]
    depthwise = int(attrs.get("group", 1)) > 1 and attrs["dtype"] == "int8"
    return [_requantize(acc, attrs, 1, channels // 8 * 8 if depthwise else None)]


def fully_connected_kernel(inputs: list, attrs: dict) -> list[np.ndarray]:
    acc = _accumulate(inputs, attrs, nn.gemm_kernel, 0)
    return [_requantize(acc, attrs, -1)]


def _float_output(infer):
    def wrapped(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
        (out,) = infer(inputs, {k: v for k, v in attrs.items() if k not in QUANT_ATTRS})
        return [TensorInfo(out.shape, "float32")]
    return wrapped


OPS = [
    OpDef("TFLiteQuantizedConv", _float_output(conv.infer), conv_kernel, conv.cost, 2, 3,
          doc="CONV_2D / DEPTHWISE_CONV_2D of a quantized TFLite model with LiteRT's integer arithmetic (NCHW "
              "inner Conv; attrs of Conv plus dtype, x_scale, x_zero, w_scales, w_zero, out_scale, out_zero)."),
    OpDef("TFLiteQuantizedFullyConnected", _float_output(nn.gemm_infer), fully_connected_kernel, nn.gemm_cost, 2, 3,
          doc="FULLY_CONNECTED of a quantized TFLite model with LiteRT's integer arithmetic (inner Gemm with "
              "transB; same quantization attrs)."),
]
