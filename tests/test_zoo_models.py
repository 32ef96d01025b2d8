"""Public model-zoo architectures (MobileNetV2, ResNet18) through the vendor flow, against onnxruntime."""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import onnx
import pytest
from onnx_util import run_ort

from rknn.api import RKNN

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))
import zoo  # noqa: E402

MEAN = np.array([103.94, 116.78, 123.68], np.float32)
SCALE = 58.82


@pytest.mark.parametrize("level", [0, 3])
@pytest.mark.parametrize("arch,size", [("mobilenet_v2", 96), ("resnet18", 64)])
def test_zoo_model_with_preprocessing_matches_onnxruntime(arch, size, level, tmp_path):
    path = str(tmp_path / f"{arch}.onnx")
    onnx.save(getattr(zoo, arch)(size=size, classes=100), path)
    image = np.random.default_rng(3).integers(0, 256, (size, size, 3), dtype=np.uint8)  # HWC, as cv2 reads
    # what the model must see: channels reordered 2 1 0, then (x - mean) / scale, in NCHW
    expected_input = ((image[:, :, ::-1].astype(np.float32) - MEAN) / SCALE).transpose(2, 0, 1)[None]
    reference = run_ort(path, {"input": expected_input})[0]

    rknn = RKNN()
    rknn.config(channel_mean_value="103.94 116.78 123.68 58.82", reorder_channel="2 1 0", optimization_level=level)
    assert rknn.load_onnx(model=path) == 0
    assert rknn.build(do_quantization=False) == 0
    assert rknn.export_rknn(str(tmp_path / "m.rknn")) == 0
    rknn.release()
    rknn = RKNN()
    assert rknn.load_rknn(str(tmp_path / "m.rknn")) == 0
    assert rknn.init_runtime() == 0
    ours = rknn.inference(inputs=[image])[0]
    passed_through = rknn.inference(inputs=[expected_input], data_type="float32", data_format="nchw",
                                    inputs_pass_through=[1])[0]
    rknn.release()
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(passed_through, reference, rtol=1e-4, atol=1e-6)
    assert ours.argmax() == reference.argmax()
