"""Input files for ``inference``/``eval_perf``: an image (decoded to HWC uint8 and resized to the
model input) or a ``.npy`` array; and the same reading written as script code."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rknn_gui.errors import GuiError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def image_geometry(shape: tuple, layout: str | None) -> tuple[int, int, int] | None:
    """(channels, height, width) of a 4-D model input, or None when it is no picture."""
    if len(shape) != 4:
        return None
    return (shape[3], shape[1], shape[2]) if layout == "NHWC" else (shape[1], shape[2], shape[3])


def read_input(path: Path, shape: tuple, layout: str | None) -> np.ndarray:
    """The array ``inference`` gets for one input file."""
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise GuiError(f"cannot read '{path.name}' as a .npy array: {exc}") from None
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise GuiError(f"'{path.name}' is neither an image ({', '.join(IMAGE_SUFFIXES)}) nor a .npy array")
    from PIL import Image

    geometry = image_geometry(shape, layout)
    try:
        with Image.open(path) as img:
            img = img.convert(MODES.get(geometry[0], "RGB") if geometry else "RGB")
            if geometry and img.size != (geometry[2], geometry[1]):
                img = img.resize((geometry[2], geometry[1]), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except OSError as exc:
        raise GuiError(f"cannot read image '{path.name}': {exc}") from None


def input_code(variable: str, name: str, shape: tuple, layout: str | None) -> str:
    """Script code assigning what :func:`read_input` returns for ``name`` to ``variable``."""
    if name.lower().endswith(".npy"):
        return f"{variable} = np.load({name!r})"
    geometry = image_geometry(shape, layout)
    mode = MODES.get(geometry[0], "RGB") if geometry else "RGB"
    code = f"Image.open({name!r}).convert({mode!r})"
    if geometry:
        code = f"_resized({code}, ({geometry[2]}, {geometry[1]}))"
    return f"{variable} = np.asarray({code}, dtype=np.uint8)"


RESIZE_HELPER = '''def _resized(img, size):
    """The picture at the model input's size (width, height), as the GUI resized it."""
    return img if img.size == size else img.resize(size, Image.BILINEAR)
'''


def data_type(arrays: list[np.ndarray]) -> str:
    """``inference``'s data_type for these arrays (uint8 pictures, else float32)."""
    return "uint8" if all(a.dtype == np.uint8 for a in arrays) else "float32"
