"""Keras application models converted by the TFLite converter (float and full-integer int8), through the
vendor flow, against ai-edge-litert's builtin kernels.

The models come from ``plugins/rknn_tf/tests/tflite_models.py`` (needs tensorflow once; cached in
``.cache/models/tflite_generated``). Without tensorflow and without the cached files the tests skip.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from tflite_util import run_litert

from rknn.api import RKNN

ROOT = pathlib.Path(__file__).resolve().parents[3]
FOLDER = ROOT / ".cache" / "models" / "tflite_generated"
GENERATOR = ROOT / "plugins" / "rknn_tf" / "tests"
FAST = ("mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0")
HEAVY = ("mobilenet", "resnet50", "densenet121", "inception_v3")


def _files(app: str) -> list[pathlib.Path]:
    return [FOLDER / f"{app}_{kind}" for kind in ("float.tflite", "int8.tflite", "input.npy")]


@pytest.fixture(scope="session")
def keras_tflite():
    """``get(app)`` -> folder holding ``{app}_float.tflite``, ``{app}_int8.tflite``, ``{app}_input.npy``;
    missing files are generated with tensorflow, or the test skips when tensorflow is absent."""

    def get(app: str) -> pathlib.Path:
        if all(p.is_file() for p in _files(app)):
            return FOLDER
        if importlib.util.find_spec("tensorflow") is None:
            pytest.skip(f"{FOLDER}/{app}_*.tflite are not generated and tensorflow is not installed to generate "
                        f"them (run plugins/rknn_tf/tests/tflite_models.py where tensorflow-cpu is installed)")
        sys.path.insert(0, str(GENERATOR))
        try:
            from tflite_models import tflite_models
        finally:
            sys.path.remove(str(GENERATOR))
        tflite_models(apps=(app,), folder=FOLDER)
        return FOLDER

    return get


def _vendor_flow(path: pathlib.Path, x: np.ndarray) -> np.ndarray:
    """config -> load_tflite -> build(float) -> init_runtime -> inference, data_type = the model's input;
    int8 outputs as stored integers (want_float=False), as LiteRT gives them."""
    rknn = RKNN()
    rknn.config()
    assert rknn.load_tflite(model=str(path)) == 0
    assert rknn.build(do_quantization=False) == 0
    assert rknn.init_runtime() == 0
    outputs = rknn.inference(inputs=[x[0]], data_type=str(x.dtype), data_format="nhwc", want_float=False)
    rknn.release()
    assert outputs is not None and len(outputs) == 1
    return outputs[0]


def _check_float(folder: pathlib.Path, app: str) -> None:
    path, x = folder / f"{app}_float.tflite", np.load(folder / f"{app}_input.npy").astype(np.float32)
    ref = run_litert(str(path), [x])[0]
    ours = _vendor_flow(path, x)
    assert ours.shape == ref.shape == (1, 1000)
    scale = float(np.abs(ref).max())
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * scale)
    assert int(np.argmax(ours)) == int(np.argmax(ref))


def lsb_histogram(folder: pathlib.Path, app: str) -> np.ndarray:
    """Counts of |ours - litert| in output LSBs (index = distance) for the int8 model on its picture."""
    path = folder / f"{app}_int8.tflite"
    detail = Interpreter(model_path=str(path)).get_input_details()[0]
    scale, zero = detail["quantization"]
    assert detail["dtype"] == np.int8 and scale > 0
    x = np.load(folder / f"{app}_input.npy").astype(np.float32)
    xq = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)
    ref = run_litert(str(path), [xq])[0]
    ours = _vendor_flow(path, xq)
    assert ours.dtype == np.int8 and ours.shape == ref.shape  # the output stays the model's int8 tensor
    return np.bincount(np.abs(ours.astype(np.int32) - ref.astype(np.int32)).ravel())


# Quantized CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD, MUL, AVERAGE_POOL_2D, MEAN and HARD_SWISH import
# as TFLite* ops with LiteRT's integer arithmetic; the remaining ops are exact when rounded from float. So
# every int8 model here must match the interpreter bit for bit (the issue asks for 1 LSB on 99 %).


def _check_int8(folder: pathlib.Path, app: str) -> None:
    hist = lsb_histogram(folder, app)
    within = hist[:2].sum() / hist.sum()
    print(f"{app} int8 |ours - litert| LSB histogram: {hist.tolist()}, within 1 LSB: {within:.3f}")
    assert hist.sum() == 1000
    assert within >= 0.99, (app, hist.tolist())
    assert hist.tolist() == [1000], (app, hist.tolist())


@pytest.mark.parametrize("app", FAST)
def test_keras_app_float_matches_litert(app, keras_tflite):
    _check_float(keras_tflite(app), app)


@pytest.mark.parametrize("app", FAST)
def test_keras_app_int8_within_one_lsb_of_litert(app, keras_tflite):
    _check_int8(keras_tflite(app), app)


@pytest.mark.heavy
@pytest.mark.parametrize("app", HEAVY)
def test_keras_app_float_matches_litert_heavy(app, keras_tflite):
    _check_float(keras_tflite(app), app)


@pytest.mark.heavy
@pytest.mark.parametrize("app", HEAVY)
def test_keras_app_int8_within_one_lsb_of_litert_heavy(app, keras_tflite):
    _check_int8(keras_tflite(app), app)
