"""Shared test helpers: write a cfg and its weights, run it through the vendor flow and through OpenCV.

OpenCV's DNN module (``cv2.dnn.readNetFromDarknet``) is the independent reference. It decodes
``[yolo]``/``[region]`` outputs into boxes; the raw map we output is the input of its ``permute_<i>``
layer, taken in NHWC and turned back to NCHW.
"""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest

from rknn_core.testing import assert_close, vendor_flow
from rknn_darknet.writer import write_weights

ROOT = pathlib.Path(__file__).resolve().parents[3]
DEBIAN_CFGS = ROOT / ".cache" / "models" / "darknet" / "cfg"


def write_model(folder: pathlib.Path, cfg_text: str, name: str = "model", seed: int = 0,
                version: tuple[int, int, int] = (0, 2, 0)) -> tuple[str, str]:
    """``name.cfg`` with ``cfg_text`` and ``name.weights`` with invented values; their paths."""
    cfg, weights = folder / f"{name}.cfg", folder / f"{name}.weights"
    cfg.write_text(cfg_text)
    write_weights(str(cfg), str(weights), seed=seed, version=version)
    return str(cfg), str(weights)


def debian_cfg(name: str, folder: pathlib.Path, size: int | None = None) -> str:
    """A cfg the Debian ``darknet`` package ships (fetched by scripts/fetch_models.py), copied into
    ``folder`` with the input resized to ``size`` x ``size`` (to keep tests fast); skips when missing."""
    source = DEBIAN_CFGS / f"{name}.cfg"
    if not source.is_file():
        pytest.skip(f"{source} is missing: run scripts/fetch_models.py (it unpacks Debian's darknet package)")
    text = source.read_text()
    if size is not None:
        text = re.sub(r"(?m)^(width|height)\s*=.*$", lambda m: f"{m.group(1)}={size}", text)
    target = folder / f"{name}.cfg"
    target.write_text(text)
    return str(target)


def random_input(cfg: str, seed: int = 0) -> np.ndarray:
    """An NCHW input in [0, 1] (darknet's image range) of the size the cfg's [net] declares."""
    text = pathlib.Path(cfg).read_text()
    size = {k: int(v) for k, v in re.findall(r"(?m)^\s*(width|height|channels)\s*=\s*(\d+)", text)}
    shape = (1, size.get("channels", 3), size["height"], size["width"])
    return np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)


def opencv_outputs(cfg: str, weights: str, x: np.ndarray) -> list[np.ndarray]:
    """OpenCV's raw outputs: the inputs of the yolo/region layers (NCHW), else the last layer's output."""
    cv2 = pytest.importorskip("cv2")
    net = cv2.dnn.readNetFromDarknet(cfg, weights)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    names = [n for n in net.getLayerNames() if n.startswith("permute_")]
    net.setInput(x)
    if not names:
        return [np.asarray(net.forward())]
    return [np.asarray(o).transpose(0, 3, 1, 2) for o in net.forward(names)]


def ours(cfg: str, weights: str, x: np.ndarray, tmp: pathlib.Path, **flow) -> list[np.ndarray]:
    """The vendor flow (load_darknet, build, export, load_rknn, inference) on an NCHW input."""
    return vendor_flow(cfg, [x], loader="load_darknet", load_options={"weight": weights}, tmp_dir=str(tmp), **flow)


def assert_matches_opencv(cfg: str, weights: str, tmp: pathlib.Path, rtol: float = 1e-4) -> list[np.ndarray]:
    """Our outputs within ``rtol`` of OpenCV's (plus ``rtol`` times each output's largest magnitude)."""
    x = random_input(cfg)
    got, want = ours(cfg, weights, x, tmp), opencv_outputs(cfg, weights, x)
    assert len(got) == len(want), f"{len(got)} outputs, OpenCV has {len(want)}"
    want = [w.reshape(g.shape) if w.size == g.size else w for g, w in zip(got, want)]
    assert all(np.abs(w).max() > 1e-3 for w in want), "a reference output is all zeros: the check would prove nothing"
    assert_close(got, want, rtol=rtol, atol=rtol)
    return got
