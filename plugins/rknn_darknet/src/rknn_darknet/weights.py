"""Darknet .weights files: a small header, then every layer's float32 parameters in layer order.

The header is three int32 (major, minor, revision) and ``seen`` (images trained on): an int64 when
``major * 10 + minor >= 2`` (and both are below 1000), an int32 before. The floats are mapped, not
read: each layer's arrays are views into a copy-on-write ``np.memmap``, so a 250 MB file costs no
extra copy until a pass (batch-norm folding) computes new weights from it.

A file that is too short or too long is reported after the whole cfg was walked, so the error gives
both sizes and the layer where the data ran out.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from rknn_core.errors import RknnError

FLOAT = np.dtype("<f4")


def header_size(major: int, minor: int) -> int:
    """Bytes before the first float: 12 for the version, then ``seen`` as int64 or int32."""
    return 20 if major * 10 + minor >= 2 and major < 1000 and minor < 1000 else 16


class WeightsFile:
    """Hands out a .weights file's float arrays in order (``take``); ``finish`` checks the size."""

    def __init__(self, path: str):
        if not os.path.isfile(path):
            raise RknnError(f"darknet weights '{path}' do not exist")
        self.path, self.name = path, os.path.basename(path)
        self.size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(12)
        if len(head) < 12:
            raise RknnError(f"'{self.name}' holds {self.size} bytes: too short for a darknet .weights header")
        self.major, self.minor, self.revision = struct.unpack("<3i", head)
        if self.major > 1000 or self.minor > 1000 or self.major < 0 or self.minor < 0:
            raise RknnError(f"'{self.name}' has header version {self.major}.{self.minor}: not a darknet .weights "
                            f"file this importer reads (transposed weights, or another format)")
        self.offset = header_size(self.major, self.minor)
        count = max(self.size - self.offset, 0) // FLOAT.itemsize
        self.floats = (np.memmap(path, FLOAT, "c", offset=self.offset, shape=(count,)) if count
                       else np.zeros(0, FLOAT))
        self.position = 0  # floats handed out (or, past the end, asked for)
        self.ran_out: str | None = None  # the first layer and array that did not fit

    def take(self, shape: tuple[int, ...], what: str, where: str) -> np.ndarray:
        """The next ``prod(shape)`` floats as an array of ``shape`` (a view of the file). Past the end
        it gives zeros and remembers ``where``/``what`` for the error ``finish`` raises."""
        count = int(np.prod(shape, dtype=np.int64))
        start, self.position = self.position, self.position + count
        if self.position <= len(self.floats):
            return np.asarray(self.floats[start:self.position]).reshape(shape)
        if self.ran_out is None:
            self.ran_out = f"{where} ({what}: {count} floats at byte {self.offset + 4 * start})"
        return np.zeros(shape, FLOAT)

    def finish(self, cfg_name: str) -> None:
        """Refuse a file whose size does not match what the cfg's layers read."""
        needed = self.offset + 4 * self.position
        if self.ran_out is not None:
            raise RknnError(f"darknet weights '{self.name}' are too short for '{cfg_name}': the file holds "
                            f"{self.size} bytes but the layers need {needed}; the data runs out in {self.ran_out}")
        if needed != self.size:
            raise RknnError(f"darknet weights '{self.name}' are too long for '{cfg_name}': the file holds "
                            f"{self.size} bytes but the layers need only {needed} ({self.size - needed} bytes "
                            f"left over); are the .cfg and .weights of the same model?")


class RandomWeights:
    """A stand-in for ``WeightsFile`` that invents sane values (for ``writer.write_weights``): weights
    scaled by their fan-in, batch-norm scales and variances near 1, small biases and means."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.arrays: list[np.ndarray] = []

    def take(self, shape: tuple[int, ...], what: str, where: str) -> np.ndarray:
        rng = self.rng
        if what == "weights":
            fan_in = int(np.prod(shape[1:], dtype=np.int64)) or 1
            data = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        elif what in ("scales", "rolling_variance"):
            data = rng.uniform(0.5, 1.5, shape)
        elif what == "shortcut weights":
            data = rng.uniform(0.5, 1.0, shape)
        else:  # biases, rolling_mean
            data = rng.normal(0.0, 0.1, shape)
        data = data.astype(FLOAT)
        self.arrays.append(data)
        return data
