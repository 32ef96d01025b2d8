"""The vendor's mobilenet_v1 TFLite script, unchanged, on a MobileNetV1-style model; bad model files."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from tflite_util import assert_close, run_litert, run_rknn
from tflite_writer import TfliteWriter

from rknn.api import RKNN

VENDOR = pathlib.Path(__file__).parent / "vendor"


def mobilenet_v1(path: str, width: int = 8, classes: int = 1001) -> str:
    """MobileNetV1's layer pattern (conv s2, depthwise + pointwise blocks, RELU6, avg pool, 1x1 logits,
    reshape, softmax) at reduced width, deterministic weights."""
    rng = np.random.default_rng(0)
    m = TfliteWriter()
    x = m.input([1, 224, 224, 3])

    def conv(src, cin, cout, k, stride, size, depthwise=False):
        out = m.tensor([1, size, size, cout])
        fan = k * k * (1 if depthwise else cin)
        w = (rng.standard_normal((1, k, k, cout) if depthwise else (cout, k, k, cin)) / np.sqrt(fan)).astype(np.float32)
        b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
        common = dict(Padding=0, StrideH=stride, StrideW=stride, DilationHFactor=1, DilationWFactor=1,
                      FusedActivationFunction=3)
        if depthwise:
            m.op("DEPTHWISE_CONV_2D", [src, m.const(w), m.const(b)], [out], "DepthwiseConv2DOptions",
                 DepthMultiplier=1, **common)
        else:
            m.op("CONV_2D", [src, m.const(w), m.const(b)], [out], "Conv2DOptions", **common)
        return out

    y, c, size = conv(x, 3, width, 3, 2, 112), width, 112
    for cout, stride in ((2 * width, 1), (4 * width, 2), (4 * width, 1), (8 * width, 2), (16 * width, 2)):
        size //= stride
        y = conv(conv(y, c, c, 3, stride, size, depthwise=True), c, cout, 1, 1, size)
        c = cout
    pooled = m.tensor([1, 1, 1, c])
    m.op("AVERAGE_POOL_2D", [y], [pooled], "Pool2DOptions", Padding=1, StrideH=2, StrideW=2, FilterHeight=size,
         FilterWidth=size)
    logits = m.tensor([1, 1, 1, classes])
    m.op("CONV_2D", [pooled, m.const((rng.standard_normal((classes, 1, 1, c)) * 0.3).astype(np.float32)),
                     m.const(np.zeros(classes, np.float32))], [logits], "Conv2DOptions", Padding=0, StrideH=1,
         StrideW=1, DilationHFactor=1, DilationWFactor=1)
    flat = m.tensor([1, classes])
    m.op("RESHAPE", [logits, m.const(np.array([1, classes], np.int32))], [flat])
    prob = m.tensor([1, classes])
    m.op("SOFTMAX", [flat], [prob], "SoftmaxOptions", Beta=1.0)
    return m.save(path, [prob])


def dog(path: pathlib.Path) -> np.ndarray:
    yy, xx = np.mgrid[0:224, 0:224]
    img = np.stack([(xx * 255 / 223), (yy * 255 / 223), 128 + 100 * np.sin(xx / 17.0) * np.cos(yy / 23.0)], -1)
    img = img.clip(0, 255).astype(np.uint8)
    Image.fromarray(img).save(path, quality=95)
    return np.asarray(Image.open(path).convert("RGB"))


def test_mobilenet_v1_float_matches_litert(tmp_path):
    path = mobilenet_v1(str(tmp_path / "mobilenet_v1.tflite"))
    x = (dog(tmp_path / "dog.jpg").astype(np.float32)[None] - 127.5) / 127.5
    assert_close(run_rknn(path, [x]), run_litert(path, [x]))


def test_vendor_mobilenet_v1_script_runs_unchanged(tmp_path):
    mobilenet_v1(str(tmp_path / "mobilenet_v1.tflite"))
    dog(tmp_path / "dog_224x224.jpg")
    (tmp_path / "dataset.txt").write_text("dog_224x224.jpg\n")
    shutil.copy(VENDOR / "mobilenet_v1_script.py", tmp_path / "test.py")
    run = subprocess.run([sys.executable, "test.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "-----TOP 5-----" in run.stdout and "Total Time(us)" in run.stdout, run.stdout
    assert (tmp_path / "mobilenet_v1.rknn").is_file()
    top = [line for line in run.stdout.splitlines() if line.startswith("[")]
    assert len(top) == 5 and all(float(line.split(": ")[1]) > 0 for line in top)


@pytest.mark.parametrize("content, words", [
    (None, ("does not exist",)),
    (b"\x00garbage bytes that are not a flatbuffer" * 3, ("not a TFLite model",)),
    ("truncated", ("damaged",)),
])
def test_bad_model_files_fail_cleanly(content, words, tmp_path, capsys):
    path = tmp_path / "bad.tflite"
    if content == "truncated":
        whole = pathlib.Path(mobilenet_v1(str(tmp_path / "good.tflite"))).read_bytes()
        path.write_bytes(whole[: len(whole) // 3])
    elif content is not None:
        path.write_bytes(content)
    rknn = RKNN()
    assert rknn.load_tflite(model=str(path)) == -1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = next(line for line in err.splitlines() if line.startswith("E "))
    assert str(path) in line and all(w in line for w in words), line
    rknn.release()
