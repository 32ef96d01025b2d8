"""The Caffe nets OpenCV ships as samples (Debian's opencv-doc: SqueezeNet and SqueezeDet from dnn_objdetect,
TextBoxes), unpacked into .cache/models/caffe by scripts/fetch_models.py; nobody on the team wrote them.
With invented weights in Caffe's binary format they match OpenCV's DNN; where they use something rknn-caffe
does not support, the test asserts our error naming it. The solver .prototxts beside them are not nets."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from caffe_util import invent_caffemodel, opencv_outputs, ours

from rknn.api import RKNN
from rknn_caffe.importer import invent_blobs
from rknn_core.errors import RknnError
from rknn_core.testing import assert_close

DEBIAN_PROTOTXTS = pathlib.Path(__file__).resolve().parents[3] / ".cache" / "models" / "caffe"


def debian_prototxt(name: str) -> str:
    """The path of ``name.prototxt`` from opencv-doc; skips when scripts/fetch_models.py has not unpacked it."""
    path = DEBIAN_PROTOTXTS / f"{name}.prototxt"
    if not path.is_file():
        pytest.skip(f"{path} is missing: run scripts/fetch_models.py (it unpacks Debian's opencv-doc package)")
    return str(path)


def _image(size: int) -> np.ndarray:
    return np.random.default_rng(7).uniform(-1.0, 1.0, (1, 3, size, size)).astype(np.float32)


def test_squeezenet_deploy_matches_opencv(tmp_path):
    """input/input_dim header, 7x7 stride-2 first convolution, leaky ReLUs, ceil-rounded pooling, 416x416."""
    prototxt = debian_prototxt("SqueezeNet_deploy")
    caffemodel = invent_caffemodel(prototxt, tmp_path)
    x = _image(416)
    got = ours(prototxt, caffemodel, [x], tmp_dir=str(tmp_path))
    assert_close(got, opencv_outputs(prototxt, caffemodel, {"data": x}, ["predictions"]))
    assert got[0].shape == (1, 1000, 1, 1) and np.isclose(got[0].sum(), 1.0, atol=1e-5)


def test_squeezedet_deploy_matches_opencv(tmp_path):
    """SqueezeDet's head: Permute to NHWC, a three-way Slice, Reshape + Softmax over 20 classes, Sigmoid."""
    prototxt = debian_prototxt("SqueezeDet_deploy")
    caffemodel = invent_caffemodel(prototxt, tmp_path)
    x = _image(416)
    got = ours(prototxt, caffemodel, [x], tmp_dir=str(tmp_path))
    class_scores, conf_scores, permuted = opencv_outputs(prototxt, caffemodel, {"data": x},
                                                         ["softmax", "sigmoid", "permute"])
    # OpenCV forwards only the first top of a layer by name; the third top of the Slice is the tail of its input
    ref = {o.shape: o for o in (class_scores, conf_scores, permuted[..., 189:])}
    assert sorted(o.shape for o in got) == sorted(ref) == [(1, 23, 23, 9), (1, 23, 23, 36), (1, 4761, 20)]
    assert_close(got, [ref[o.shape] for o in got])


def test_squeezenet_train_test_net_runs_its_test_phase(tmp_path):
    """The training definition (Data layers per phase, crop 227, SoftmaxWithLoss and Accuracy) imports as its TEST
    phase: the net up to pool10, equal to the deploy net's pool10 with the same weights."""
    train_test, deploy = debian_prototxt("SqueezeNet_train_test"), debian_prototxt("SqueezeNet_deploy")
    caffemodel = invent_caffemodel(train_test, tmp_path)
    x = _image(227)
    got = ours(train_test, caffemodel, [x], tmp_dir=str(tmp_path))
    assert_close(got, opencv_outputs(deploy, invent_caffemodel(deploy, tmp_path), {"data": x}, ["pool10"]))


def test_squeezedet_train_test_names_its_unsupported_data_layer(caplog):
    """SqueezeDet trains from a fork's BboxData layer: load_caffe fails naming the type, layer and line (the TEST
    phase's layer), and how a plugin adds it; its SqueezeDetLoss is a loss and left out."""
    rknn = RKNN()
    try:
        assert rknn.load_caffe(model=debian_prototxt("SqueezeDet_train_test"), proto="caffe", blobs=None) == -1
    finally:
        rknn.release()
    message = "\n".join(r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    assert "'BboxData' (layer 'data', line 26)" in message and "Converter('caffe', 'BboxData'" in message
    assert "SqueezeDetLoss" not in message


def test_textboxes_vertical_prior_offsets_are_reported(caplog):
    """TextBoxes' PriorBox layers use a fork's offset_h/offset_w (two priors per place, as OpenCV reads them);
    rknn-caffe warns that it ignores the fields at their line, and the DetectionOutput then names the mismatch."""
    with pytest.raises(RknnError) as error:
        invent_blobs(debian_prototxt("textbox"), lambda layer, k, shape, what: np.zeros(shape, np.float32))
    assert "layer 'detection_out' (DetectionOutput) at line 1607 of 'textbox.prototxt'" in str(error.value)
    assert "do not fit 64510 priors" in str(error.value)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("line 888" in w and '"offset_h"' in w for w in warnings), warnings
