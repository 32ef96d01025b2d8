"""Read the learned blobs of a .caffemodel (binary NetParameter) without copying them.

The file is read once into memory; each blob's values are numpy views of that buffer (float32 data
is stored packed and little-endian), so a 550 MB VGG-16 costs about 550 MB. A small walker over the
protobuf wire format reads only what the importer needs (layer names, types and blobs): the layers'
parameters come from the .prototxt, as in Caffe.
"""

from __future__ import annotations

import os

import attrs
import numpy as np

from rknn_core.errors import RknnError

F32, F64 = np.dtype("<f4"), np.dtype("<f8")
VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
# field numbers (Caffe's caffe.proto): NetParameter.layer / .layers, then name, type, blobs of each form
NET_LAYER, NET_V1_LAYERS = 100, 2
LAYER_FIELDS = {NET_LAYER: (1, 2, 7), NET_V1_LAYERS: (4, 5, 6)}
BLOB_SHAPE, BLOB_DATA, BLOB_DOUBLE, BLOB_LEGACY = 7, 5, 8, (1, 2, 3, 4)


@attrs.define
class Blob:
    """One learned blob: its values (flat) and its shape; ``legacy`` for the old num/channels/height/width form."""

    data: np.ndarray
    shape: tuple[int, ...]
    legacy: bool = False


@attrs.define
class WeightLayer:
    name: str
    type: str | int  # a string (LayerParameter) or the V1 enum number
    blobs: list[Blob]


def read_caffemodel(path: str) -> dict[str, WeightLayer]:
    """Layer name -> its blobs, for every layer of the file that has a name."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise RknnError(f"Caffe weights file '{path}' does not exist")
    with open(path, "rb") as f:
        buf = memoryview(f.read())
    layers: dict[str, WeightLayer] = {}
    try:
        for field, wire, value in _fields(buf, 0, len(buf)):
            if field in LAYER_FIELDS and wire == LENGTH:
                layer = _layer(buf, value, LAYER_FIELDS[field])
                if layer.name:
                    layers[layer.name] = layer
    except (IndexError, ValueError) as exc:
        raise RknnError(f"'{path}' is not a valid binary .caffemodel: {exc}") from None
    if not layers and len(buf):
        raise RknnError(f"'{path}' holds no Caffe layers (is it a binary .caffemodel? a text file or a solver "
                        f"state is not)")
    return layers


def _layer(buf: memoryview, span: tuple[int, int], numbers: tuple[int, int, int]) -> WeightLayer:
    name_no, type_no, blobs_no = numbers
    name, kind, blobs = "", "", []
    for field, wire, value in _fields(buf, *span):
        if field == name_no and wire == LENGTH:
            name = bytes(buf[value[0]:value[1]]).decode("utf-8", "replace")
        elif field == type_no:
            kind = bytes(buf[value[0]:value[1]]).decode("utf-8", "replace") if wire == LENGTH else value
        elif field == blobs_no and wire == LENGTH:
            blobs.append(_blob(buf, value))
    return WeightLayer(name, kind, blobs)


def _blob(buf: memoryview, span: tuple[int, int]) -> Blob:
    shape: list[int] | None = None
    legacy = [0, 0, 0, 0]
    chunks: list[np.ndarray] = []
    for field, wire, value in _fields(buf, *span):
        if field == BLOB_SHAPE and wire == LENGTH:
            shape = _dims(buf, value)
        elif field in (BLOB_DATA, BLOB_DOUBLE):
            dtype = F32 if field == BLOB_DATA else F64
            if wire == LENGTH:  # packed (what Caffe writes)
                start, end = value
                chunks.append(np.frombuffer(buf.obj, dtype, (end - start) // dtype.itemsize, start))
            else:  # one unpacked value
                chunks.append(np.frombuffer(value.to_bytes(dtype.itemsize, "little"), dtype))
        elif field in BLOB_LEGACY and wire == VARINT:
            legacy[field - 1] = _signed(value)
    data = chunks[0] if len(chunks) == 1 else np.concatenate(chunks) if chunks else np.zeros(0, F32)
    if data.dtype != F32:
        data = data.astype(np.float32)
    if shape is not None:
        return Blob(data, tuple(shape))
    return Blob(data, tuple(legacy), legacy=True)


def _dims(buf: memoryview, span: tuple[int, int]) -> list[int]:
    dims = []
    for field, wire, value in _fields(buf, *span):
        if field != 1:
            continue
        if wire == LENGTH:
            pos, end = value
            while pos < end:
                v, pos = _varint(buf, pos)
                dims.append(_signed(v))
        else:
            dims.append(_signed(value))
    return dims


def _fields(buf: memoryview, pos: int, end: int):
    """(field number, wire type, value) of each field in buf[pos:end]; a LENGTH value is its (start, end)."""
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = _varint(buf, pos)
        elif wire == LENGTH:
            size, pos = _varint(buf, pos)
            value = (pos, pos + size)
            pos += size
        elif wire == FIXED32:
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        elif wire == FIXED64:
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} at byte {pos}")
        if pos > end:
            raise ValueError(f"a field runs past the end of its message (byte {pos} > {end})")
        yield field, wire, value


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError(f"malformed varint at byte {pos}")


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value
