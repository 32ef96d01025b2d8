"""The calibration dataset file: one sample per line, image (jpg/png) or .npy paths, several inputs
separated by spaces, paths relative to the file. Bad lines are reported by number and fail the build."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator

import attrs
import numpy as np

from rknn_core.errors import RknnError

log = logging.getLogger("rknn")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


@attrs.frozen
class Dataset:
    """The valid lines of a dataset file: per line, one path per model input."""

    path: str
    lines: tuple[tuple[int, tuple[str, ...]], ...]  # (line number, paths)


MAX_LISTED = 10  # bad lines named in one error message


def read_dataset(path: str | None, n_inputs: int) -> Dataset:
    """Parse and check ``path``: every sample line must name ``n_inputs`` existing jpg/png/bmp/.npy
    files. Any bad line fails the whole dataset with one error that names every bad line (a
    calibration silently done on fewer samples than the user listed would be a hidden accuracy
    change); blank lines and lines starting with ``#`` are ignored."""
    if path is None:
        raise RknnError("quantization needs a dataset: build(do_quantization=True, dataset='./dataset.txt')")
    if not isinstance(path, (str, os.PathLike)):
        raise RknnError(f"dataset must be the path of a text file, got {type(path).__name__} {path!r}")
    if os.path.isdir(path):
        raise RknnError(f"dataset '{path}' is a directory; give a text file listing one sample per line")
    if not os.path.isfile(path):
        raise RknnError(f"dataset file '{path}' does not exist")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        text = "\0"
    if "\0" in text:
        raise RknnError(f"dataset file '{path}' is not a text file (expected one sample path per line, "
                        f"e.g. 'a.jpg' or 'a.npy')")
    good, problems = [], []
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields or raw.lstrip().startswith("#"):
            continue
        problem = _line_problem(fields, n_inputs, folder)
        if problem:
            problems.append(f"line {number}: {problem}")
            continue
        good.append((number, tuple(os.path.join(folder, p) for p in fields)))
    if problems:
        raise RknnError(dataset_error(path, problems))
    if not good:
        raise RknnError(f"dataset '{path}' has no sample lines (it is empty); list one sample per line")
    return Dataset(os.fspath(path), tuple(good))


def dataset_error(path: str, problems: list[str]) -> str:
    """One message naming the bad lines (the first ``MAX_LISTED`` of them in full)."""
    listed = "; ".join(problems[:MAX_LISTED])
    more = f"; and {len(problems) - MAX_LISTED} more bad line(s)" if len(problems) > MAX_LISTED else ""
    return f"dataset '{path}' has {len(problems)} bad line(s): {listed}{more}. Fix or remove them."


def _line_problem(fields: list[str], n_inputs: int, folder: str) -> str | None:
    if len(fields) != n_inputs:
        return f"has {len(fields)} path(s) but the model has {n_inputs} input(s)"
    for field in fields:
        full = os.path.join(folder, field)
        if os.path.isdir(full):
            return f"'{field}' is a directory, not a sample file"
        if not os.path.isfile(full):
            return f"file '{field}' does not exist"
        if not field.lower().endswith(IMAGE_EXTENSIONS + (".npy",)):
            return f"file '{field}' is neither an image (jpg/png/bmp) nor .npy"
    return None


IMAGE_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def load_sample(paths: tuple[str, ...], line: int, dataset: str,
                channels: tuple[int | None, ...] | None = None, header_only: bool = False) -> list[np.ndarray]:
    """The arrays of one line: images as HWC uint8 (grayscale for a 1-channel input, RGB by
    default, RGBA for 4 channels), .npy as stored. ``header_only``: arrays of the right shape and
    dtype without decoding the data (to check shapes quickly)."""
    arrays = []
    for index, p in enumerate(paths):
        try:
            if p.lower().endswith(".npy"):
                arrays.append(np.load(p, mmap_mode="r" if header_only else None, allow_pickle=False))
                continue
            from PIL import Image

            mode = IMAGE_MODES.get(channels[index] if channels else 3, "RGB")
            with Image.open(p) as image:
                if header_only:
                    depth = len(mode) if mode != "L" else 1
                    arrays.append(np.zeros((image.height, image.width, depth), dtype=np.uint8))
                else:
                    data = np.asarray(image.convert(mode))
                    arrays.append(data[..., None] if data.ndim == 2 else data)
        except Exception as exc:
            raise RknnError(f"dataset '{dataset}' line {line}: cannot read '{os.path.basename(p)}': "
                            f"{type(exc).__name__}: {exc}") from None
    return arrays


def check_samples(dataset: Dataset, check: Callable[[list[np.ndarray]], None],
                  channels: tuple[int | None, ...] | None = None) -> None:
    """Run ``check`` on every line's arrays (headers only: shapes and dtypes); one error names every
    line that cannot be read or that ``check`` refuses."""
    problems = []
    for number, paths in dataset.lines:
        prefix = f"dataset '{dataset.path}' line {number}: "
        try:
            arrays = load_sample(paths, number, dataset.path, channels, header_only=True)
        except RknnError as exc:
            problems.append(f"line {number}: {str(exc).removeprefix(prefix)}")
            continue
        try:
            check(arrays)
        except RknnError as exc:
            held = ", ".join(f"'{os.path.basename(p)}' holds {a.dtype} {tuple(a.shape)}" for p, a in zip(paths, arrays))
            problems.append(f"line {number}: {held}; {str(exc).removeprefix(prefix)}")
    if problems:
        raise RknnError(dataset_error(dataset.path, problems))


def calibration_plan(dataset: Dataset, batch_size: int, epochs: int) -> list[list[int]]:
    """Batches of line indexes: ``batch_size`` per batch, shrunk to the dataset size when the
    dataset is smaller. ``epochs`` batches, cycling through the lines; -1: every line exactly once
    (the last batch holds the remainder)."""
    n = len(dataset.lines)
    batch = min(batch_size, n)
    if epochs == -1:
        return [list(range(start, min(start + batch, n))) for start in range(0, n, batch)]
    order = [i % n for i in range(batch * epochs)]
    return [order[b * batch:(b + 1) * batch] for b in range(epochs)]


def iter_samples(dataset: Dataset, batch_size: int, epochs: int,
                 channels: tuple[int | None, ...] | None = None) -> Iterator[tuple[int, list[np.ndarray]]]:
    """(line number, arrays) for every sample of the calibration plan, batch after batch."""
    for batch in calibration_plan(dataset, batch_size, epochs):
        for index in batch:
            number, paths = dataset.lines[index]
            yield number, load_sample(paths, number, dataset.path, channels)
