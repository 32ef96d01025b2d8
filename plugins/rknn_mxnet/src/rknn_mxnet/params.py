"""MXNet's NDArray list file (``.params``, ``mx.nd.save``) read without mxnet.

The layout (little-endian, as dmlc streams write it)::

    uint64 0x112 (list magic), uint64 0 (reserved)
    uint64 count, then count NDArrays
    uint64 count, then count names (uint64 length + bytes); no names for a plain list

and each NDArray, by the magic of its first uint32:

    0xF993FAC9 (V2) / 0xF993FACA (V3, numpy shapes): int32 storage type, shape, context, int32 type, data
    0xF993FAC8 (V1): shape, context, int32 type, data
    anything else (pre-V1): the value is ndim, then ndim uint32 sizes, context, int32 type, data

A shape is uint32 (int32 in V3) ndim then ndim int64 sizes; a context two int32 (device type, id). A V1/V2
array with ndim 0 is empty (no context, type or data follows). Gluon's ``export`` names parameters
``arg:<name>`` (weights) and ``aux:<name>`` (BatchNorm moving statistics).
"""

from __future__ import annotations

import os
import struct

import numpy as np

from rknn_core.errors import RknnError

LIST_MAGIC = 0x112
V1_MAGIC, V2_MAGIC, V3_MAGIC = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
# mshadow type flags
DTYPES = {0: np.float32, 1: np.float64, 2: np.float16, 3: np.uint8, 4: np.int32, 5: np.int8, 6: np.int64,
          7: np.bool_, 8: np.int16, 9: np.uint16, 10: np.uint32, 11: np.uint64}
STORAGE = {0: "default", 1: "row_sparse", 2: "csr"}


class _Reader:
    """Sequential little-endian reads that name the file and the place of a short read."""

    def __init__(self, data: bytes, path: str):
        self.data, self.pos, self.path = data, 0, path

    def take(self, size: int, what: str) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise RknnError(f"'{self.path}' ends inside {what} (needs {size} bytes at offset {self.pos}, the file "
                            f"has {len(self.data)}): the .params file is truncated or not an MXNet NDArray file")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def values(self, fmt: str, what: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def unpack(self, fmt: str, what: str):
        return self.values(fmt, what)[0]


def read_params(path: str) -> dict[str, np.ndarray]:
    """Every named array of an MXNet .params file, names as stored (``arg:conv0_weight``)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    return parse_params(data, os.path.basename(path))


def parse_params(data: bytes, path: str = "<bytes>") -> dict[str, np.ndarray]:
    """``read_params`` on the bytes of a file; ``path`` names it in errors."""
    r = _Reader(data, path)
    magic, _ = r.values("QQ", "the header")
    if magic != LIST_MAGIC:
        raise RknnError(f"'{path}' is not an MXNet .params file (its header is {magic:#x}, an NDArray list file "
                        f"starts with {LIST_MAGIC:#x})")
    count = r.unpack("Q", "the array count")
    if count > len(data):
        raise RknnError(f"'{path}' claims {count} arrays in {len(data)} bytes: the file is damaged")
    arrays = [_read_array(r, i) for i in range(count)]
    n_names = r.unpack("Q", "the name count")
    if n_names != count:
        raise RknnError(f"'{path}' holds {count} arrays but {n_names} names; load_mxnet needs named parameters "
                        f"(as mx.nd.save of a dict and Gluon's export write them)")
    names = [r.take(r.unpack("Q", f"the length of name {i}"), f"name {i}").decode("utf-8", "replace")
             for i in range(n_names)]
    if r.pos != len(data):
        raise RknnError(f"'{path}' has {len(data) - r.pos} bytes after its last name: the file is damaged")
    if len(set(names)) != len(names):
        raise RknnError(f"'{path}' names a parameter twice")
    return dict(zip(names, arrays))


def _read_array(r: _Reader, index: int) -> np.ndarray:
    what = f"array {index}"
    magic = r.unpack("I", f"the magic of {what}")
    if magic in (V2_MAGIC, V3_MAGIC):
        stype = r.unpack("i", f"the storage type of {what}")
        if stype != 0:
            raise RknnError(f"'{r.path}': {what} has {STORAGE.get(stype, stype)} storage; only dense arrays are "
                            f"supported (save the parameters with .tostype('default'))")
        shape = _shape(r, what, signed=magic == V3_MAGIC)
        if magic == V2_MAGIC and not shape:
            return np.zeros((0,), np.float32)
    elif magic == V1_MAGIC:
        shape = _shape(r, what, signed=False)
        if not shape:
            return np.zeros((0,), np.float32)
    else:  # before V1 the first uint32 is ndim and the sizes are uint32
        if magic > 32:
            raise RknnError(f"'{r.path}': {what} starts with {magic:#x}, which is no NDArray magic number")
        shape = r.values(f"{magic}I", f"the shape of {what}")
        if not shape:
            return np.zeros((0,), np.float32)
    r.values("ii", f"the context of {what}")
    flag = r.unpack("i", f"the type of {what}")
    if flag not in DTYPES:
        raise RknnError(f"'{r.path}': {what} has the unknown type flag {flag}")
    dtype = np.dtype(DTYPES[flag])
    size = int(np.prod(shape, dtype=np.int64))
    raw = r.take(size * dtype.itemsize, f"the data of {what} (shape {list(shape)}, {dtype.name})")
    return np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype).reshape(shape)


def _shape(r: _Reader, what: str, signed: bool) -> tuple[int, ...]:
    ndim = r.unpack("i" if signed else "I", f"the rank of {what}")
    if signed and ndim == -1:
        raise RknnError(f"'{r.path}': {what} has an unknown shape")
    if not 0 <= ndim <= 32:
        raise RknnError(f"'{r.path}': {what} has the invalid rank {ndim}")
    dims = r.values(f"{ndim}q", f"the shape of {what}")
    if any(d < 0 for d in dims):
        raise RknnError(f"'{r.path}': {what} has the invalid shape {list(dims)}")
    return dims


def split_params(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays keyed by the symbol's variable names: ``arg:``/``aux:`` prefixes removed."""
    result: dict[str, np.ndarray] = {}
    for name, value in params.items():
        key = name.split(":", 1)[1] if name.startswith(("arg:", "aux:")) else name
        if key in result:
            raise RknnError(f"parameter '{key}' is stored twice (as arg: and aux:)")
        result[key] = value
    return result
