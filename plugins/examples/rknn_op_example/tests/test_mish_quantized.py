"""Mish checked with the plugin author kit (rknn_core.testing): float kernel against onnxruntime on
random shapes, the lookup-table quantized kernel within its bound, and a quantized vendor flow."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from rknn_core import fileformat
from rknn_core.testing import (
    check_quant_kernel,
    check_random_shapes,
    make_model,
    registry_with,
    run_ort,
    save_model,
    vendor_flow,
)


@pytest.fixture(scope="module")
def registry():
    """The installed plugins with this package's plugin module as the one under test."""
    return registry_with("rknn_op_example.plugin", name="op_example")


def test_mish_float_kernel_matches_onnxruntime_on_random_shapes(registry):
    shapes = check_random_shapes("Mish", trials=4, seed=7, opset=18, scale=6.0, registry=registry)
    assert len(set(shapes)) == 4


@pytest.mark.parametrize("dtype", ["asymmetric_quantized-u8", "dynamic_fixed_point-8", "dynamic_fixed_point-16"])
def test_mish_quantized_kernel_is_within_half_an_output_lsb(registry, dtype):
    """A lookup table adds only the output's rounding: at most 0.5 LSB from the float kernel."""
    x = np.concatenate([np.linspace(-12, 12, 241), np.random.default_rng(8).standard_normal(200) * 4]).astype(np.float32)
    worst = check_quant_kernel("Mish", [x], quantized_dtype=dtype, lsb=0.501, registry=registry)
    assert worst > 0.1  # the check measured real rounding, not a float pass-through


def _conv_mish_model(x: np.ndarray):
    w = (np.random.default_rng(9).standard_normal((4, x.shape[1], 1, 1)) * 0.7).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv0"),
             helper.make_node("Mish", ["c"], ["y"], name="mish_node")]
    return make_model(nodes, {"x": x}, ["y"], {"w": w}, opset=18)


def test_quantized_vendor_flow_runs_mish_on_integers(registry, tmp_path):
    rng = np.random.default_rng(10)
    x = (rng.standard_normal((1, 3, 6, 6)) * 2).astype(np.float32)
    path = save_model(_conv_mish_model(x), str(tmp_path))
    samples = [[(rng.standard_normal(x.shape) * 2).astype(np.float32)] for _ in range(8)] + [[x]]
    (y,) = vendor_flow(path, [x], quantize=True, dataset=samples, tmp_dir=str(tmp_path), registry=registry)

    graph = fileformat.load(str(tmp_path / "model.rknn")).graph
    (mish,) = [n for n in graph.nodes if n.op == "Mish"]
    assert mish.name not in graph.metadata["float_nodes"]
    out_q = graph.tensors[mish.outputs[0]].quant
    assert out_q is not None and out_q.qtype == "u8"
    codes = y / out_q.scale[0] + out_q.zero_point[0]  # Mish's integer output, dequantized: on its u8 grid
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-3)
    ref = run_ort(path, {"x": x})[0]
    span = float(ref.max() - ref.min())
    assert np.abs(y - ref).max() < 0.04 * span  # a few u8 steps of the Conv input, weight and Mish output
