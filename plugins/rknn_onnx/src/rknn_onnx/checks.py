"""Checks of what an .onnx file declares before the importer uses it: element types and tensor data.

A damaged or hand-edited file (an unknown element type, initializer data shorter than its dims, absurd
dims) is refused here with the tensor's name, instead of failing inside onnx's numpy conversion.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

from rknn_core.errors import RknnError
from rknn_core.validate import MAX_ELEMENTS


def np_dtype(elem_type: int, where: str) -> str:
    """The numpy dtype name of an ONNX element type; unknown and non-numeric types are refused."""
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        dtype = None
    if dtype is None or elem_type == onnx.TensorProto.UNDEFINED or dtype.kind not in "biuf":
        name = onnx.TensorProto.DataType.Name(elem_type) if elem_type in onnx.TensorProto.DataType.values() else elem_type
        raise RknnError(f"{where} has element type {name}, which is not a real numeric tensor type")
    return str(dtype)


def tensor_array(tensor: onnx.TensorProto, where: str) -> np.ndarray:
    """The data of an initializer or a Constant's value, checked against its declared type and dims."""
    np_dtype(tensor.data_type, where)
    dims = list(tensor.dims)
    if any(d < 0 for d in dims) or math.prod(dims) > MAX_ELEMENTS:
        raise RknnError(f"{where} declares dims {dims}: sizes must be >= 0 and hold at most {MAX_ELEMENTS} elements")
    try:
        data = numpy_helper.to_array(tensor)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise RknnError(f"{where}: its data does not match its declared type and dims {dims} "
                        f"(the file is damaged): {exc}") from None
    if data.size != math.prod(dims):
        raise RknnError(f"{where} holds {data.size} values but its dims {dims} need {math.prod(dims)}")
    return data


def check_names(proto: onnx.ModelProto, model: str) -> None:
    """Every tensor and node name is text (protobuf hands invalid UTF-8 back as bytes)."""
    g = proto.graph
    named = [("graph input", v.name) for v in g.input] + [("graph output", v.name) for v in g.output]
    named += [("initializer", t.name) for t in g.initializer]
    for index, node in enumerate(g.node):
        where = f"node {index} ({node.op_type!r})"
        named += [(where, node.name), (f"{where} op type", node.op_type), (f"{where} domain", node.domain)]
        named += [(f"{where} input", n) for n in node.input] + [(f"{where} output", n) for n in node.output]
    for what, name in named:
        if not isinstance(name, str):
            raise RknnError(f"'{model}' is damaged: the name of {what}, {name!r}, is not valid UTF-8 text")
