"""Whole models against OpenCV: the public cfgs Debian's ``darknet`` package ships (at a reduced input
size unless heavy) and two cfgs of the YOLOv4 generation written here (grouped routes, mish, swish,
SPP), all with weights written in the genuine .weights format; and a quantized YOLO build."""

from __future__ import annotations

import numpy as np
import pytest
from darknet_util import assert_matches_opencv, debian_cfg, ours, random_input, write_model

from rknn_darknet.writer import write_weights

pytest.importorskip("cv2")

DEBIAN_FAST = {"yolov2-tiny": 160, "yolov2-tiny-voc": 128, "yolov3-tiny": 160, "tiny": 64, "darknet": 64,
               "cifar": None}
DEBIAN_HEAVY = {"yolov2": 160, "yolov2-voc": 160, "yolov3": 160, "yolov3-spp": 160, "yolov3-voc": 128,
                "darknet19": 64, "darknet53": 64, "extraction": 64, "densenet201": 64, "vgg-conv": 64,
                "yolov3-tiny@416": 416, "yolov3@608": 608}


def _check_debian(name: str, size: int | None, tmp_path) -> list[np.ndarray]:
    cfg = debian_cfg(name.split("@")[0], tmp_path, size)
    weights = str(tmp_path / "model.weights")
    write_weights(cfg, weights, seed=1)
    return assert_matches_opencv(cfg, weights, tmp_path)


@pytest.mark.parametrize("name", sorted(DEBIAN_FAST))
def test_debian_cfg_matches_opencv(name, tmp_path):
    _check_debian(name, DEBIAN_FAST[name], tmp_path)


@pytest.mark.heavy
@pytest.mark.parametrize("name", sorted(DEBIAN_HEAVY))
def test_debian_cfg_matches_opencv_heavy(name, tmp_path):
    _check_debian(name, DEBIAN_HEAVY[name], tmp_path)


def test_yolov3_tiny_outputs_are_the_raw_maps(tmp_path):
    """Two outputs, the 13x13 and 26x26 (here 5x5, 10x10) maps of 3 x (80 + 5) channels, in NCHW."""
    outputs = _check_debian("yolov3-tiny", 160, tmp_path)
    assert [o.shape for o in outputs] == [(1, 255, 5, 5), (1, 255, 10, 10)]


def _conv(filters: int, size: int = 3, stride: int = 1, activation: str = "leaky", bn: bool = True) -> str:
    norm = "batch_normalize=1\n" if bn else ""
    return f"[convolutional]\n{norm}filters={filters}\nsize={size}\nstride={stride}\npad=1\nactivation={activation}\n"


def _yolo(mask: str) -> str:
    return (f"[yolo]\nmask={mask}\nanchors=10,14,23,27,37,58,81,82,135,169,344,319\nclasses=80\nnum=6\n"
            "jitter=.3\nignore_thresh=.7\ntruth_thresh=1\nrandom=0\n")


def _csp_tiny_block(filters: int) -> str:
    """YOLOv4-tiny's block: half of the channels (a grouped route) through two convs, concatenated back."""
    half = filters // 2
    return (_conv(filters) + "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n" + _conv(half) + _conv(half)
            + "[route]\nlayers=-1,-2\n" + _conv(filters, 1) + "[route]\nlayers=-6,-1\n[maxpool]\nsize=2\nstride=2\n")


# The YOLOv4-tiny layout (layer numbers as in the public cfg), written here at 128x128.
YOLOV4_TINY = ("[net]\nwidth=128\nheight=128\nchannels=3\n" + _conv(32, stride=2) + _conv(64, stride=2)
               + _csp_tiny_block(64) + _csp_tiny_block(128) + _csp_tiny_block(256) + _conv(512)
               + _conv(256, 1) + _conv(512) + _conv(255, 1, activation="linear", bn=False) + _yolo("3,4,5")
               + "[route]\nlayers=-4\n" + _conv(128, 1) + "[upsample]\nstride=2\n[route]\nlayers=-1,23\n"
               + _conv(256) + _conv(255, 1, activation="linear", bn=False) + _yolo("1,2,3"))

# A CSP-style backbone with mish, an SPP block, swish in the neck and two heads.
CSP_MISH_SWISH = ("[net]\nwidth=96\nheight=96\nchannels=3\n" + _conv(16, activation="mish")
                  + _conv(32, stride=2, activation="mish") + _conv(32, 1, activation="mish")
                  + "[route]\nlayers=-2\n" + _conv(32, 1, activation="mish") + _conv(16, 1, activation="mish")
                  + _conv(32, activation="mish") + "[shortcut]\nfrom=-3\nactivation=linear\n"
                  + _conv(32, 1, activation="mish") + "[route]\nlayers=-1,-7\n" + _conv(64, stride=2, activation="mish")
                  + _conv(32, 1) + "[maxpool]\nstride=1\nsize=5\n[route]\nlayers=-2\n[maxpool]\nstride=1\nsize=9\n"
                  + "[route]\nlayers=-4\n[maxpool]\nstride=1\nsize=13\n[route]\nlayers=-1,-3,-5,-6\n"
                  + _conv(64, 1, activation="swish") + _conv(255, 1, activation="linear", bn=False) + _yolo("3,4,5")
                  + "[route]\nlayers=-3\n" + _conv(32, 1, activation="swish") + "[upsample]\nstride=2\n"
                  + "[route]\nlayers=-1,9\n" + _conv(64, activation="swish")
                  + _conv(255, 1, activation="linear", bn=False) + _yolo("0,1,2"))


@pytest.mark.parametrize("text", [YOLOV4_TINY, CSP_MISH_SWISH], ids=["yolov4-tiny-layout", "csp-mish-swish"])
def test_yolov4_generation_matches_opencv(text, tmp_path):
    cfg, weights = write_model(tmp_path, text, seed=2)
    outputs = assert_matches_opencv(cfg, weights, tmp_path)
    assert len(outputs) == 2 and all(o.shape[1] == 255 for o in outputs)


def test_quantized_yolo_runs_in_the_quantized_simulator(tmp_path):
    """YOLOv3-tiny built with asymmetric u8 quantization: close to the float model (not equal to it)."""
    cfg = debian_cfg("yolov3-tiny", tmp_path, 128)
    weights = str(tmp_path / "model.weights")
    write_weights(cfg, weights, seed=3)
    samples = [[random_input(cfg, seed)] for seed in range(1, 4)]
    x = random_input(cfg, 7)
    (tmp_path / "float").mkdir(), (tmp_path / "quant").mkdir()
    floats = ours(cfg, weights, x, tmp_path / "float")
    quants = ours(cfg, weights, x, tmp_path / "quant", quantize=True, dataset=samples)
    for f, q in zip(floats, quants):
        assert q.shape == f.shape and not np.array_equal(q, f)
        error = np.sqrt(np.mean((q - f) ** 2)) / np.sqrt(np.mean(f ** 2))
        assert error < 0.1, f"quantized output off by {error:.3f} of the float output's RMS"
        assert np.corrcoef(q.ravel(), f.ravel())[0, 1] > 0.99
