"""Just enough of cv2 (imread, cvtColor) on Pillow for the vendor script where OpenCV is not installed."""

import numpy as np
from PIL import Image

COLOR_BGR2RGB = 4


def imread(path):
    return np.asarray(Image.open(path).convert("RGB"))[:, :, ::-1].copy()


def cvtColor(img, code):  # noqa: N802 (OpenCV's name)
    assert code == COLOR_BGR2RGB
    return img[:, :, ::-1].copy()
