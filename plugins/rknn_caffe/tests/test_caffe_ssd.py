"""A small SSD (two heads: Permute/Flatten/Concat, PriorBox, Softmax, DetectionOutput): float against OpenCV,
and a quantized build run through the quantized simulator."""

from __future__ import annotations

import numpy as np
from caffe_util import invented, opencv_outputs, ours

from rknn_caffe.importer import invent_blobs
from rknn_caffe.writer import write_caffemodel
from rknn_core.ir import TensorInfo
from rknn_core.plugins import default_registry
from rknn_core.testing import assert_close

CLASSES = 4


def _head(name: str, bottom: str, min_size: int, max_size: int) -> str:
    priors = 4  # min, sqrt(min * max), ratios 2 and 1/2
    return f'''
layer {{ name: "{name}_loc" type: "Convolution" bottom: "{bottom}" top: "{name}_loc"
  convolution_param {{ num_output: {priors * 4} kernel_size: 3 pad: 1 }} }}
layer {{ name: "{name}_loc_perm" type: "Permute" bottom: "{name}_loc" top: "{name}_loc_perm" permute_param {{ order: 0 order: 2 order: 3 order: 1 }} }}
layer {{ name: "{name}_loc_flat" type: "Flatten" bottom: "{name}_loc_perm" top: "{name}_loc_flat" }}
layer {{ name: "{name}_mbox_conf" type: "Convolution" bottom: "{bottom}" top: "{name}_conf"
  convolution_param {{ num_output: {priors * CLASSES} kernel_size: 3 pad: 1 }} }}
layer {{ name: "{name}_conf_perm" type: "Permute" bottom: "{name}_conf" top: "{name}_conf_perm" permute_param {{ order: 0 order: 2 order: 3 order: 1 }} }}
layer {{ name: "{name}_conf_flat" type: "Flatten" bottom: "{name}_conf_perm" top: "{name}_conf_flat" }}
layer {{ name: "{name}_prior" type: "PriorBox" bottom: "{bottom}" bottom: "data" top: "{name}_prior"
  prior_box_param {{ min_size: {min_size} max_size: {max_size} aspect_ratio: 2 flip: true clip: false
    variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 offset: 0.5 }} }}'''


SSD = '''name: "mini_ssd"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 48 dim: 48 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 8 kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2" convolution_param { num_output: 16 kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "conv3" type: "Convolution" bottom: "conv2" top: "conv3" convolution_param { num_output: 16 kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }''' + _head("a", "conv2", 10, 20) + _head("b", "conv3", 20, 40) + '''
layer { name: "loc" type: "Concat" bottom: "a_loc_flat" bottom: "b_loc_flat" top: "loc" }
layer { name: "conf" type: "Concat" bottom: "a_conf_flat" bottom: "b_conf_flat" top: "conf" }
layer { name: "prior" type: "Concat" bottom: "a_prior" bottom: "b_prior" top: "prior" concat_param { axis: 2 } }
layer { name: "conf_reshape" type: "Reshape" bottom: "conf" top: "conf_reshape" reshape_param { shape { dim: 0 dim: -1 dim: 4 } } }
layer { name: "conf_softmax" type: "Softmax" bottom: "conf_reshape" top: "conf_softmax" softmax_param { axis: 2 } }
layer { name: "conf_flat" type: "Flatten" bottom: "conf_softmax" top: "conf_flat" }
layer { name: "detection_out" type: "DetectionOutput" bottom: "loc" bottom: "conf_flat" bottom: "prior" top: "detection_out"
  detection_output_param { num_classes: 4 share_location: true background_label_id: 0
    nms_param { nms_threshold: 0.45 top_k: 50 } code_type: CENTER_SIZE keep_top_k: 20 confidence_threshold: 0.3 } }
'''


def _confident(layer, k, shape, what):
    values = invented(layer, k, shape, what)
    return values * 2.5 if "mbox_conf" in layer.name else values


def _write(tmp_path) -> tuple[str, str]:
    prototxt, caffemodel = tmp_path / "ssd.prototxt", tmp_path / "ssd.caffemodel"
    prototxt.write_text(SSD)
    write_caffemodel(caffemodel, SSD, invent_blobs(str(prototxt), _confident))
    return str(prototxt), str(caffemodel)


def _rows(out: np.ndarray) -> np.ndarray:
    rows = out.reshape(-1, 7)
    rows = rows[(rows[:, 0] >= 0) & (rows[:, 2] > 0)]
    return rows[np.lexsort((-rows[:, 2], rows[:, 1]))]


def _images(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.uniform(0, 1, (1, 3, 48, 48)).astype(np.float32) for _ in range(count)]


def test_ssd_float_matches_opencv(tmp_path):
    prototxt, caffemodel = _write(tmp_path)
    x = _images(1)[0]
    ref = opencv_outputs(prototxt, caffemodel, {"data": x}, ["detection_out"])[0]
    got = ours(prototxt, caffemodel, [x], tmp_dir=str(tmp_path))[0]
    assert got.shape == (1, 1, 20, 7)
    assert len(_rows(got)) >= 3
    assert_close([_rows(got)], [_rows(ref)])


def test_ssd_quantized_build_runs_in_the_quantized_simulator(tmp_path):
    prototxt, caffemodel = _write(tmp_path)
    images = _images(4)
    x = images[0]
    float_out = ours(prototxt, caffemodel, [x], tmp_dir=str(tmp_path))[0]
    quant_out = ours(prototxt, caffemodel, [x], tmp_dir=str(tmp_path), quantize=True,
                     dataset=[[im] for im in images])[0]
    assert quant_out.shape == float_out.shape
    floats, quants = _rows(float_out), _rows(quant_out)
    assert len(quants) >= 3 and not np.array_equal(quant_out, float_out)  # detections, from the integer kernels

    def found(row):  # a float detection of the same class with the same box and score (u8 error)
        same = floats[floats[:, 1] == row[1]]
        return bool(np.any(np.all(np.abs(same[:, 2:] - row[2:]) < 0.06, axis=1)))

    assert np.mean([found(row) for row in quants]) >= 0.7, (quants, floats)


def test_detection_output_op_decodes_suppresses_and_pads():
    """The op "CaffeDetectionOutput" on hand-made priors: zero offsets decode to the priors, the second box
    (IoU 0.82 with the first) is suppressed, the third kept, the last row is padding (-1)."""
    op = default_registry().op("CaffeDetectionOutput")
    boxes = np.array([[0.1, 0.1, 0.3, 0.3], [0.12, 0.1, 0.32, 0.3], [0.6, 0.6, 0.9, 0.9]], np.float32)
    variances = np.tile(np.float32([0.1, 0.1, 0.2, 0.2]), 3)
    prior = np.stack([boxes.reshape(-1), variances])[None]
    conf = np.array([[0.1, 0.9, 0.2, 0.8, 0.3, 0.7]], np.float32)  # (background, class 1) per prior
    attrs = {"num_classes": 2, "code_type": 2, "nms_threshold": 0.45, "keep_top_k": 5, "confidence_threshold": 0.5}
    out = op.kernel([np.zeros((1, 12), np.float32), conf, prior], attrs)[0]
    assert out.shape == (1, 1, 3, 7) == op.infer([TensorInfo((1, 12)), TensorInfo((1, 6)), TensorInfo((1, 2, 12))],
                                                 attrs)[0].shape
    np.testing.assert_allclose(out[0, 0], [[0, 1, 0.9, *boxes[0]], [0, 1, 0.7, *boxes[2]], [-1] * 7], atol=1e-6)
