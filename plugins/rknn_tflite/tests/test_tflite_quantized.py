"""Already-quantized .tflite models (int8 per-channel, uint8 per-tensor): imported as a float graph with the
model's QuantParams on its tensors, every integer tensor rounded and saturated onto its grid; the float
simulation stays within 1 LSB of ai-edge-litert."""

from __future__ import annotations

import numpy as np
import pytest
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


def test_int8_per_channel_model_bit_exact(tmp_path):
    path = int8_model(str(tmp_path / "int8.tflite"))
    graph = load_tflite(path)
    weights = [t for t in graph.tensors.values() if t.is_const and t.quant is not None and t.quant.per_channel]
    assert {t.quant.axis for t in weights} == {0} and len(weights) >= 2  # OIHW output channels after transposing
    assert graph.tensors[graph.inputs[0]].dtype == "int8" and graph.tensors[graph.outputs[0]].dtype == "int8"
    x = np.random.default_rng(0).integers(-128, 128, (1, 8, 8, 4)).astype(np.int8)
    ref = run_litert(path, [x])[0].astype(np.int32)
    ours = run_rknn(path, [x])[0].astype(np.int32)
    np.testing.assert_array_equal(ours, ref)  # every op of the model runs LiteRT's integer arithmetic


def test_uint8_model_with_quantize_dequantize(tmp_path):
    path = uint8_model(str(tmp_path / "uint8.tflite"))
    x = np.random.default_rng(0).uniform(-2, 2, (1, 16)).astype(np.float32)
    ref = run_litert(path, [x])[0]
    ours = run_rknn(path, [x])[0]
    assert np.abs(ours - ref).max() <= 0.05 + 1e-6  # at most one output LSB (scale 0.05)


# MEAN cases: (dtype, keep_dims, spatial size, channels); >= 16 channels exercise LiteRT's 16-lane blocks,
# other channel counts the scalar tail; 2x2 windows with scales near 1 give positive multiplier shifts.
MEAN_CASES = [("int8", True, 4, 22), ("int8", True, 2, 35), ("int8", True, 7, 31), ("int8", True, 16, 5),
              ("int8", False, 7, 30), ("int8", False, 2, 20), ("uint8", True, 7, 34), ("uint8", True, 2, 16),
              ("uint8", False, 2, 37)]


@pytest.mark.parametrize("dtype, keep, size, channels", MEAN_CASES)
def test_integer_mean_bit_exact_with_litert(tmp_path, dtype, keep, size, channels):
    """MEAN between integer tensors imports as "TFLiteIntegerMean" and equals the LiteRT kernel exactly."""
    rng = np.random.default_rng(size * 100 + channels)
    offset = 128 if dtype == "uint8" else 0
    x_q = _q(rng.uniform(0.001, 0.003), int(rng.integers(-40, 20)) + offset)
    y_q = _q(rng.uniform(0.0005, 0.003), int(rng.integers(-40, 20)) + offset)
    m = TfliteWriter()
    x = m.input([1, size, size, channels], dtype, x_q)
    y = m.tensor([1, 1, 1, channels] if keep else [1, channels], dtype, y_q)
    m.op("MEAN", [x, m.const(np.array([1, 2]), "int32")], [y], "ReducerOptions", KeepDims=keep)
    path = m.save(str(tmp_path / "mean.tflite"), [y])
    graph = load_tflite(path)
    assert [n.op for n in graph.nodes].count("TFLiteIntegerMean") == 1
    lo, hi = (0, 255) if dtype == "uint8" else (-128, 127)
    data = rng.integers(lo, hi + 1, (1, size, size, channels)).astype(dtype)
    ref = run_litert(path, [data])[0]
    ours = run_rknn(path, [data])[0]
    assert ours.dtype == ref.dtype and ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)


def test_float_mean_stays_reduce_mean(tmp_path):
    m = TfliteWriter()
    x = m.input([1, 3, 3, 4])
    y = m.tensor([1, 4])
    m.op("MEAN", [x, m.const(np.array([1, 2]), "int32")], [y], "ReducerOptions", KeepDims=False)
    path = m.save(str(tmp_path / "mean.tflite"), [y])
    assert "ReduceMean" in [n.op for n in load_tflite(path).nodes]
    data = np.random.default_rng(0).normal(size=(1, 3, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(run_rknn(path, [data])[0], data.mean(axis=(1, 2)), rtol=1e-6)


def _bias_q(x_scale: float, w_q: dict) -> dict:
    scale = x_scale * np.asarray(w_q["scale"])
    return _q(scale, np.zeros(scale.size), 0)


def _product_model(path: str, kind: str, dtype: str, rng, depth: int) -> tuple[str, list[int]]:
    """One quantized CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED between ``dtype`` tensors."""
    off = 128 if dtype == "uint8" else 0
    m = TfliteWriter()
    if kind == "fc":
        x = m.input([2, 24], dtype, _q(0.03, off - 5))
        w_q = _q(0.01, off) if dtype == "uint8" else _q(rng.uniform(0.004, 0.01, 7), np.zeros(7), 0)
        w = m.const(rng.integers(0 if off else -127, 256 if off else 128, (7, 24)), dtype, w_q)
        b = m.const(rng.integers(-3000, 3000, 7), "int32", _bias_q(0.03, w_q))
        y = m.tensor([2, 7], dtype, _q(0.02, off + 3))
        m.op("FULLY_CONNECTED", [x, w, b], [y], "FullyConnectedOptions", FusedActivationFunction=1)
        return m.save(path, [y]), [2, 24]
    x = m.input([1, 9, 9, depth], dtype, _q(0.05, off - 3))
    depthwise = kind == "depthwise"
    shape = (1, 3, 3, depth) if depthwise else (5, 3, 3, depth)
    channels = shape[3] if depthwise else shape[0]
    w_q = _q(0.01, off) if dtype == "uint8" else _q(rng.uniform(0.004, 0.02, channels), np.zeros(channels), 3 if depthwise else 0)
    w = m.const(rng.integers(0 if off else -127, 256 if off else 128, shape), dtype, w_q)
    b = m.const(rng.integers(-200, 200, channels), "int32", _bias_q(0.05, w_q))
    out = [1, 5, 5, channels]
    y = m.tensor(out, dtype, _q(0.03, off - 2))
    if depthwise:
        m.op("DEPTHWISE_CONV_2D", [x, w, b], [y], "DepthwiseConv2DOptions", Padding=0, StrideH=2, StrideW=2,
             DepthMultiplier=1, DilationHFactor=1, DilationWFactor=1, FusedActivationFunction=3)
    else:
        m.op("CONV_2D", [x, w, b], [y], "Conv2DOptions", Padding=0, StrideH=2, StrideW=2, DilationHFactor=1,
             DilationWFactor=1, FusedActivationFunction=3)
    return m.save(path, [y]), [1, 9, 9, depth]


# depthwise with 6 channels: all in the int8 kernel's scalar tail; 12: a block of 8 and a tail of 4
@pytest.mark.parametrize("kind, op, depth", [("conv", "TFLiteQuantizedConv", 6), ("depthwise", "TFLiteQuantizedConv", 6),
                                             ("depthwise", "TFLiteQuantizedConv", 12),
                                             ("fc", "TFLiteQuantizedFullyConnected", 0)])
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_quantized_products_bit_exact_with_litert(tmp_path, kind, op, depth, dtype):
    """Quantized convolutions and fully connected layers import as integer ops that equal LiteRT exactly."""
    rng = np.random.default_rng(len(kind) + len(dtype) + depth)
    path, shape = _product_model(str(tmp_path / "m.tflite"), kind, dtype, rng, depth)
    assert op in [n.op for n in load_tflite(path).nodes]
    lo, hi = (0, 255) if dtype == "uint8" else (-128, 127)
    for _ in range(3):
        x = rng.integers(lo, hi + 1, shape).astype(dtype)
        np.testing.assert_array_equal(run_rknn(path, [x])[0], run_litert(path, [x])[0])


# (shape a, shape b): same shape with a scalar tail (37 = 2 blocks + 5), a per-channel broadcast whose runs of
# 20 channels end in a tail, a broadcast scalar
MUL_SHAPES = [([1, 37], [1, 37]), ([1, 3, 3, 20], [1, 1, 1, 20]), ([1, 4, 5, 16], [1, 1, 1, 1])]


@pytest.mark.parametrize("a_shape, b_shape", MUL_SHAPES)
@pytest.mark.parametrize("code, op", [("MUL", "TFLiteQuantizedMul"), ("ADD", "TFLiteQuantizedAdd")])
def test_quantized_add_mul_bit_exact_with_litert(tmp_path, a_shape, b_shape, code, op):
    """MUL and ADD between int8 tensors import as integer ops equal to LiteRT, scalar tails included."""
    rng = np.random.default_rng(len(a_shape) * 10 + len(b_shape))
    m = TfliteWriter()
    a = m.input(a_shape, "int8", _q(0.02, -7))
    b = m.input(b_shape, "int8", _q(0.015, 4))
    y = m.tensor(a_shape, "int8", _q(0.0011 if code == "MUL" else 0.03, -3))
    m.op(code, [a, b], [y], f"{code.title()}Options")
    path = m.save(str(tmp_path / "op.tflite"), [y])
    assert op in [n.op for n in load_tflite(path).nodes]
    hits = 0
    for _ in range(4):
        xs = [rng.integers(-128, 128, s).astype(np.int8) for s in (a_shape, b_shape)]
        ours, ref = run_rknn(path, xs)[0], run_litert(path, xs)[0]
        np.testing.assert_array_equal(ours, ref)
        hits += int(np.any(np.abs(ref.astype(int)) < 127))
    assert hits  # not everything saturated


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_quantized_average_pool_bit_exact_with_litert(tmp_path, dtype):
    """AVERAGE_POOL_2D on one grid imports as "TFLiteQuantizedAveragePool" and equals LiteRT exactly (SAME
    padding: border windows hold fewer elements; sums of both signs)."""
    rng = np.random.default_rng(7)
    q = _q(0.04, 130 if dtype == "uint8" else 3)
    m = TfliteWriter()
    x = m.input([1, 7, 7, 19], dtype, q)
    y = m.tensor([1, 4, 4, 19], dtype, q)
    m.op("AVERAGE_POOL_2D", [x], [y], "Pool2DOptions", Padding=0, StrideH=2, StrideW=2, FilterHeight=3,
         FilterWidth=3)
    path = m.save(str(tmp_path / "pool.tflite"), [y])
    assert "TFLiteQuantizedAveragePool" in [n.op for n in load_tflite(path).nodes]
    lo, hi = (0, 255) if dtype == "uint8" else (-128, 127)
    for _ in range(3):
        data = rng.integers(lo, hi + 1, (1, 7, 7, 19)).astype(dtype)
        np.testing.assert_array_equal(run_rknn(path, [data])[0], run_litert(path, [data])[0])


@pytest.mark.parametrize("dtype, x_q, y_q", [("int8", (0.05, -20), (0.03, -110)), ("int8", (0.2, 10), (0.02, -128)),
                                             ("uint8", (0.04, 140), (0.025, 20))])
def test_quantized_hard_swish_bit_exact_with_litert(tmp_path, dtype, x_q, y_q):
    """HARD_SWISH imports as "TFLiteQuantizedHardSwish" and equals LiteRT on every input code."""
    m = TfliteWriter()
    x = m.input([1, 256], dtype, _q(*x_q))
    y = m.tensor([1, 256], dtype, _q(*y_q))
    m.op("HARD_SWISH", [x], [y])
    path = m.save(str(tmp_path / "hs.tflite"), [y])
    assert "TFLiteQuantizedHardSwish" in [n.op for n in load_tflite(path).nodes]
    lo = 0 if dtype == "uint8" else -128
    codes = np.arange(lo, lo + 256).reshape(1, 256).astype(dtype)
    ref = run_litert(path, [codes])[0]
    np.testing.assert_array_equal(run_rknn(path, [codes])[0], ref)
    assert len(np.unique(ref)) > 20  # the codes span the curve, not one saturated value


def test_quantized_build_of_an_int8_model_keeps_its_quantization(tmp_path, capsys):
    """build(do_quantization=True) on an already-quantized model keeps the model's own quantization (with a
    warning; the dataset is not used): outputs equal LiteRT's; accuracy_analysis says why it cannot run."""
    from rknn.api import RKNN

    path = int8_model(str(tmp_path / "int8.tflite"))
    x = np.random.default_rng(0).integers(-128, 128, (1, 8, 8, 4)).astype(np.int8)
    np.save(tmp_path / "x.npy", x[0])
    (tmp_path / "dataset.txt").write_text("x.npy\n")
    rknn = RKNN()
    rknn.config()
    assert rknn.load_tflite(path) == 0
    assert rknn.build(do_quantization=True, dataset=str(tmp_path / "dataset.txt")) == 0
    assert "already quantized" in capsys.readouterr().err
    assert rknn.init_runtime() == 0
    np.testing.assert_array_equal(rknn.inference([x[0]], data_type="int8", data_format="nhwc", want_float=False)[0],
                                  run_litert(path, [x])[0])
    capsys.readouterr()
    assert rknn.accuracy_analysis(inputs=str(tmp_path / "dataset.txt"), output_dir=str(tmp_path / "snap")) == -1
    assert "already quantized" in capsys.readouterr().err
    rknn.release()
