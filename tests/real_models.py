"""Real trained ONNX models that ship inside PyPI packages (fetched by scripts/fetch_models.py)."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

MODELS = pathlib.Path(__file__).resolve().parent.parent / ".cache" / "models"


def real_model(relative: str) -> str:
    """Path of a fetched model; a clear failure (not a skip) when set-up has not fetched it."""
    path = MODELS / relative
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `bash scripts/setup.sh` (it runs scripts/fetch_models.py)")
    return str(path)


def text_image(height: int, width: int, text: str = "Hello NPU") -> np.ndarray:
    """An HWC uint8 picture of a black line of text on white: real input for the OCR models."""
    image = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(image).text((4, height // 3), text, fill="black", font=ImageFont.load_default(size=height // 4))
    return np.asarray(image)
