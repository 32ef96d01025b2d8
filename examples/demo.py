"""Demo: the vendor guide's flow on a real trained classifier (PP-OCR text direction, 0 or 180 degrees).

Converts the ONNX model shipped in the rapidocr-onnxruntime package (fetched by scripts/setup.sh) to
.rknn, runs it in the PC simulator on a rendered line of text, upright and upside down, and prints
the top-5 classes and the per-layer performance table.
"""

from __future__ import annotations

import pathlib
import sys
import tempfile

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from rknn.api import RKNN

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODEL = ROOT / ".cache/models/rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"
LABELS = ["0 degrees (upright)", "180 degrees (upside down)"]


def text_image(text: str, width: int = 192, height: int = 48) -> np.ndarray:
    """A black-on-white line of text as an RGB uint8 HWC array."""
    image = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(image).text((4, 8), text, fill="black", font=ImageFont.load_default(size=26))
    return np.asarray(image)


def show_top5(title: str, probabilities: np.ndarray) -> None:
    print(f"----- TOP 5: {title} -----")
    flat = probabilities.reshape(-1)
    for index in np.argsort(flat)[::-1][:5]:
        print(f"[{index}] {LABELS[index] if index < len(LABELS) else ''}: {flat[index]:.6f}")


def main() -> int:
    if not MODEL.is_file():
        print(f"{MODEL} is missing: run `bash scripts/setup.sh` first", file=sys.stderr)
        return 1
    rknn = RKNN()
    rknn.config(channel_mean_value="127.5 127.5 127.5 127.5", reorder_channel="0 1 2", target_platform=["rk1808"])
    print("--> Loading model")
    if rknn.load_onnx(model=str(MODEL), input_size_list=[[3, 48, 192]]) != 0:
        return 1
    print("--> Building model")
    if rknn.build(do_quantization=False) != 0:
        return 1
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/ppocr_cls.rknn"
        print(f"--> Export RKNN model to {path}")
        if rknn.export_rknn(path) != 0:
            return 1
        rknn.release()
        rknn = RKNN()
        if rknn.load_rknn(path) != 0 or rknn.init_runtime() != 0:
            return 1
    upright = text_image("Open NPU toolkit")
    for title, image in (("upright text", upright), ("rotated text", upright[::-1, ::-1].copy())):
        outputs = rknn.inference(inputs=[image])
        if outputs is None:
            return 1
        show_top5(title, outputs[0])
    rknn.eval_perf(inputs=[upright], is_print=True)
    rknn.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
