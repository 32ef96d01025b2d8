"""QuantizeLinear and DequantizeLinear (per tensor and per axis) against onnxruntime."""

import numpy as np
import pytest
from onnx_util import check_against_ort, single_op


@pytest.mark.parametrize("zero_dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("per_axis", [False, True])
def test_quantize_linear(zero_dtype, per_axis):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((2, 3, 4, 5)) * 4).astype(np.float32)
    x[0, 0, 0, :3] = [0.25, 0.75, -0.25]  # ties round half to even
    scale = np.array([0.5, 0.02, 0.1], np.float32) if per_axis else np.array(0.03, np.float32)
    zero = np.array([3, -2, 0] if zero_dtype == np.int8 else [128, 10, 0], zero_dtype) if per_axis \
        else np.array(5, zero_dtype)
    model = single_op("QuantizeLinear", {"x": x}, {"s": scale, "z": zero}, axis=1, opset=13)
    check_against_ort(model, {"x": x}, rtol=0, atol=0)


@pytest.mark.parametrize("per_axis", [False, True])
def test_dequantize_linear(per_axis):
    rng = np.random.default_rng(2)
    x = rng.integers(-128, 128, (2, 4, 3, 3)).astype(np.int8)
    scale = rng.uniform(0.01, 0.1, 4).astype(np.float32) if per_axis else np.array(0.05, np.float32)
    zero = rng.integers(-5, 5, 4).astype(np.int8) if per_axis else np.array(-3, np.int8)
    model = single_op("DequantizeLinear", {"x": x}, {"s": scale, "z": zero}, axis=1, opset=13)
    check_against_ort(model, {"x": x}, rtol=0, atol=0)


def test_quantize_without_zero_point_is_uint8():
    x = np.linspace(-3, 300, 24, dtype=np.float32).reshape(2, 3, 4)
    model = single_op("QuantizeLinear", {"x": x}, {"s": np.array(1.5, np.float32)}, opset=13)
    out = check_against_ort(model, {"x": x}, rtol=0, atol=0)
    assert out[0].dtype == np.uint8
