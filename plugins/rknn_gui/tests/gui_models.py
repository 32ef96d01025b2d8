"""The test workspace: a small ONNX image classifier written with onnx.helper (two convolutions, an Erf
the chips run on their CPU, pooling, a dense layer, softmax), pictures and dataset files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = 16
CLASSES = 10


def classifier(path: Path) -> Path:
    import onnx
    from onnx import helper

    from rknn_core.testing import make_model

    rng = np.random.default_rng(0)
    weights = {"w1": rng.normal(0, 0.3, (8, 3, 3, 3)), "b1": rng.normal(0, 0.1, 8),
               "w2": rng.normal(0, 0.2, (16, 8, 3, 3)), "b2": rng.normal(0, 0.1, 16),
               "wf": rng.normal(0, 0.3, (16, CLASSES)), "bf": rng.normal(0, 0.1, CLASSES)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv2"),
             helper.make_node("Erf", ["c2"], ["e2"], name="erf2"),
             helper.make_node("GlobalAveragePool", ["e2"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="fc"),
             helper.make_node("Softmax", ["logits"], ["prob"], name="softmax")]
    model = make_model(nodes, {"x": np.zeros((1, 3, SIZE, SIZE), np.float32)}, ["prob"],
                       {k: v.astype(np.float32) for k, v in weights.items()})
    onnx.save(model, path)
    return path


def picture(path: Path, height: int, width: int, seed: int) -> str:
    """A smooth random picture (sine gradients per channel) as PNG."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    channels = [np.sin(xx * rng.uniform(0.1, 0.6) + yy * rng.uniform(0.1, 0.6) + rng.uniform(0, 3)) for _ in range(3)]
    Image.fromarray(((np.stack(channels, -1) + 1) * 127.5).astype(np.uint8)).save(path)
    return path.name


def workspace(folder: Path) -> Path:
    """``folder`` with tiny.onnx, img0..3.png (the input size; dataset.txt lists them, one.txt the first)
    and photo.png (larger: resized when read for inference)."""
    folder.mkdir(parents=True, exist_ok=True)
    classifier(folder / "tiny.onnx")
    names = [picture(folder / f"img{i}.png", SIZE, SIZE, i) for i in range(4)]
    picture(folder / "photo.png", 30, 40, 9)
    (folder / "dataset.txt").write_text("\n".join(names) + "\n")
    (folder / "one.txt").write_text(names[0] + "\n")
    return folder
