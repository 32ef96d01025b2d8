"""The whole vendor flow on a tiny Conv model, against onnxruntime."""

import numpy as np
from onnx import helper
from onnx_util import assert_close, check_against_ort, make_model, run_ort, run_rknn, save_model


def _conv_relu(rng):
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c"], ["y"])]
    x = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
    return make_model(nodes, {"x": x}, ["y"], {"w": w, "b": b}), {"x": x}


def test_conv_relu_matches_onnxruntime():
    model, inputs = _conv_relu(np.random.default_rng(0))
    out = check_against_ort(model, inputs)
    assert out[0].shape == (1, 8, 8, 8)
    assert (out[0] >= 0).all()


def test_round_trip_through_rknn_file(tmp_path):
    model, inputs = _conv_relu(np.random.default_rng(1))
    path = save_model(model, str(tmp_path))
    assert_close(run_rknn(path, inputs, via_file=True), run_ort(path, inputs))
