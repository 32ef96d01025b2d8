"""Well-known architectures (MobileNet-SSD, SqueezeNet v1.1, GoogLeNet, ResNet-50) as deploy .prototxts made
by nets.py, with invented weights in Caffe's binary format, against OpenCV's DNN."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from caffe_util import invented, opencv_outputs, ours, write_invented_net
from nets import NETS

from rknn_caffe.importer import invent_blobs
from rknn_core.testing import assert_close

CASES = {  # name -> (input shape, OpenCV layer names of the outputs)
    "squeezenet_v1.1": ((1, 3, 227, 227), ["prob"]),
    "mobilenet_ssd": ((1, 3, 300, 300), ["detection_out"]),
    "googlenet": ((1, 3, 224, 224), ["prob"]),
    "resnet50": ((1, 3, 224, 224), ["prob"]),
}
HEAVY = {"resnet50"}


def _moderate(layer, k, shape, what):
    """Invented weights; the SSD class heads scaled down so that scores spread between the 0.25 confidence
    threshold and 1 (no ties at 1.0) and fewer than keep_top_k boxes pass it (no cut among near-equal scores)."""
    values = invented(layer, k, shape, what)
    return values * 0.5 if "mbox_conf" in layer.name else values


def _image(shape) -> np.ndarray:
    return np.random.default_rng(3).uniform(-1.0, 1.0, shape).astype(np.float32)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.heavy) if n in HEAVY else n for n in CASES])
def test_architecture_matches_opencv(tmp_path, name):
    shape, outputs = CASES[name]
    prototxt, caffemodel = write_invented_net(tmp_path, name, NETS[name](), _moderate)
    x = _image(shape)
    ref = opencv_outputs(prototxt, caffemodel, {"data": x}, outputs)
    start = time.perf_counter()
    got = ours(prototxt, caffemodel, [x], tmp_dir=str(tmp_path))
    print(f"{name}: {time.perf_counter() - start:.1f} s")
    if name == "mobilenet_ssd":
        got, ref = [_detections(got[0], got[0][..., 0] >= 0)], [_detections(ref[0], ref[0][..., 2] > 0)]
        assert 5 <= len(got[0]) < 100 and len(set(got[0][:, 1])) > 2, got[0]  # many detections of several classes
    assert_close(got, ref)


def _detections(out: np.ndarray, used: np.ndarray) -> np.ndarray:
    """The rows holding detections (both keep keep_top_k rows: ours pads with -1, OpenCV with 0), by label
    then descending score (Caffe lists them by label, OpenCV by score)."""
    rows = out[used]
    return rows[np.lexsort((-rows[:, 2], rows[:, 1]))]


PUBLISHED_PARAMETERS = {"squeezenet_v1.1": 1_235_496, "googlenet": 6_998_552, "resnet50": 25_557_032}


@pytest.mark.parametrize("name", PUBLISHED_PARAMETERS)
def test_generated_nets_have_the_published_parameter_count(tmp_path, name):
    """The learned values the .prototxt implies (BatchNorm's running statistics are not parameters)."""
    prototxt = tmp_path / f"{name}.prototxt"
    prototxt.write_text(NETS[name]())
    blobs = invent_blobs(str(prototxt), invented)
    kinds = dict(re.findall(r'name: "([^"]+)"\s+type: "(\w+)"', prototxt.read_text()))
    count = sum(b.size for layer, arrays in blobs.items() if kinds[layer] != "BatchNorm" for b in arrays)
    assert count == PUBLISHED_PARAMETERS[name]


def test_mobilenet_ssd_has_1917_priors(tmp_path):
    """19x19x3 + (10x10 + 5x5 + 3x3 + 2x2 + 1x1) x 6 prior boxes with their variances, as OpenCV computes them."""
    prototxt, caffemodel = write_invented_net(tmp_path, "mobilenet_ssd", NETS["mobilenet_ssd"]())
    priors = opencv_outputs(prototxt, caffemodel, {"data": _image((1, 3, 300, 300))}, ["mbox_priorbox"])[0]
    assert priors.shape == (1, 2, 1917 * 4)
    np.testing.assert_allclose(priors[0, 1].reshape(-1, 4), np.tile([0.1, 0.1, 0.2, 0.2], (1917, 1)), rtol=1e-6)
