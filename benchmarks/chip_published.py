"""Published NPU-only latencies of the first-generation Rockchip NPU (RK1808, RV1109, RV1126), with sources.

Each row is one model on one chip: milliseconds of NPU inference (no pre/post-processing), int8
unless marked. ``benchmarks/chip_models.py`` builds the architecture each ``model`` names.

Sources
- ZOO: Rockchip rknn_model_zoo README v2.3.2, "Model performance benchmark (FPS)", maximum NPU
  frequency, INT8 (LPRNet marked "(INT8)" on these chips), FPS = 1000 / ms.
  https://github.com/airockchip/rknn_model_zoo/blob/bad6c7334531becaf90a561988519b7bec34d0ab/README.md
  The v2.0 README (commit 9bed8a56de595046651d20fa6e107884f2011e65) publishes the same table with an
  older runtime; most rows agree within 2 %, some do not (RK1808: RetinaFace_mobile320 242.2 FPS,
  ppocrv4_det 9.1, ppseg 14.7; RV1126: RetinaFace_mobile320 210.1): the measurement noise between two
  runtime releases is up to ~50 % on small or unusual models, which bounds what any model can reach.
- PADDLE: Paddle-Lite "Rockchip NPU" deployment guide (docs/demo_guides/rockchip_npu.md, NNAdapter
  version), int8 MobileNetV1 / ResNet50 at 224x224, RK1808 EVB and RV1109 EVB (issue 9's rows).
  An older version of the same page measured 6.14 / 18.20 ms (RK1808 EVB) and 6.70 / 29.89 ms (RV1109).
  https://github.com/PaddlePaddle/Paddle-Lite/blob/develop/docs/demo_guides/rockchip_npu.md

Not used: rows in FP16 (ppocrv4_rec, lite-transformer: a different datapath and CPU-side ops), rows
marked "/" (not supported), and models whose architecture is not written in chip_models.py (listed
in SKIPPED with the reason).
"""

from __future__ import annotations

ZOO = "https://github.com/airockchip/rknn_model_zoo/blob/bad6c7334531becaf90a561988519b7bec34d0ab/README.md"
PADDLE = "https://github.com/PaddlePaddle/Paddle-Lite/blob/develop/docs/demo_guides/rockchip_npu.md"

# model: (source, {chip: FPS}) -- rknn_model_zoo v2.3.2, columns RV1109, RV1126, RK1808
_ZOO_FPS = {
    "mobilenetv2-12": (212.9, 322.3, 170.3),
    "resnet50-v2-7": (24.4, 36.2, 37.1),
    "yolov5s_relu": (20.2, 29.2, 37.2),
    "yolov5n": (36.3, 53.2, 61.2),
    "yolov5s": (13.6, 20.0, 28.2),
    "yolov5m": (5.8, 8.5, 13.3),
    "yolov6n": (37.8, 56.8, 66.8),
    "yolov6s": (10.8, 16.3, 24.1),
    "yolov6m": (5.6, 8.3, 11.5),
    "yolov7-tiny": (15.4, 22.4, 37.2),
    "yolov7": (3.3, 4.8, 7.4),
    "yolov8n": (24.0, 35.4, 42.3),
    "yolov8s": (8.9, 13.1, 19.1),
    "yolov8m": (3.9, 5.8, 9.1),
    "yolov8n-obb": (25.1, 37.3, 42.8),
    "yolo11n": (11.7, 17.0, 17.6),
    "yolo11s": (5.0, 7.3, 8.4),
    "yolo11m": (2.8, 4.0, 5.1),
    "yolox_s": (10.6, 15.7, 23.0),
    "yolox_m": (4.6, 6.8, 10.7),
    "ppyoloe_s": (11.2, 16.4, 21.1),
    "ppyoloe_m": (5.2, 7.7, 9.4),
    "deeplab-v3-plus-mobilenet-v2": (10.1, 13.0, 4.4),
    "yolov5n-seg": (28.6, 42.2, 49.6),
    "yolov5s-seg": (9.6, 14.0, 22.5),
    "yolov5m-seg": (4.7, 6.8, 10.8),
    "yolov8n-seg": (18.6, 27.6, 32.9),
    "yolov8s-seg": (6.6, 9.8, 14.6),
    "yolov8m-seg": (3.1, 4.6, 6.9),
    "ppseg_lite_1024x512": (18.4, 27.1, 20.9),
    "RetinaFace_mobile320": (144.8, 212.5, 198.5),
    "RetinaFace_resnet50_320": (14.6, 20.8, 24.6),
    "lprnet": (30.6, 47.6, 30.1),
    "ppocrv4_det": (11.0, 16.1, 14.2),
}

PUBLISHED: dict[str, tuple[str, dict[str, float]]] = {
    name: (ZOO, {chip: 1000 / fps for chip, fps in zip(("rv1109", "rv1126", "rk1808"), row)})
    for name, row in _ZOO_FPS.items()
}
PUBLISHED["mobilenet_v1"] = (PADDLE, {"rk1808": 6.98, "rv1109": 7.49})
PUBLISHED["resnet50"] = (PADDLE, {"rk1808": 19.39, "rv1109": 30.80})

ISSUE_ROWS = ("mobilenetv2-12", "resnet50-v2-7", "mobilenet_v1", "resnet50")  # issue 9's calibration table
