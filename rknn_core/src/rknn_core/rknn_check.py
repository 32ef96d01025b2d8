"""Checks of a ``.rknn`` file's description before the model is accepted by ``load_rknn``.

A file whose description was edited (and its checksum recomputed) must fail at load with a clear
message, not later at inference. ``check_description`` checks the JSON itself (field types, constant
blobs inside the data section, sizes within bounds); ``check_model`` checks the graph it describes
(every tensor produced once, every input defined, ops installed, attributes of plain types, shapes
consistent after inference).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.model import RknnModel
from rknn_core.plugins import Registry
from rknn_core.validate import MAX_BATCH, MAX_ELEMENTS, is_int
from rknn_core.verify import verify_graph

MAX_TENSOR_RANK = 8
QTYPES = ("u8", "i8", "i16", "i32")
QUANT_FIELDS = {"qtype", "scale", "zero_point", "axis", "scheme", "min_value", "max_value", "method"}
LAYOUTS = (None, "NCHW", "NHWC")


def _bad(where: str, what: str, value: Any) -> RknnError:
    shown = repr(value)
    return RknnError(f"{where}: {what}, got {shown if len(shown) <= 60 else shown[:57] + '...'}")


def _dtype(value: Any, where: str) -> np.dtype:
    """A real numeric dtype (bool, int, uint, float) named by a string."""
    try:
        dtype = np.dtype(value) if isinstance(value, str) else None
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in "biuf":
        raise _bad(where, "dtype must name a numeric type such as 'float32'", value)
    return dtype


def _shape(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or len(value) > MAX_TENSOR_RANK or not all(is_int(d) and d >= 0 for d in value):
        raise _bad(where, f"shape must be a list of at most {MAX_TENSOR_RANK} sizes >= 0", value)
    if math.prod(value) > MAX_ELEMENTS:
        raise _bad(where, f"shape holds more than {MAX_ELEMENTS} elements", value)
    return value


def _names(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(where, "must be a list of tensor names", value)
    return value


def _check_blob(blob: Any, where: str, data_len: int) -> None:
    if not isinstance(blob, dict):
        raise _bad(where, "data must be an object", blob)
    offset, nbytes = blob.get("offset"), blob.get("nbytes")
    if not (is_int(offset) and is_int(nbytes) and 0 <= offset and 0 <= nbytes and offset + nbytes <= data_len):
        raise RknnError(f"{where}: its constant lies outside the file's data section (offset {offset!r}, "
                        f"{nbytes!r} bytes, data section {data_len} bytes)")
    dtype = _dtype(blob.get("dtype"), where)
    shape = _shape(blob.get("shape"), where)
    if math.prod(shape) * dtype.itemsize != nbytes:
        raise RknnError(f"{where}: its constant of shape {shape} {dtype} needs {math.prod(shape) * dtype.itemsize} "
                        f"bytes, not {nbytes}")


def _check_quant(quant: Any, where: str) -> None:
    if quant is None:
        return
    if not isinstance(quant, dict) or not set(quant) <= QUANT_FIELDS or quant.get("qtype") not in QTYPES:
        raise _bad(where, f"quant must be an object with qtype one of {', '.join(QTYPES)}", quant)
    scale, zero = quant.get("scale"), quant.get("zero_point", [0])
    if (not isinstance(scale, list) or not scale
            or not all(isinstance(s, (int, float)) and math.isfinite(s) and s > 0 for s in scale)):
        raise _bad(where, "quant scale must be a list of finite positive numbers", scale)
    if not isinstance(zero, list) or not zero or not all(is_int(z) for z in zero):
        raise _bad(where, "quant zero_point must be a list of integers", zero)
    if quant.get("axis") is not None and not is_int(quant["axis"]):
        raise _bad(where, "quant axis must be an integer or null", quant["axis"])


def _check_value(value: Any, where: str) -> None:
    """An attribute value: a number (not NaN), a string, a bool, null, a list of them or an encoded array."""
    if isinstance(value, float) and math.isnan(value):
        raise _bad(where, "must not be NaN", value)
    if isinstance(value, list):
        for item in value:
            _check_value(item, where)
    elif isinstance(value, dict) and "__ndarray__" in value:
        if set(value) != {"__ndarray__", "dtype", "shape"}:
            raise _bad(where, "an encoded array has exactly the keys __ndarray__, dtype and shape", sorted(value))
        _dtype(value["dtype"], where)
        shape = _shape(value["shape"], where)
        flat = _flatten(value["__ndarray__"])
        if len(flat) != math.prod(shape) or not all(isinstance(v, (int, float)) for v in flat):
            raise _bad(where, f"array must hold {math.prod(shape)} numbers", value["__ndarray__"])
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_value(item, f"{where}['{key}']")
    elif value is not None and not isinstance(value, (int, float, str, bool)):
        raise _bad(where, "must be a number, string, list or encoded array", value)


def _flatten(value: Any) -> list:
    if isinstance(value, list):
        return [v for item in value for v in _flatten(item)]
    return [value]


def check_description(meta: Any, data_len: int) -> None:
    """Check the JSON description's structure; raises RknnError naming the field, tensor or node."""
    if not isinstance(meta, dict) or not isinstance(meta.get("graph"), dict):
        raise RknnError("the description has no 'graph' object")
    graph = meta["graph"]
    if not isinstance(graph.get("name"), str) or not isinstance(graph.get("metadata"), dict):
        raise RknnError("the graph needs a name (string) and metadata (object)")
    _names(graph.get("inputs"), "graph inputs")
    _names(graph.get("outputs"), "graph outputs")
    tensors = graph.get("tensors")
    if not isinstance(tensors, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in tensors):
        raise _bad("graph tensors", "must be a list of objects with a name", tensors)
    seen: set[str] = set()
    for t in tensors:
        where = f"tensor '{t['name']}'"
        if t["name"] in seen:
            raise RknnError(f"{where} is described twice")
        seen.add(t["name"])
        if t.get("shape") is not None:
            _shape(t["shape"], where)
        _dtype(t.get("dtype"), where)
        if t.get("layout") not in LAYOUTS:
            raise _bad(where, "layout must be NCHW, NHWC or null", t.get("layout"))
        _check_quant(t.get("quant"), where)
        if "data" in t:
            _check_blob(t["data"], where, data_len)
    nodes = graph.get("nodes")
    if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
        raise _bad("graph nodes", "must be a list of objects", nodes)
    for index, n in enumerate(nodes):
        where = f"node {index} ('{n.get('name')}')"
        if not isinstance(n.get("name"), str) or not isinstance(n.get("op"), str) or not isinstance(n.get("attrs"), dict):
            raise RknnError(f"{where} needs a name, an op (strings) and attrs (an object)")
        _names(n.get("inputs"), f"{where} inputs")
        _names(n.get("outputs"), f"{where} outputs")
        for key, value in n["attrs"].items():
            _check_value(value, f"{where} attribute '{key}'")
    _check_fields(meta)


def _check_fields(meta: dict) -> None:
    platforms = meta.get("target_platform")
    if not isinstance(platforms, list) or not platforms or not all(isinstance(p, str) for p in platforms):
        raise _bad("target_platform", "must be a list of platform names", platforms)
    if not isinstance(meta.get("pre_compile"), bool):
        raise _bad("pre_compile", "must be true or false", meta.get("pre_compile"))
    batch = meta.get("rknn_batch_size")
    if not is_int(batch) or not 1 <= batch <= MAX_BATCH:
        raise _bad("rknn_batch_size", f"must be an integer from 1 to {MAX_BATCH}", batch)
    if meta.get("quantized_dtype") is not None and not isinstance(meta["quantized_dtype"], str):
        raise _bad("quantized_dtype", "must be a string or null", meta["quantized_dtype"])
    pre = meta.get("preprocessed")
    if not isinstance(pre, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in pre.items()):
        raise _bad("preprocessed", "must map input names to tensor names", pre)
    if not isinstance(meta.get("extra", {}), dict):
        raise _bad("extra", "must be an object", meta.get("extra"))
    _check_provenance(meta.get("provenance", {}))


def _check_provenance(provenance: Any) -> None:
    """``{kind: {name: {"plugin": ..., "distribution": ..., "version": ...}}}`` (``rknn_core.provenance``)."""
    if not isinstance(provenance, dict) or not all(isinstance(entries, dict) for entries in provenance.values()):
        raise _bad("provenance", "must map kinds to objects of suppliers", provenance)
    for kind, entries in provenance.items():
        for name, entry in entries.items():
            if not isinstance(entry, dict) or not all(
                    entry.get(key) is None or isinstance(entry[key], str) for key in ("plugin", "distribution", "version")):
                raise _bad(f"provenance of {kind} '{name}'", "must be an object naming plugin, distribution and version",
                           entry)


def check_model(model: RknnModel, registry: Registry) -> None:
    """The described graph is well formed for ``registry``'s ops (``verify.verify_graph`` with shapes)
    and the model's own fields refer to it."""
    graph = model.graph
    if not graph.inputs or not graph.outputs:
        raise RknnError("the model has no inputs or no outputs")
    verify_graph(graph, registry, check_shapes=True)
    folded = graph.metadata.get("folded_preprocess", {})  # normalizations folded into the first layer
    for name, tensor in model.preprocessed.items():
        if name not in graph.inputs or (tensor not in graph.tensors and folded.get(tensor, {}).get("input") != name):
            raise RknnError(f"preprocessed names input '{name}' -> tensor '{tensor}', which the graph does not have")
    uids = model.extra.get("sync_uids")
    if uids is not None and (not isinstance(uids, list)
                             or not all(is_int(u) and 0 <= u < len(graph.nodes) for u in uids)):
        raise _bad("sync_uids", f"must be layer ids from 0 to {len(graph.nodes) - 1}", uids)
