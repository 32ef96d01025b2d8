"""Importing large model files: conversion time and peak memory, one function per format.

    .venv/bin/python benchmarks/bench_import.py            # every format
    .venv/bin/python benchmarks/bench_import.py darknet    # the named ones

A format's function writes its model files into a temporary folder and returns the ``Case`` to
convert. Each conversion (``load_*``, ``build(do_quantization=False)``, ``export_rknn``) runs in a
fresh process, which reports the time of each step and the peak resident memory up to the end of
that step, above what it held after importing the toolkit (``VmHWM - VmRSS`` from /proc; pages of
memory-mapped weight files count).
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping

import attrs

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT / ".cache" / "models"


@attrs.frozen
class Case:
    """One model to convert: the ``RKNN`` loader, its keywords, the weight file and a label."""

    label: str
    loader: str
    kwargs: dict
    weights: str


def darknet(folder: pathlib.Path) -> Case | None:
    """YOLOv3 (Debian's public cfg, 608x608) with a genuine 248 MB .weights file of invented values."""
    cfg = MODELS / "darknet" / "cfg" / "yolov3.cfg"
    if not cfg.is_file():
        print(f"darknet: {cfg} is missing (run scripts/fetch_models.py); skipped")
        return None
    from rknn_darknet.writer import write_weights

    weights = folder / "yolov3.weights"
    write_weights(str(cfg), str(weights), seed=0)
    return Case("darknet YOLOv3 608x608", "load_darknet", {"model": str(cfg), "weight": str(weights)}, str(weights))


VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))  # (channels, convolutions) per block


def vgg16_prototxt() -> tuple[str, dict[str, list[tuple[int, ...]]]]:
    """VGG-16 (224x224, as the public VGG_ILSVRC_16_layers_deploy) and the blob shapes of its layers."""
    layers = ['layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 224 dim: 224 } } }']
    shapes, bottom, channels = {}, "data", 3
    for block, (width, convs) in enumerate(VGG16_BLOCKS, 1):
        for i in range(1, convs + 1):
            name = f"conv{block}_{i}"
            layers.append(f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" '
                          f'convolution_param {{ num_output: {width} pad: 1 kernel_size: 3 }} }}')
            layers.append(f'layer {{ name: "relu{block}_{i}" type: "ReLU" bottom: "{name}" top: "{name}" }}')
            shapes[name] = [(width, channels, 3, 3), (width,)]
            bottom, channels = name, width
        layers.append(f'layer {{ name: "pool{block}" type: "Pooling" bottom: "{bottom}" top: "pool{block}" '
                      f'pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}')
        bottom = f"pool{block}"
    size = channels * 7 * 7
    for name, width in (("fc6", 4096), ("fc7", 4096), ("fc8", 1000)):
        layers.append(f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{name}" '
                      f'inner_product_param {{ num_output: {width} }} }}')
        if name != "fc8":
            layers.append(f'layer {{ name: "relu_{name}" type: "ReLU" bottom: "{name}" top: "{name}" }}')
        shapes[name] = [(width, size), (width,)]
        bottom, size = name, width
    layers.append(f'layer {{ name: "prob" type: "Softmax" bottom: "{bottom}" top: "prob" }}')
    return 'name: "VGG_ILSVRC_16_layers"\n' + "\n".join(layers) + "\n", shapes


class _InventedBlobs(Mapping):
    """Layer name -> weights made when the writer asks for them, so the writer holds one layer at a time."""

    def __init__(self, shapes: dict[str, list[tuple[int, ...]]]):
        self.shapes = shapes

    def __getitem__(self, name: str):
        import numpy as np

        rng = np.random.default_rng(len(name))
        return [rng.standard_normal(s, dtype=np.float32) * 0.01 for s in self.shapes[name]]

    def __iter__(self):
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)


def caffe(folder: pathlib.Path) -> Case:
    """VGG-16 (224x224) with a genuine 528 MB .caffemodel of invented values."""
    from rknn_caffe.writer import write_caffemodel

    text, shapes = vgg16_prototxt()
    prototxt, caffemodel = folder / "vgg16.prototxt", folder / "vgg16.caffemodel"
    prototxt.write_text(text)
    write_caffemodel(caffemodel, text, _InventedBlobs(shapes))
    return Case("caffe VGG-16 224x224", "load_caffe", {"model": str(prototxt), "proto": "caffe",
                                                       "blobs": str(caffemodel)}, str(caffemodel))


FORMATS: dict[str, Callable[[pathlib.Path], Case | None]] = {"darknet": darknet, "caffe": caffe}


def _memory_kb(field: str) -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def worker(case_json: str, out_dir: str) -> None:
    """Convert one case in this (fresh) process; print the timings and peak memory as JSON."""
    from rknn.api import RKNN

    case = json.loads(case_json)
    rknn = RKNN()
    base = _memory_kb("VmRSS")
    times, peaks = {}, {}
    for step, call in (("load", lambda: getattr(rknn, case["loader"])(**case["kwargs"])),
                       ("build", lambda: rknn.build(do_quantization=False)),
                       ("export", lambda: rknn.export_rknn(str(pathlib.Path(out_dir) / "model.rknn")))):
        start = time.perf_counter()
        if call() != 0:
            raise SystemExit(f"{step} failed")
        times[step] = time.perf_counter() - start
        peaks[step] = (_memory_kb("VmHWM") - base) / 1024
    print(json.dumps({"times": times, "peaks": peaks}))


def measure(case: Case, folder: pathlib.Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(attrs.asdict(case)), str(folder)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(names: list[str]) -> int:
    unknown = sorted(set(names) - set(FORMATS))
    if unknown:
        raise SystemExit(f"unknown format(s) {unknown}; known: {sorted(FORMATS)}")
    print(f"{'model':26s} {'file MB':>7s} {'load s':>6s} {'build s':>7s} {'export s':>8s}   peak MB after load / build / "
          "export (x file size)")
    for name in names or list(FORMATS):
        with tempfile.TemporaryDirectory() as tmp:
            case = FORMATS[name](pathlib.Path(tmp))
            if case is None:
                continue
            size = pathlib.Path(case.weights).stat().st_size / 2 ** 20
            result = measure(case, pathlib.Path(tmp))
            t, p = result["times"], result["peaks"]
            peaks = " / ".join(f"{p[k]:.0f} ({p[k] / size:.2f})" for k in ("load", "build", "export"))
            print(f"{case.label:26s} {size:7.0f} {t['load']:6.2f} {t['build']:7.2f} {t['export']:8.2f}   {peaks}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2], sys.argv[3])
    else:
        sys.exit(main(sys.argv[1:]))
