"""Shared test helpers: write a .prototxt and its .caffemodel, run them through the vendor flow and OpenCV.

OpenCV's DNN module (``cv2.dnn.readNetFromCaffe``) is the independent reference. Weights are invented
(seeded) and written in Caffe's binary format by ``rknn_caffe.writer``.
"""

from __future__ import annotations

import pathlib
import zlib
from collections.abc import Mapping, Sequence

import numpy as np

from rknn_caffe.importer import invent_blobs
from rknn_caffe.writer import write_caffemodel
from rknn_core.testing import assert_close, vendor_flow


def random_blobs(shapes: Mapping[str, Sequence[tuple[int, ...]]], seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Blobs of the given shapes with values in [-0.5, 0.5) (layer name -> arrays)."""
    rng = np.random.default_rng(seed)
    return {name: [(rng.random(s, dtype=np.float32) - 0.5) for s in layer] for name, layer in shapes.items()}


def write_net(folder: pathlib.Path, proto_text: str, blobs: Mapping[str, Sequence[np.ndarray]],
              name: str = "net") -> tuple[str, str]:
    """``name.prototxt`` and ``name.caffemodel``; their paths."""
    prototxt, caffemodel = folder / f"{name}.prototxt", folder / f"{name}.caffemodel"
    prototxt.write_text(proto_text)
    write_caffemodel(caffemodel, proto_text, blobs)
    return str(prototxt), str(caffemodel)


def opencv_outputs(prototxt: str, caffemodel: str, inputs: Mapping[str, np.ndarray], names: Sequence[str]):
    import cv2

    net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
    for key, value in inputs.items():
        net.setInput(value, key)
    outs = net.forward(list(names))
    return [np.asarray(o) for o in outs]


def ours(prototxt: str, caffemodel: str | None, inputs: Sequence[np.ndarray], proto: str = "caffe",
         tmp_dir: str | None = None, **flow) -> list[np.ndarray]:
    return vendor_flow(prototxt, list(inputs), loader="load_caffe",
                       load_options={"proto": proto, "blobs": caffemodel}, tmp_dir=tmp_dir, **flow)


def check_against_opencv(folder: pathlib.Path, proto_text: str, blobs, inputs: Mapping[str, np.ndarray],
                         outputs: Sequence[str], rtol: float = 1e-4, atol: float = 1e-5, **flow) -> list[np.ndarray]:
    """Write the net, run ours (float, via the .rknn file) and OpenCV's, assert they agree; returns ours."""
    prototxt, caffemodel = write_net(folder, proto_text, blobs)
    ref = opencv_outputs(prototxt, caffemodel, inputs, outputs)
    got = ours(prototxt, caffemodel, list(inputs.values()), tmp_dir=str(folder), **flow)
    assert_close(got, ref, rtol, atol)
    return got


def header(*shape: int, name: str = "data") -> str:
    """An Input layer of ``shape``."""
    dims = " ".join(f"dim: {d}" for d in shape)
    return f'layer {{ name: "{name}" type: "Input" top: "{name}" input_param {{ shape {{ {dims} }} }} }}\n'


def invented(layer, k: int, shape: tuple[int, ...], what: str) -> np.ndarray:
    """Trained-looking values for a learned blob: He-scaled weights, positive variances, unit factors."""
    rng = np.random.default_rng(zlib.crc32(f"{layer.name}/{k}".encode()))
    if what == "moving-average factor":
        return np.ones(shape, np.float32)
    if what in ("variance", "scale"):
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    if "weights" in what and len(shape) > 1:
        fan_in = int(np.prod(shape[1:]))
        if layer.type == "Deconvolution":
            fan_in = int(shape[0] * np.prod(shape[2:]))
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    return rng.uniform(-0.1, 0.1, shape).astype(np.float32)


def invent_caffemodel(prototxt: str, folder: pathlib.Path, make=invented) -> str:
    """A .caffemodel in ``folder`` for the net ``prototxt`` with weights from ``make``; its path."""
    caffemodel = folder / (pathlib.Path(prototxt).stem + ".caffemodel")
    write_caffemodel(caffemodel, pathlib.Path(prototxt).read_text(), invent_blobs(prototxt, make))
    return str(caffemodel)


def write_invented_net(folder: pathlib.Path, name: str, proto_text: str, make=invented) -> tuple[str, str]:
    """``name.prototxt`` holding ``proto_text`` and a .caffemodel with weights from ``make``; their paths."""
    prototxt = folder / f"{name}.prototxt"
    prototxt.write_text(proto_text)
    return str(prototxt), invent_caffemodel(str(prototxt), folder, make)
