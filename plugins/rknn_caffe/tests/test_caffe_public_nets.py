"""Public network definitions nobody on the team wrote (MobileNet-SSD, SqueezeNet, GoogLeNet, ResNet-50;
tests/data, licences in LICENSES.md) with weights in Caffe's binary format, against OpenCV's DNN."""

from __future__ import annotations

import time

import numpy as np
import pytest
from caffe_util import invented, opencv_outputs, ours, write_public_net

from rknn_core.testing import assert_close

NETS = {  # name -> (input shape, OpenCV layer names of the outputs)
    "squeezenet_v1.1_deploy": ((1, 3, 227, 227), ["prob"]),
    "mobilenet_ssd_deploy": ((1, 3, 300, 300), ["detection_out"]),
    "googlenet_deploy": ((1, 3, 224, 224), ["prob"]),
    "resnet50_deploy": ((1, 3, 224, 224), ["prob"]),
}
HEAVY = {"resnet50_deploy"}


def _confident(layer, k, shape, what):
    """Invented weights; the SSD class heads scaled up so some scores pass the 0.25 confidence threshold."""
    values = invented(layer, k, shape, what)
    return values * 6 if "mbox_conf" in layer.name else values


def _image(shape) -> np.ndarray:
    return np.random.default_rng(3).uniform(-1.0, 1.0, shape).astype(np.float32)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.heavy) if n in HEAVY else n for n in NETS])
def test_public_net_matches_opencv(tmp_path, name):
    shape, outputs = NETS[name]
    prototxt, caffemodel = write_public_net(tmp_path, name, make=_confident)
    x = _image(shape)
    ref = opencv_outputs(prototxt, caffemodel, {"data": x}, outputs)
    start = time.perf_counter()
    got = ours(prototxt, caffemodel, [x], tmp_dir=str(tmp_path))
    print(f"{name}: {time.perf_counter() - start:.1f} s")
    if name == "mobilenet_ssd_deploy":
        got, ref = [_detections(got[0], got[0][..., 0] >= 0)], [_detections(ref[0], ref[0][..., 2] > 0)]
        assert 5 <= len(got[0]) <= 100 and len(set(got[0][:, 1])) > 2, got[0]  # many detections of several classes
    assert_close(got, ref)


def _detections(out: np.ndarray, used: np.ndarray) -> np.ndarray:
    """The rows holding detections (both keep keep_top_k rows: ours pads with -1, OpenCV with 0), by label
    then descending score (Caffe lists them by label, OpenCV by score)."""
    rows = out[used]
    return rows[np.lexsort((-rows[:, 2], rows[:, 1]))]
