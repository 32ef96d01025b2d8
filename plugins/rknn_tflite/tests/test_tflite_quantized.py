"""Already-quantized .tflite models (int8 per-channel, uint8 per-tensor): imported as a float graph with the
model's QuantParams on its tensors, every integer tensor rounded and saturated onto its grid; the float
simulation stays within 1 LSB of ai-edge-litert."""

from __future__ import annotations

import numpy as np
from tflite_util import run_litert, run_rknn
from tflite_writer import TfliteWriter

from rknn_tflite.importer import load_tflite


def _q(scale, zero=0, axis=0):
    return {"scale": np.atleast_1d(scale), "zero_point": np.atleast_1d(zero), "axis": axis}


def int8_model(path: str) -> str:
    """int8 in -> CONV_2D (per-channel, RELU) -> DEPTHWISE (per-channel) -> ADD -> AVERAGE_POOL -> int8 out."""
    rng = np.random.default_rng(5)
    m = TfliteWriter()
    x_q = _q(0.05, -3)
    x = m.input([1, 8, 8, 4], "int8", x_q)
    w_scale = rng.uniform(0.004, 0.01, 6)
    w = m.const(rng.integers(-127, 128, (6, 3, 3, 4)), "int8", _q(w_scale, np.zeros(6), 0))
    b = m.const(rng.integers(-200, 200, 6), "int32", _q(0.05 * w_scale, np.zeros(6), 0))
    c = m.tensor([1, 8, 8, 6], "int8", _q(0.02, -128))
    m.op("CONV_2D", [x, w, b], [c], "Conv2DOptions", Padding=0, StrideH=1, StrideW=1, DilationHFactor=1,
         DilationWFactor=1, FusedActivationFunction=1)
    dw_scale = rng.uniform(0.005, 0.02, 6)
    dw = m.const(rng.integers(-127, 128, (1, 3, 3, 6)), "int8", _q(dw_scale, np.zeros(6), 3))
    db = m.const(rng.integers(-100, 100, 6), "int32", _q(0.02 * dw_scale, np.zeros(6), 0))
    d = m.tensor([1, 8, 8, 6], "int8", _q(0.03, 2))
    m.op("DEPTHWISE_CONV_2D", [c, dw, db], [d], "DepthwiseConv2DOptions", Padding=0, StrideH=1, StrideW=1,
         DepthMultiplier=1, DilationHFactor=1, DilationWFactor=1)
    s = m.tensor([1, 8, 8, 6], "int8", _q(0.04, -1))
    m.op("ADD", [c, d], [s], "AddOptions")
    y = m.tensor([1, 4, 4, 6], "int8", _q(0.04, -1))
    m.op("AVERAGE_POOL_2D", [s], [y], "Pool2DOptions", Padding=1, StrideH=2, StrideW=2, FilterHeight=2, FilterWidth=2)
    return m.save(path, [y])


def uint8_model(path: str) -> str:
    """float in -> QUANTIZE (uint8) -> FULLY_CONNECTED -> DEQUANTIZE -> float out."""
    rng = np.random.default_rng(6)
    m = TfliteWriter()
    x = m.input([1, 16])
    xq = m.tensor([1, 16], "uint8", _q(0.02, 128))
    m.op("QUANTIZE", [x], [xq])
    w = m.const(rng.integers(0, 256, (5, 16)), "uint8", _q(0.01, 120))
    b = m.const(rng.integers(-500, 500, 5), "int32", _q(0.0002, 0))
    yq = m.tensor([1, 5], "uint8", _q(0.05, 100))
    m.op("FULLY_CONNECTED", [xq, w, b], [yq], "FullyConnectedOptions")
    y = m.tensor([1, 5])
    m.op("DEQUANTIZE", [yq], [y])
    return m.save(path, [y])


def test_int8_per_channel_model_within_lsb(tmp_path):
    path = int8_model(str(tmp_path / "int8.tflite"))
    graph = load_tflite(path)
    weights = [t for t in graph.tensors.values() if t.is_const and t.quant is not None and t.quant.per_channel]
    assert {t.quant.axis for t in weights} == {0} and len(weights) >= 2  # OIHW output channels after transposing
    assert graph.tensors[graph.inputs[0]].dtype == "int8" and graph.tensors[graph.outputs[0]].dtype == "int8"
    x = np.random.default_rng(0).integers(-128, 128, (1, 8, 8, 4)).astype(np.int8)
    ref = run_litert(path, [x])[0].astype(np.int32)
    ours = run_rknn(path, [x])[0].astype(np.int32)
    diff = np.abs(ours - ref)
    # each quantized tensor is snapped to its grid (QuantizeLinear + DequantizeLinear): within 1 LSB
    assert diff.max() <= 1 and (diff == 0).mean() >= 0.7, (diff.max(), (diff == 0).mean())


def test_uint8_model_with_quantize_dequantize(tmp_path):
    path = uint8_model(str(tmp_path / "uint8.tflite"))
    x = np.random.default_rng(0).uniform(-2, 2, (1, 16)).astype(np.float32)
    ref = run_litert(path, [x])[0]
    ours = run_rknn(path, [x])[0]
    assert np.abs(ours - ref).max() <= 0.05 + 1e-6  # at most one output LSB (scale 0.05)
