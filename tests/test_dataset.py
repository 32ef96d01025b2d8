"""The calibration dataset file (SPEC build()): formats, paths, batch plan, and bad datasets -> -1."""

from __future__ import annotations

import os

import numpy as np
import pytest
from error_lines import e_lines
from onnx import helper
from onnx_util import make_model, save_model
from PIL import Image

from rknn.api import RKNN
from rknn_core.errors import RknnError
from rknn_core.quant.dataset import calibration_plan, load_sample, read_dataset

RNG = np.random.default_rng(0)


def _conv_model(tmp_path, channels: int = 3, n_inputs: int = 1) -> str:
    """Conv + Relu on an NCHW 8x8 input (two inputs: their sum first)."""
    w = RNG.standard_normal((4, channels, 3, 3)).astype(np.float32)
    x = np.zeros((1, channels, 8, 8), np.float32)
    nodes = [helper.make_node("Conv", ["x" if n_inputs == 1 else "s", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    inputs = {"x": x}
    if n_inputs == 2:
        nodes.insert(0, helper.make_node("Add", ["x", "x2"], ["s"]))
        inputs["x2"] = x
    return save_model(make_model(nodes, inputs, ["y"], {"w": w}), str(tmp_path))


def _write(path, lines) -> str:
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


def _npy(folder, name: str, shape=(8, 8, 3)) -> str:
    np.save(os.path.join(folder, name), RNG.random(shape, dtype=np.float32))
    return name


def _build(model: str, dataset, **config) -> tuple[int, RKNN]:
    rknn = RKNN()
    rknn.config(**config)
    assert rknn.load_onnx(model) == 0
    return rknn.build(do_quantization=True, dataset=dataset), rknn


def test_images_npy_relative_paths_and_comments(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray((RNG.random((8, 8, 3)) * 255).astype(np.uint8)).save(images / "a.png")
    Image.fromarray((RNG.random((8, 8, 3)) * 255).astype(np.uint8)).save(images / "b.jpg")
    _npy(str(tmp_path), "c.npy")
    lists = tmp_path / "lists"
    lists.mkdir()
    dataset = _write(lists / "dataset.txt", ["# calibration images", "../images/a.png", "", "../images/b.jpg",
                                             str(tmp_path / "c.npy")])
    ds = read_dataset(dataset, 1)
    assert [n for n, _ in ds.lines] == [2, 4, 5]
    arrays = [load_sample(paths, n, dataset)[0] for n, paths in ds.lines]
    assert [a.shape for a in arrays] == [(8, 8, 3)] * 3
    assert arrays[0].dtype == np.uint8 and arrays[2].dtype == np.float32
    code, rknn = _build(_conv_model(tmp_path), dataset)
    assert code == 0
    assert rknn.init_runtime() == 0
    out = rknn.inference([arrays[0]])[0]
    assert out.shape == (1, 4, 8, 8) and out.min() >= 0


def test_grayscale_png_feeds_a_one_channel_model(tmp_path):
    Image.fromarray((RNG.random((8, 8)) * 255).astype(np.uint8), mode="L").save(tmp_path / "g.png")
    assert _build(_conv_model(tmp_path, channels=1), _write(tmp_path / "d.txt", ["g.png"]))[0] == 0


def test_several_inputs_per_line(tmp_path):
    lines = [f"{_npy(str(tmp_path), f'a{i}.npy')} {_npy(str(tmp_path), f'b{i}.npy')}" for i in range(3)]
    dataset = _write(tmp_path / "d.txt", lines)
    assert [len(p) for _, p in read_dataset(dataset, 2).lines] == [2, 2, 2]
    assert _build(_conv_model(tmp_path, n_inputs=2), dataset)[0] == 0


@pytest.mark.parametrize("n, batch_size, epochs, expected", [
    (3, 100, -1, [[0, 1, 2]]),                      # batch_size shrinks to the dataset size
    (5, 2, -1, [[0, 1], [2, 3], [4]]),              # -1: every line exactly once
    (3, 2, 3, [[0, 1], [2, 0], [1, 2]]),            # explicit epochs cycle through the lines
    (4, 100, 2, [[0, 1, 2, 3], [0, 1, 2, 3]]),
])
def test_calibration_plan(tmp_path, n, batch_size, epochs, expected):
    dataset = _write(tmp_path / "d.txt", [_npy(str(tmp_path), f"s{i}.npy") for i in range(n)])
    assert calibration_plan(read_dataset(dataset, 1), batch_size, epochs) == expected


def _bad_datasets(tmp_path) -> dict[str, tuple]:
    """name -> (dataset path, model inputs, words the E line must hold)."""
    good = [_npy(str(tmp_path), f"ok{i}.npy") for i in range(3)]
    _npy(str(tmp_path), "wrong.npy", (5, 5, 3))
    (tmp_path / "folder").mkdir()
    with open(tmp_path / "binary.txt", "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    open(tmp_path / "empty.txt", "w").close()
    return {
        "missing file": (_write(tmp_path / "m.txt", [good[0], "nope.npy", good[1], "gone.jpg"]), 1,
                         ["line 2", "nope.npy", "line 4", "gone.jpg", "does not exist"]),
        "wrong shape": (_write(tmp_path / "w.txt", [good[0], good[1], "wrong.npy"]), 1,
                        ["line 3", "(5, 5, 3)", "expects"]),
        "mixed input counts": (_write(tmp_path / "c.txt", [f"{good[0]} {good[1]}", good[2], f"{good[0]} {good[2]}"]), 2,
                               ["line 2", "1 path", "2 input"]),
        "all lines wrong count": (_write(tmp_path / "c1.txt", [f"{good[0]} {good[1]}"] * 2), 1,
                                  ["line 1", "line 2", "2 path"]),
        "empty file": (str(tmp_path / "empty.txt"), 1, ["empty"]),
        "directory": (str(tmp_path / "folder"), 1, ["directory"]),
        "directory on a line": (_write(tmp_path / "dl.txt", [good[0], "folder"]), 1, ["line 2", "directory"]),
        "binary file": (str(tmp_path / "binary.txt"), 1, ["not a text file"]),
        "unknown format": (_write(tmp_path / "u.txt", ["binary.txt"]), 1, ["line 1", "neither an image"]),
        "missing dataset": (str(tmp_path / "absent.txt"), 1, ["does not exist"]),
    }


def test_bad_datasets_fail_with_line_numbers(tmp_path, capsys):
    cases = _bad_datasets(tmp_path)
    models = {1: _conv_model(tmp_path / "one" if os.makedirs(tmp_path / "one") is None else None),
              2: _conv_model(tmp_path / "two" if os.makedirs(tmp_path / "two") is None else None, n_inputs=2)}
    for name, (dataset, n_inputs, words) in cases.items():
        code, _ = _build(models[n_inputs], dataset)
        assert code == -1, name
        text = e_lines(capsys).lower()
        for word in words:
            assert word.lower() in text, f"{name}: {word!r} not in {text!r}"


def test_unreadable_image_names_its_line(tmp_path, capsys):
    _npy(str(tmp_path), "ok.npy")
    with open(tmp_path / "broken.png", "wb") as f:
        f.write(b"not really a png")
    code, _ = _build(_conv_model(tmp_path), _write(tmp_path / "d.txt", ["ok.npy", "broken.png"]))
    assert code == -1
    text = e_lines(capsys)
    assert "line 2" in text and "broken.png" in text


def test_read_dataset_errors_are_rknn_errors(tmp_path):
    with pytest.raises(RknnError, match="needs a dataset"):
        read_dataset(None, 1)
    with pytest.raises(RknnError, match="path of a text file"):
        read_dataset(3, 1)
