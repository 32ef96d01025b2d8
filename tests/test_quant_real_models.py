"""The guide's quantized flow on a real trained classifier: quantized top-1 agrees with float top-1."""

from __future__ import annotations

import numpy as np
from onnx_util import run_ort
from PIL import Image, ImageDraw, ImageFont
from real_models import real_model

from rknn.api import RKNN

CLS = "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"
WORDS = ["Open NPU toolkit", "quantized model", "hello 2026", "edge inference", "RK1808 board", "text line",
         "calibration set", "accuracy", "simulator", "integer kernels", "depthwise conv", "zero point"]


def text_line(text: str, flip: bool, size: int) -> np.ndarray:
    """A rendered line of text, upright or rotated 180 degrees, as HWC uint8."""
    image = Image.new("RGB", (192, 48), "white")
    ImageDraw.Draw(image).text((4, 10), text, fill="black", font=ImageFont.load_default(size=size))
    array = np.asarray(image)
    return np.ascontiguousarray(array[::-1, ::-1]) if flip else array


def test_quantized_text_direction_classifier_agrees_with_float(tmp_path):
    model = real_model(CLS)
    lines = []
    for i, word in enumerate(WORDS[:6]):  # calibration: half of the words, both orientations
        for flip in (False, True):
            path = tmp_path / f"cal_{i}_{int(flip)}.png"
            Image.fromarray(text_line(word, flip, 24)).save(path)
            lines.append(path.name)
    (tmp_path / "dataset.txt").write_text("\n".join(lines) + "\n")

    rknn = RKNN()
    rknn.config(channel_mean_value="127.5 127.5 127.5 127.5", reorder_channel="0 1 2")
    assert rknn.load_onnx(model=model, input_size_list=[[3, 48, 192]]) == 0
    assert rknn.build(do_quantization=True, dataset=str(tmp_path / "dataset.txt")) == 0
    assert rknn.export_rknn(str(tmp_path / "cls.rknn")) == 0
    rknn.release()
    rknn = RKNN()
    assert rknn.load_rknn(str(tmp_path / "cls.rknn")) == 0 and rknn.init_runtime() == 0

    agree, total = 0, 0
    for word in WORDS[6:]:  # held out
        for flip in (False, True):
            for size in (20, 26):
                image = text_line(word, flip, size)
                ref = run_ort(model, {"x": ((image.astype(np.float32) - 127.5) / 127.5).transpose(2, 0, 1)[None]})[0]
                ours = rknn.inference(inputs=[image])[0]
                assert ours.shape == ref.shape
                agree += int(ours.argmax() == ref.argmax())
                total += 1
    perf = rknn.eval_perf(inputs=[text_line(WORDS[0], False, 24)], is_print=False)
    rknn.release()
    assert agree / total >= 0.9, f"quantized top-1 agrees with float on {agree}/{total} held-out images"
    assert perf["total_time"] > 0
