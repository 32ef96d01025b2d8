"""The .rknn container: a fixed header, a JSON description and 64-byte-aligned constant blobs.

Layout (little endian)::

    magic "RKNNOPEN" | u32 format version | u32 flags | u64 meta length | u64 data length
    | 32-byte SHA-256 of meta + data | meta (UTF-8 JSON) | zero padding to 64 | data

Constants are read as read-only views into a memory map of the file (zero copy). The description's
``provenance`` names the plugin distribution and version that supplied each op, quantizer and target
platform the model uses (``rknn_core.provenance``); files written before it have none and still load.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
from typing import Any

import attrs
import numpy as np

from rknn_core.atomic import write_atomic
from rknn_core.errors import RknnError
from rknn_core.ir import Graph, Node, QuantParams, Tensor
from rknn_core.model import RknnModel
from rknn_core.rknn_check import check_description

MAGIC = b"RKNNOPEN"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sIIQQ32s")
ALIGN = 64


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _encode_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_encode_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode_value(v) for k, v in value.items()}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and "__ndarray__" in value:
        return np.asarray(value["__ndarray__"], dtype=value["dtype"]).reshape(value["shape"])
    if isinstance(value, list):
        return [_decode_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _decode_value(v) for k, v in value.items()}
    return value


def describe(model: RknnModel) -> tuple[dict, list[bytes]]:
    """The JSON description of ``model`` and its constants as 64-byte padded chunks (offsets in the
    description count from the first chunk)."""
    chunks: list[bytes] = []
    offset = 0
    tensors = []
    for t in model.graph.tensors.values():
        entry = {"name": t.name, "shape": None if t.shape is None else list(t.shape), "dtype": t.dtype,
                 "layout": t.layout, "quant": None if t.quant is None else attrs.asdict(t.quant)}
        if t.data is not None:
            data = np.asarray(t.data)  # (np.ascontiguousarray would turn a 0-d scalar into shape (1,))
            if not data.flags.c_contiguous:
                data = data.copy(order="C")
            entry["data"] = {"offset": offset, "nbytes": int(data.nbytes), "dtype": data.dtype.str,
                             "shape": list(data.shape)}
            raw = data.tobytes()
            chunks.append(raw + b"\0" * (_align(len(raw)) - len(raw)))
            offset = _align(offset + data.nbytes)
        tensors.append(entry)
    g = model.graph
    meta = {
        "graph": {"name": g.name, "inputs": g.inputs, "outputs": g.outputs, "tensors": tensors,
                  "nodes": [{"name": n.name, "op": n.op, "inputs": n.inputs, "outputs": n.outputs,
                             "attrs": _encode_value(n.attrs)} for n in g.nodes],
                  "metadata": _encode_value(g.metadata)},
        "target_platform": model.target_platform, "pre_compile": model.pre_compile,
        "rknn_batch_size": model.rknn_batch_size, "quantized_dtype": model.quantized_dtype,
        "preprocessed": model.preprocessed, "extra": _encode_value(model.extra),
        "provenance": model.provenance,
    }
    return meta, chunks


def save(model: RknnModel, path: str) -> None:
    """Write ``model`` to ``path`` atomically (a temporary file in the same folder, then rename)."""
    meta, chunks = describe(model)
    meta_bytes = json.dumps(meta, separators=(",", ":")).encode("utf-8")
    head_len = _align(_HEADER.size + len(meta_bytes))
    pad_meta = b"\0" * (head_len - _HEADER.size - len(meta_bytes))
    digest = hashlib.sha256(meta_bytes)
    data_len = sum(len(c) for c in chunks)
    for chunk in chunks:
        digest.update(chunk)
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, 0, len(meta_bytes), data_len, digest.digest())
    write_atomic(path, [header, meta_bytes + pad_meta, *chunks])


def file_version(path: str) -> int | None:
    """The format version in a file's header, or None when it is not an .rknn file."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEADER.size)
    except OSError:
        return None
    if len(head) < _HEADER.size or head[:8] != MAGIC:
        return None
    return _HEADER.unpack(head)[1]


def load(path: str) -> RknnModel:
    """Read a .rknn file; refuses missing, truncated, corrupted or newer-version files and malformed
    descriptions clearly (the graph itself is checked by ``rknn_check.check_model``, which needs the ops)."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise RknnError(f"RKNN model file '{path}' does not exist")
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < _HEADER.size:
            raise RknnError(f"'{path}' is too short to be an RKNN model ({size} bytes)")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    magic, version, _flags, meta_len, data_len, digest = _HEADER.unpack_from(mm, 0)
    if magic != MAGIC:
        raise RknnError(f"'{path}' is not an RKNN model written by this toolkit (bad magic bytes)")
    if version > FORMAT_VERSION:
        raise RknnError(f"'{path}' uses .rknn format version {version}, newer than this toolkit's "
                        f"{FORMAT_VERSION}: upgrade rknn-core to load it")
    head_len = _align(_HEADER.size + meta_len)
    if head_len + data_len != size:
        raise RknnError(f"'{path}' is truncated or has trailing bytes: expected {head_len + data_len} bytes, found {size}")
    meta_bytes = mm[_HEADER.size:_HEADER.size + meta_len]
    check = hashlib.sha256(meta_bytes)
    check.update(memoryview(mm)[head_len:head_len + data_len])
    if check.digest() != digest:
        raise RknnError(f"'{path}' is corrupted: its checksum does not match its content")
    try:
        meta = json.loads(meta_bytes)
        check_description(meta, data_len)
        return model_from_description(meta, mm, head_len)
    except RknnError as exc:
        raise RknnError(f"'{path}' has a malformed model description: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise RknnError(f"'{path}' has a malformed model description ({type(exc).__name__}: {exc}); "
                        f"it was not written by a compatible toolkit") from None


def model_from_description(meta: dict, mm: mmap.mmap | bytes, data_start: int) -> RknnModel:
    """The model ``describe`` described; constants are read-only views into ``mm`` from ``data_start``."""
    gm = meta["graph"]
    graph = Graph(gm["name"], inputs=gm["inputs"], outputs=gm["outputs"], metadata=_decode_value(gm["metadata"]))
    for t in gm["tensors"]:
        data = None
        if "data" in t:
            dtype = np.dtype(t["data"].get("dtype", t["dtype"]))
            count = t["data"]["nbytes"] // dtype.itemsize
            data = np.frombuffer(mm, dtype=dtype, count=count, offset=data_start + t["data"]["offset"])
            data = data.reshape(tuple(t["data"].get("shape", t["shape"])))
        quant = QuantParams(**t["quant"]) if t["quant"] else None
        shape = None if t["shape"] is None else tuple(t["shape"])
        graph.add_tensor(Tensor(t["name"], shape, t["dtype"], data, t["layout"], quant))
    graph.nodes = [Node(n["name"], n["op"], n["inputs"], n["outputs"], _decode_value(n["attrs"])) for n in gm["nodes"]]
    return RknnModel(graph, meta["target_platform"], meta["pre_compile"], meta["rknn_batch_size"],
                     meta["quantized_dtype"], meta["preprocessed"], _decode_value(meta["extra"]),
                     meta.get("provenance", {}))  # files written before provenance have none
