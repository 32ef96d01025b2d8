"""Read a frozen GraphDef: nodes, attributes and constant tensors as numpy, without TensorFlow."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.validate import MAX_ELEMENTS
from rknn_tf.proto import tf_graph_pb2 as pb

DTYPES = {
    pb.DT_FLOAT: np.float32, pb.DT_DOUBLE: np.float64, pb.DT_INT32: np.int32, pb.DT_UINT8: np.uint8,
    pb.DT_INT16: np.int16, pb.DT_INT8: np.int8, pb.DT_INT64: np.int64, pb.DT_BOOL: np.bool_,
    pb.DT_UINT16: np.uint16, pb.DT_HALF: np.float16, pb.DT_UINT32: np.uint32, pb.DT_UINT64: np.uint64,
    pb.DT_QINT8: np.int8, pb.DT_QUINT8: np.uint8, pb.DT_QINT32: np.int32,
}
_VALUE_FIELDS = {  # where a TensorProto without tensor_content keeps its values
    np.float32: "float_val", np.float64: "double_val", np.int32: "int_val", np.uint8: "int_val",
    np.int16: "int_val", np.int8: "int_val", np.uint16: "int_val", np.int64: "int64_val",
    np.bool_: "bool_val", np.float16: "half_val", np.uint32: "uint32_val", np.uint64: "uint64_val",
}


def read_graphdef(path: str) -> pb.GraphDef:
    """Parse a frozen .pb; clear errors for a missing, unreadable or empty file."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise RknnError(f"TensorFlow model file '{path}' does not exist")
    graph = pb.GraphDef()
    try:
        graph.ParseFromString(open(path, "rb").read())
    except Exception as exc:
        raise RknnError(f"'{path}' is not a readable frozen TensorFlow GraphDef (.pb): {type(exc).__name__}: {exc}") from None
    if not graph.node or not all(n.op for n in graph.node):
        raise RknnError(f"'{path}' holds no TensorFlow graph nodes (is it a SavedModel, a checkpoint or "
                        f"another format? load_tensorflow takes a frozen GraphDef .pb)")
    return graph


def np_dtype(dt: int, where: str) -> np.dtype:
    try:
        return np.dtype(DTYPES[dt])
    except KeyError:
        name = pb.DataType.Name(dt) if dt in pb.DataType.values() else str(dt)
        raise RknnError(f"{where}: TensorFlow data type {name} is not supported") from None


def shape_of(shape: pb.TensorShapeProto) -> tuple[int, ...] | None:
    """A static shape (-1 for unknown dimensions), None for an unknown rank."""
    return None if shape.unknown_rank else tuple(int(d.size) for d in shape.dim)


def tensor_to_numpy(t: pb.TensorProto, where: str = "tensor") -> np.ndarray:
    """The values of a TensorProto: raw content or the typed value list (a single value broadcasts)."""
    dtype = np_dtype(t.dtype, where)
    shape = shape_of(t.tensor_shape) or ()
    size = math.prod(shape)
    if any(d < 0 for d in shape) or size > MAX_ELEMENTS:
        raise RknnError(f"{where}: a constant tensor's shape {list(shape)} must hold sizes >= 0 and at most "
                        f"{MAX_ELEMENTS} elements")
    if t.tensor_content:
        if len(t.tensor_content) != size * dtype.itemsize:
            raise RknnError(f"{where}: a constant tensor of shape {list(shape)} {dtype} needs {size * dtype.itemsize} "
                            f"bytes but holds {len(t.tensor_content)} (the file is damaged)")
        return np.frombuffer(t.tensor_content, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    values = list(getattr(t, _VALUE_FIELDS[dtype.type]))
    if dtype == np.float16:
        flat = np.asarray(values, dtype=np.uint16).view(np.float16)
    else:
        flat = np.asarray(values, dtype=dtype)
    if flat.size == size:
        return flat.reshape(shape)
    if flat.size == 0:
        return np.zeros(shape, dtype)
    if flat.size > size:
        raise RknnError(f"{where}: a constant tensor of shape {list(shape)} holds {flat.size} values (the file is damaged)")
    # TensorFlow stores repeated trailing values once: pad with the last value
    return np.concatenate([flat, np.full(size - flat.size, flat[-1], dtype)]).reshape(shape)


def attr_value(a: pb.AttrValue) -> Any:
    """A plain-Python form of an attribute value."""
    kind = a.WhichOneof("value")
    if kind == "s":
        return a.s.decode("utf-8", "replace")
    if kind == "tensor":
        return tensor_to_numpy(a.tensor)
    if kind == "shape":
        return shape_of(a.shape)
    if kind == "list":
        lst = a.list
        for field in ("i", "f", "s", "b", "type"):
            values = list(getattr(lst, field))
            if values:
                return [v.decode("utf-8", "replace") for v in values] if field == "s" else values
        if lst.shape:
            return [shape_of(s) for s in lst.shape]
        return []
    if kind is None:
        return None
    return getattr(a, kind)


def attrs_of(node: pb.NodeDef) -> dict[str, Any]:
    return {k: attr_value(v) for k, v in node.attr.items()}


def split_input(name: str) -> tuple[str, int]:
    """``"node:1"`` -> ``("node", 1)``; ``"node"`` -> ``("node", 0)``."""
    base, sep, index = name.rpartition(":")
    if sep and index.isdigit():
        return base, int(index)
    return name, 0


def tensor_key(name: str) -> str:
    """The canonical name of a node output: ``node`` for output 0, ``node:i`` otherwise."""
    node, index = split_input(name.lstrip("^"))
    return node if index == 0 else f"{node}:{index}"
