"""Write a .caffemodel: a network definition plus learned blobs in Caffe's binary format.

Each layer is the protobuf serialization of its LayerParameter (or V1LayerParameter) followed by its
blobs, streamed to the file one blob at a time, so weights of any size are written without a copy
of the whole model. What Caffe and OpenCV read; the tests and benchmarks make their models with it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from google.protobuf import text_format

from rknn_caffe.proto import caffe_pb2 as pb

LENGTH = 2


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _blob_header(array: np.ndarray, legacy: bool) -> tuple[bytes, int]:
    """The BlobProto bytes before its data, and the data's size in bytes."""
    if legacy:
        dims = (1,) * (4 - array.ndim) + tuple(array.shape)
        if len(dims) != 4:
            raise ValueError(f"a legacy blob has at most 4 axes, got shape {array.shape}")
        head = b"".join(_key(field, 0) + _varint(d) for field, d in zip((1, 2, 3, 4), dims))
    else:
        packed = b"".join(_varint(int(d)) for d in array.shape)
        shape = _key(1, LENGTH) + _varint(len(packed)) + packed
        head = _key(7, LENGTH) + _varint(len(shape)) + shape
    size = array.size * 4
    return head + _key(5, LENGTH) + _varint(size), size


def write_caffemodel(path: str | os.PathLike, net: pb.NetParameter | str,
                     blobs: Mapping[str, Sequence[np.ndarray]]) -> None:
    """Write ``net`` (a NetParameter or its .prototxt text) with ``blobs`` (layer name -> arrays, float32)
    to ``path``. A net in the legacy ``layers`` format gets legacy 4-D blobs (num/channels/height/width)."""
    if isinstance(net, str):
        net = text_format.Parse(net, pb.NetParameter(), allow_unknown_field=True)
    legacy = bool(net.layers)
    field, blob_field = (2, 6) if legacy else (100, 7)
    with open(path, "wb") as f:
        if net.name:
            name = net.name.encode()
            f.write(_key(1, LENGTH) + _varint(len(name)) + name)
        for layer in (net.layers if legacy else net.layer):
            body = layer.SerializeToString()
            arrays = [np.ascontiguousarray(a, dtype="<f4") for a in blobs.get(layer.name, ())]
            parts = [_blob_header(a, legacy) for a in arrays]
            blob_bytes = [len(_key(blob_field, LENGTH) + _varint(len(h) + s)) + len(h) + s for h, s in parts]
            f.write(_key(field, LENGTH) + _varint(len(body) + sum(blob_bytes)) + body)
            for (head, size), array in zip(parts, arrays):
                f.write(_key(blob_field, LENGTH) + _varint(len(head) + size) + head)
                f.write(memoryview(array.reshape(-1)).cast("B"))
