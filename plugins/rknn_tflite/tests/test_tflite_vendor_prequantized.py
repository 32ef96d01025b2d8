"""An already-quantized uint8 classifier, as the vendor treats it: inference returns float32 outputs
dequantized with the output's own parameters (stored integers only with want_float=False), and
channel_mean_value is checked against the input's own quantization (consistent values are not applied
a second time; others fail the build naming both). A vendor-style script with softmax/top-5 post-
processing agrees with LiteRT on every picture."""

from __future__ import annotations

import importlib.util
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from tflite_util import run_litert
from tflite_writer import TfliteWriter

from rknn.api import RKNN

VENDOR = pathlib.Path(__file__).parent / "vendor"
INPUT_Q = {"scale": [1 / 128], "zero_point": [128]}  # real = (q - 128) / 128: channel_mean_value '128 128 128 128'
LOGITS_Q = {"scale": [0.01], "zero_point": [128]}
CLASSES = 10


def _weights(rng, shape, fan: int) -> tuple[np.ndarray, float]:
    """uint8 weights around zero point 128 and their scale, for values ~ N(0, 1/fan)."""
    scale = 3.0 / np.sqrt(fan) / 127
    real = rng.standard_normal(shape) / np.sqrt(fan)
    return np.clip(np.round(real / scale) + 128, 0, 255).astype(np.uint8), scale


def uint8_classifier(path: str) -> str:
    """MobileNet-like, every tensor uint8: conv 3x3 s2 (RELU6), depthwise 3x3 (RELU6), pointwise 1x1
    (RELU6), average pool, reshape, fully connected logits; uint8 input and output."""
    rng = np.random.default_rng(11)
    m = TfliteWriter()
    relu6_q = {"scale": [6 / 255], "zero_point": [0]}

    def conv(src, src_scale, cin, cout, k, stride, size, depthwise=False):
        shape = (1, k, k, cout) if depthwise else (cout, k, k, cin)
        w, w_scale = _weights(rng, shape, k * k * (1 if depthwise else cin))
        bias = np.round(rng.standard_normal(cout) * 0.1 / (src_scale * w_scale)).astype(np.int32)
        out = m.tensor([1, size, size, cout], "uint8", relu6_q)
        inputs = [src, m.const(w, "uint8", {"scale": [w_scale], "zero_point": [128]}),
                  m.const(bias, "int32", {"scale": [src_scale * w_scale], "zero_point": [0]})]
        common = dict(Padding=0, StrideH=stride, StrideW=stride, DilationHFactor=1, DilationWFactor=1,
                      FusedActivationFunction=3)
        if depthwise:
            m.op("DEPTHWISE_CONV_2D", inputs, [out], "DepthwiseConv2DOptions", DepthMultiplier=1, **common)
        else:
            m.op("CONV_2D", inputs, [out], "Conv2DOptions", **common)
        return out

    x = m.input([1, 32, 32, 3], "uint8", INPUT_Q)
    y = conv(x, INPUT_Q["scale"][0], 3, 8, 3, 2, 16)
    y = conv(y, 6 / 255, 8, 8, 3, 1, 16, depthwise=True)
    y = conv(y, 6 / 255, 8, 16, 1, 1, 16)
    pooled = m.tensor([1, 1, 1, 16], "uint8", relu6_q)
    m.op("AVERAGE_POOL_2D", [y], [pooled], "Pool2DOptions", Padding=1, StrideH=1, StrideW=1, FilterHeight=16,
         FilterWidth=16)
    flat = m.tensor([1, 16], "uint8", relu6_q)
    m.op("RESHAPE", [pooled, m.const(np.array([1, 16], np.int32))], [flat])
    w, w_scale = _weights(rng, (CLASSES, 16), 16)
    bias = np.round(rng.standard_normal(CLASSES) * 0.05 / (6 / 255 * w_scale)).astype(np.int32)
    logits = m.tensor([1, CLASSES], "uint8", LOGITS_Q)
    m.op("FULLY_CONNECTED", [flat, m.const(w, "uint8", {"scale": [w_scale], "zero_point": [128]}),
                             m.const(bias, "int32", {"scale": [6 / 255 * w_scale], "zero_point": [0]})],
         [logits], "FullyConnectedOptions")
    return m.save(path, [logits])


def pictures(folder: pathlib.Path, count: int = 20) -> list[str]:
    """Seeded 32x32 RGB pictures (tinted stripes and noise) saved as PNG (lossless: LiteRT sees the same pixels)."""
    names = []
    yy, xx = np.mgrid[0:32, 0:32]
    for i in range(count):
        rng = np.random.default_rng(100 + i)
        fx, fy, phase = rng.uniform(0.05, 0.6, 2).tolist() + [rng.uniform(0, 6)]
        tint = rng.uniform(40, 215, 3)
        channels = [tint[c] + 40 * np.sin(fx * xx * (c + 1) + fy * yy + phase + c) for c in range(3)]
        img = (np.stack(channels, -1) + rng.normal(0, 12, (32, 32, 3))).clip(0, 255).astype(np.uint8)
        names.append(f"pic{i:02d}.png")
        Image.fromarray(img).save(folder / names[-1])
    return names


def _dequantized(stored: np.ndarray) -> np.ndarray:
    return ((stored.astype(np.int64) - LOGITS_Q["zero_point"][0]) * np.float32(LOGITS_Q["scale"][0])).astype(np.float32)


@pytest.fixture
def classifier(tmp_path) -> pathlib.Path:
    uint8_classifier(str(tmp_path / "model.tflite"))
    names = pictures(tmp_path)
    (tmp_path / "images.txt").write_text("\n".join(names) + "\n")
    (tmp_path / "dataset.txt").write_text("\n".join(names[:4]) + "\n")
    return tmp_path


def run_vendor_script(folder: pathlib.Path, mean: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Run the vendor-style script in ``folder`` (model.tflite, images.txt, dataset.txt); returns our float
    outputs, LiteRT's uint8 outputs and the top-1 class the script printed for every picture."""
    shutil.copy(VENDOR / "quantized_classifier_script.py", folder / "test.py")
    run = subprocess.run([sys.executable, "test.py", mean], cwd=folder, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "E " not in run.stdout + run.stderr
    names = (folder / "images.txt").read_text().split()
    ref = np.concatenate([run_litert(str(folder / "model.tflite"),
                                     [np.asarray(Image.open(folder / n).convert("RGB"))[None]])[0] for n in names])
    printed = {line.split(":")[0]: int(line.split("[")[1].split("]")[0]) for line in run.stdout.splitlines()
               if line.split(":")[0] in names}
    return np.load(folder / "outputs.npy"), ref, [printed[n] for n in names]


def test_vendor_script_top1_agrees_with_litert(classifier):
    ours, ref, top1 = run_vendor_script(classifier, "128 128 128 128")
    assert ours.dtype == np.float32 and ref.dtype == np.uint8
    np.testing.assert_array_equal(ours, _dequantized(ref))  # dequantized with the output's own parameters
    assert len(set(ref.argmax(1).tolist())) > 1  # the pictures are told apart
    assert top1 == ref.argmax(1).tolist()  # top-1 of every picture, after softmax


@pytest.mark.heavy
def test_vendor_script_on_a_trained_uint8_digits_model(tmp_path):
    """A Keras CNN trained on digits, quantized by TFLite's converter (uint8 in/out, input zero point 127,
    scale 1/127.5); the script's '127.5 127.5 127.5 127.5' fits it within the tolerance."""
    import digits_uint8

    if not digits_uint8.MODEL.is_file():
        if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("sklearn") is None:
            pytest.skip(f"{digits_uint8.MODEL} is not generated and tensorflow/scikit-learn are not installed "
                        f"to generate it (run plugins/rknn_tflite/tests/digits_uint8.py where they are)")
        digits_uint8.generate()
    shutil.copy(digits_uint8.MODEL, tmp_path / "model.tflite")
    test = np.load(digits_uint8.TEST)
    names = [f"digit{i:02d}.png" for i in range(len(test["labels"]))]
    for name, picture in zip(names, test["pictures"]):
        Image.fromarray(picture).save(tmp_path / name)
    calib = sorted(digits_uint8.CALIB.glob("*.png"))
    for path in calib:
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "images.txt").write_text("\n".join(names) + "\n")
    (tmp_path / "dataset.txt").write_text("".join(f"{p.name}\n" for p in calib))
    ours, ref, top1 = run_vendor_script(tmp_path, "127.5 127.5 127.5 127.5")
    assert top1 == ref.argmax(1).tolist() == ours.argmax(1).tolist()
    correct = int((np.array(top1) == test["labels"]).sum())
    print(f"digits: {correct}/{len(names)} correct, top-1 as LiteRT on all")
    assert correct >= 14  # a trained model (16/20 when generated), not noise


def _session(folder: pathlib.Path, **config) -> RKNN:
    rknn = RKNN()
    rknn.config(**config)
    assert rknn.load_tflite(model=str(folder / "model.tflite")) == 0
    return rknn


@pytest.mark.parametrize("config", [{}, {"channel_mean_value": "128 128 128 128"},
                                    {"channel_mean_value": "127.5 127.5 127.5 127.5"},
                                    {"mean_values": [[128, 128, 128]], "std_values": [[128, 128, 128]]}],
                         ids=["none", "same", "within-2-steps", "mean_values"])
def test_consistent_normalization_is_not_applied_twice(classifier, config):
    rknn = _session(classifier, **config)
    assert rknn.build(do_quantization=False) == 0 and rknn.init_runtime() == 0
    img = np.asarray(Image.open(classifier / "pic03.png").convert("RGB"))
    ref = run_litert(str(classifier / "model.tflite"), [img[None]])[0]
    outputs = rknn.inference(inputs=[img])
    np.testing.assert_array_equal(outputs[0], _dequantized(ref))
    stored = rknn.inference(inputs=[img], want_float=False)
    assert stored[0].dtype == np.uint8
    np.testing.assert_array_equal(stored[0], ref)


@pytest.mark.parametrize("config, given", [({"channel_mean_value": "0 0 0 255"}, "0 0 0 / 255"),
                                           ({"channel_mean_value": "128 128 128 1"}, "128 128 128 / 1"),
                                           ({"mean_values": [[0, 0, 0]], "std_values": [[1, 1, 1]]}, "0 0 0 / 1")])
def test_inconsistent_normalization_is_an_error_naming_both(classifier, caplog, config, given):
    rknn = _session(classifier, **config)
    assert rknn.build(do_quantization=False) == -1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert "already quantized" in errors[0] and "input_0" in errors[0]
    assert "channel_mean_value '128 128 128 128'" in errors[0]  # the model's own
    assert f"the config gives mean / scale {given}" in errors[0]  # the script's


def test_data_outside_an_int8_input_is_refused_not_wrapped(tmp_path, caplog):
    from test_tflite_quantized import int8_model

    rknn = RKNN()
    assert rknn.load_tflite(model=int8_model(str(tmp_path / "int8.tflite"))) == 0
    assert rknn.build(do_quantization=False) == 0 and rknn.init_runtime() == 0
    assert rknn.inference(inputs=[np.full((8, 8, 4), 200, np.uint8)]) is None  # 200 would wrap to -56
    assert "is int8 (already quantized)" in caplog.text and "from 200 to 200" in caplog.text
    picture = np.random.default_rng(1).integers(-128, 128, (8, 8, 4)).astype(np.int8)
    wide = rknn.inference(inputs=[picture.astype(np.int32)], data_type="int8", want_float=False)[0]
    np.testing.assert_array_equal(wide, run_litert(str(tmp_path / "int8.tflite"), [picture[None]])[0])
