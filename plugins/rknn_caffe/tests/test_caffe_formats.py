"""File formats and errors: legacy V1 nets, phases, unknown fork fields, errors naming layer and line,
blob shapes that do not fit, and a Caffe layer added by a plugin through rknn_converters."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from caffe_util import check_against_opencv, header, ours, random_blobs, write_net

from rknn.api import RKNN
from rknn_caffe.weights import read_caffemodel
from rknn_caffe.writer import write_caffemodel
from rknn_core.hookspecs import hookimpl
from rknn_core.records import Converter
from rknn_core.testing import assert_close, registry_with

V1_NET = '''name: "legacy"
input: "data"
input_dim: 1
input_dim: 3
input_dim: 8
input_dim: 8
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
  blobs_lr: 1 blobs_lr: 2 convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" }
layers { name: "pool1" type: POOLING bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { name: "drop" type: DROPOUT bottom: "pool1" top: "pool1" }
layers { name: "fc" type: INNER_PRODUCT bottom: "pool1" top: "fc" inner_product_param { num_output: 3 } }
layers { name: "prob" type: SOFTMAX bottom: "fc" top: "prob" }
'''


def test_legacy_v1_caffemodel_loads(tmp_path):
    """V1 'layers' with enum types, legacy 4-D blobs (num/channels/height/width) and input_dim."""
    blobs = random_blobs({"conv1": [(4, 3, 3, 3), (4,)], "fc": [(3, 64), (3,)]})
    got = check_against_opencv(tmp_path, V1_NET, blobs, {"data": np.ones((1, 3, 8, 8), np.float32)}, ["prob"])
    stored = read_caffemodel(str(tmp_path / "net.caffemodel"))
    assert stored["conv1"].type == 4 and stored["conv1"].blobs[0].legacy  # enum CONVOLUTION, num/channels/h/w
    assert stored["fc"].blobs[0].shape == (1, 1, 3, 64) and np.isclose(got[0].sum(), 1.0)


def test_layers_of_other_phases_and_fork_fields_are_left_out(tmp_path, caplog):
    logging.getLogger("rknn").addHandler(caplog.handler)  # the toolkit's logger does not propagate
    proto = header(1, 2, 3, 3) + '''
layer { name: "train_only" type: "Power" bottom: "data" top: "data" power_param { scale: 100 } include { phase: TRAIN } }
layer { name: "sig" type: "Sigmoid" bottom: "data" top: "sig" some_fork_param { value: 3 } }
layer { name: "acc" type: "Accuracy" bottom: "sig" bottom: "label" top: "acc" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "sig" bottom: "label" top: "loss" }'''
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text(proto)
    x = np.linspace(-2, 2, 18, dtype=np.float32).reshape(1, 2, 3, 3)
    got = ours(str(prototxt), None, [x], tmp_dir=str(tmp_path))
    assert_close(got, [1 / (1 + np.exp(-x))])
    logging.getLogger("rknn").removeHandler(caplog.handler)
    assert "some_fork_param" in caplog.text


def _load_error(tmp_path, proto: str, blobs=None) -> None:
    """load_caffe fails (-1); the E line is in the log."""
    prototxt = tmp_path / "bad.prototxt"
    prototxt.write_text(proto)
    caffemodel = None
    if blobs is not None:
        caffemodel = tmp_path / "bad.caffemodel"
        write_caffemodel(caffemodel, proto, blobs)
    rknn = RKNN()
    try:
        assert rknn.load_caffe(model=str(prototxt), proto="caffe",
                               blobs=None if caffemodel is None else str(caffemodel)) == -1
    finally:
        rknn.release()


CONV = '''layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 } }'''


@pytest.mark.parametrize("case", ["blob_shape", "missing_blobs", "unknown_type", "bad_bottom", "syntax",
                                  "reshape", "lstm_proto"])
def test_errors_name_layer_line_and_problem(tmp_path, caplog, case):
    head = header(1, 3, 8, 8)
    if case == "blob_shape":
        _load_error(tmp_path, head + CONV, random_blobs({"conv": [(4, 2, 3, 3), (4,)]}))
        expected = ["layer 'conv' (Convolution) at line 2", "[4, 2, 3, 3]", "[4, 3, 3, 3]"]
    elif case == "missing_blobs":
        _load_error(tmp_path, head + CONV)
        expected = ["layer 'conv' (Convolution) at line 2", "weights", "no blobs file"]
    elif case == "unknown_type":
        _load_error(tmp_path, head + '\n\nlayer { name: "odd" type: "Frobnicate" bottom: "data" top: "o" }')
        expected = ["'Frobnicate' (layer 'odd', line 4)", "Converter('caffe', 'Frobnicate'"]
    elif case == "bad_bottom":
        _load_error(tmp_path, head + 'layer { name: "r" type: "ReLU" bottom: "nothing" top: "r" }')
        expected = ["layer 'r' (ReLU) at line 2", "bottom 'nothing' is produced by no earlier layer"]
    elif case == "syntax":
        _load_error(tmp_path, head + 'layer { name: "r" type: "ReLU" bottom: "data" top: "r" ')
        expected = ["bad.prototxt", "is not a valid Caffe .prototxt"]
    elif case == "reshape":
        _load_error(tmp_path, head + '\nlayer { name: "r" type: "Reshape" bottom: "data" top: "r" '
                    'reshape_param { shape { dim: 0 dim: 5 dim: -1 } } }')
        expected = ["layer 'r' (Reshape) at line 3", "cannot hold the bottom's 192 values"]
    else:
        _load_error(tmp_path, header(4, 1, 3, name="x") + 'layer { name: "l" type: "LSTM" bottom: "x" top: "h" '
                    'recurrent_param { num_output: 2 } }')
        expected = ["layer 'l' (LSTM) at line 2", "proto='lstm_caffe'"]
    message = "\n".join(r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    for part in expected:
        assert part in message, (part, message)


def test_a_plugin_adds_a_caffe_layer(tmp_path):
    """A custom layer type converts through an rknn_converters record, reading its parameters from its text."""
    def swish(ctx, layer):
        beta = float(layer.text.split("beta:")[1].split()[0]) if "beta:" in layer.text else 1.0
        scaled = ctx.emit("Mul", [ctx.bottom(0), ctx.scalar(beta)])[0]
        ctx.top(0, "Mul", [ctx.bottom(0), ctx.emit("Sigmoid", [scaled])[0]])

    class SwishPlugin:
        @hookimpl
        def rknn_converters(self):
            return [Converter("caffe", "Swish", swish, doc="x * sigmoid(beta x)")]

    proto = header(1, 2, 2, 2) + 'layer { name: "s" type: "Swish" bottom: "data" top: "s" swish_param { beta: 2.0 } }'
    prototxt, _ = write_net(tmp_path, proto, {})
    x = np.linspace(-3, 3, 8, dtype=np.float32).reshape(1, 2, 2, 2)
    registry = registry_with(SwishPlugin())
    got = ours(prototxt, None, [x], tmp_dir=str(tmp_path), registry=registry)
    assert_close(got, [x / (1 + np.exp(-2 * x))])
