"""The calibration dataset file: one sample per line, image (jpg/png) or .npy paths, several inputs
separated by spaces, paths relative to the file. Bad lines are reported by number."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator

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


def read_dataset(path: str | None, n_inputs: int) -> Dataset:
    """Parse and check ``path``; invalid lines are logged with their numbers, none valid is an error."""
    if path is None:
        raise RknnError("quantization needs a dataset: build(do_quantization=True, dataset='./dataset.txt')")
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise RknnError(f"dataset file '{path}' does not exist")
    folder = os.path.dirname(os.path.abspath(path))
    good, problems = [], []
    try:
        with open(path, encoding="utf-8") as f:
            text_lines = f.read().splitlines()
    except UnicodeDecodeError:
        raise RknnError(f"dataset file '{path}' is not a text file (one sample path per line)") from None
    for number, raw in enumerate(text_lines, start=1):
        fields = raw.split()
        if not fields or raw.lstrip().startswith("#"):
            continue
        problem = _line_problem(fields, n_inputs, folder)
        if problem:
            problems.append(f"line {number}: {problem}")
            continue
        good.append((number, tuple(os.path.join(folder, p) for p in fields)))
    for problem in problems[:20]:
        log.warning("dataset '%s' %s (line skipped)", path, problem)
    if not good:
        detail = "; ".join(problems[:5]) if problems else "the file has no sample lines"
        raise RknnError(f"dataset '{path}' has no valid line: {detail}")
    return Dataset(os.fspath(path), tuple(good))


def _line_problem(fields: list[str], n_inputs: int, folder: str) -> str | None:
    if len(fields) != n_inputs:
        return f"has {len(fields)} path(s) but the model has {n_inputs} input(s)"
    for field in fields:
        full = os.path.join(folder, field)
        if not os.path.isfile(full):
            return f"file '{field}' does not exist"
        if not field.lower().endswith(IMAGE_EXTENSIONS + (".npy",)):
            return f"file '{field}' is neither an image (jpg/png/bmp) nor .npy"
    return None


def load_sample(paths: tuple[str, ...], line: int, dataset: str) -> list[np.ndarray]:
    """The arrays of one line: images as RGB HWC uint8, .npy as stored."""
    arrays = []
    for p in paths:
        try:
            if p.lower().endswith(".npy"):
                arrays.append(np.load(p, allow_pickle=False))
            else:
                from PIL import Image

                with Image.open(p) as image:
                    arrays.append(np.asarray(image.convert("RGB")))
        except Exception as exc:
            raise RknnError(f"dataset '{dataset}' line {line}: cannot read '{p}': {type(exc).__name__}: {exc}") from None
    return arrays


def calibration_plan(dataset: Dataset, batch_size: int, epochs: int) -> list[list[int]]:
    """Batches of line indexes: ``batch_size`` (at most the dataset size) per batch, ``epochs``
    batches (-1: enough to use every line once), cycling through the lines."""
    n = len(dataset.lines)
    batch = min(batch_size, n)
    count = math.ceil(n / batch) if epochs == -1 else epochs
    order = [i % n for i in range(batch * count)]
    return [order[b * batch:(b + 1) * batch] for b in range(count)]


def iter_samples(dataset: Dataset, batch_size: int, epochs: int) -> Iterator[tuple[int, list[np.ndarray]]]:
    """(line number, arrays) for every sample of the calibration plan, batch after batch."""
    for batch in calibration_plan(dataset, batch_size, epochs):
        for index in batch:
            number, paths = dataset.lines[index]
            yield number, load_sample(paths, number, dataset.path)
