"""Real trained .tflite models shipped in the mediapipe wheel, through the vendor flow, against ai-edge-litert."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from PIL import Image, ImageDraw
from tflite_util import run_litert

from rknn.api import RKNN

MODELS = pathlib.Path(__file__).resolve().parents[3] / ".cache" / "models" / "mediapipe" / "modules"
# model -> (HWC input size, pixel normalization (mean, std): input = (pixel - mean) / std)
CASES = {
    "face_detection/face_detection_short_range": ((128, 128, 3), (127.5, 127.5)),
    "face_detection/face_detection_full_range_sparse": ((192, 192, 3), (127.5, 127.5)),
    "face_landmark/face_landmark": ((192, 192, 3), (0.0, 255.0)),
    "hand_landmark/hand_landmark_lite": ((224, 224, 3), (0.0, 255.0)),
    "iris_landmark/iris_landmark": ((64, 64, 3), (0.0, 255.0)),
    "palm_detection/palm_detection_lite": ((192, 192, 3), (0.0, 255.0)),
    "pose_detection/pose_detection": ((224, 224, 3), (127.5, 127.5)),
    "holistic_landmark/hand_recrop": ((256, 256, 3), (127.5, 127.5)),
    "pose_landmark/pose_landmark_full": ((256, 256, 3), (0.0, 255.0)),
}


def model_path(name: str) -> str:
    path = MODELS / f"{name}.tflite"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `python scripts/fetch_models.py`")
    return str(path)


def picture(height: int, width: int) -> np.ndarray:
    """An HWC uint8 scene: a sky gradient, a skin-coloured face-like ellipse with eyes, a hand-like shape."""
    y, x = np.mgrid[0:height, 0:width]
    sky = np.stack([60 + 120 * y / height, 90 + 100 * x / width, 200 - 80 * y / height], -1)
    image = Image.fromarray(sky.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse([width * 0.3, height * 0.2, width * 0.7, height * 0.75], fill=(224, 172, 140))
    for ex in (0.42, 0.58):
        draw.ellipse([width * (ex - 0.04), height * 0.38, width * (ex + 0.04), height * 0.44], fill=(40, 30, 30))
    draw.rectangle([width * 0.05, height * 0.6, width * 0.25, height * 0.95], fill=(210, 160, 130))
    return np.asarray(image)


@pytest.mark.parametrize("name", sorted(CASES))
def test_real_tflite_model_matches_litert(name, tmp_path):
    path = model_path(name)
    (h, w, _), (mean, std) = CASES[name]
    image = picture(h, w)
    reference = run_litert(path, [((image.astype(np.float32) - mean) / std)[None]])
    rknn = RKNN()
    rknn.config(channel_mean_value=f"{mean} {mean} {mean} {std}", reorder_channel="0 1 2")
    assert rknn.load_tflite(model=path) == 0
    assert rknn.build(do_quantization=False) == 0
    assert rknn.export_rknn(str(tmp_path / "model.rknn")) == 0
    rknn.release()
    rknn = RKNN()
    assert rknn.load_rknn(str(tmp_path / "model.rknn")) == 0
    assert rknn.init_runtime() == 0
    outputs = rknn.inference(inputs=[image])  # uint8 NHWC, as the vendor scripts pass camera frames
    rknn.release()
    assert len(outputs) == len(reference)
    for ours, ref in zip(outputs, reference):
        assert ours.shape == ref.shape  # outputs keep the model's own (NHWC) layout
        scale = max(float(np.abs(ref).max()), 1e-6)
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * scale)


def test_custom_op_is_refused_with_its_name(capsys):
    path = model_path("selfie_segmentation/selfie_segmentation")
    rknn = RKNN()
    assert rknn.load_tflite(model=path) == -1
    err = capsys.readouterr().err
    assert "E unsupported TFLite op custom:Convolution2DTransposeBias at operator 244" in err
    assert "no installed plugin converts it" in err and "Converter('tflite', 'custom:Convolution2DTransposeBias'" in err
    assert "output 'segment'" in err and "rknn-tflite 0.1.0" in err and "Traceback" not in err
    rknn.release()
