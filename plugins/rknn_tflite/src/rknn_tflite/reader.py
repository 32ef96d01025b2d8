"""Read a .tflite flatbuffer (subgraph 0) into plain records: tensors with data and quantization, ops."""

from __future__ import annotations

import math
import os

import attrs
import numpy as np
import tflite

from rknn_core.errors import RknnError
from rknn_core.ir import QuantParams
from rknn_core.validate import MAX_ELEMENTS
from rknn_tflite.densify import densify

DTYPES = {
    tflite.TensorType.FLOAT32: "float32", tflite.TensorType.FLOAT16: "float16", tflite.TensorType.FLOAT64: "float64",
    tflite.TensorType.INT32: "int32", tflite.TensorType.UINT8: "uint8", tflite.TensorType.INT64: "int64",
    tflite.TensorType.INT8: "int8", tflite.TensorType.INT16: "int16", tflite.TensorType.BOOL: "bool",
    tflite.TensorType.UINT32: "uint32", tflite.TensorType.UINT16: "uint16",
}
QTYPES = {"uint8": "u8", "int8": "i8", "int16": "i16", "int32": "i32"}
OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
_OPTION_NAMES = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")}


@attrs.define
class TfTensor:
    """One tensor of the subgraph; ``data`` is set for constants (sparse ones already densified)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    data: np.ndarray | None = None
    quant: QuantParams | None = None


@attrs.define
class TfOp:
    """One operator: its converter key (the builtin name, ``custom:<custom_code>`` for a CUSTOM op), tensor
    indices (-1 = absent), the decoded builtin options table and a custom op's raw option bytes (flexbuffers)."""

    index: int
    code: str
    inputs: list[int]
    outputs: list[int]
    options: object | None = None
    custom_options: bytes | None = None


@attrs.define
class TfModel:
    name: str
    tensors: list[TfTensor]
    ops: list[TfOp]
    inputs: list[int]
    outputs: list[int]


def _quant(t: tflite.Tensor, dtype: str) -> QuantParams | None:
    q = t.Quantization()
    if q is None or q.ScaleLength() == 0 or dtype not in QTYPES:
        return None
    scale = q.ScaleAsNumpy().astype(np.float64)
    zero = q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros(len(scale), np.int64)
    zero = np.broadcast_to(np.asarray(zero, np.int64), scale.shape)
    axis = int(q.QuantizedDimension()) if len(scale) > 1 else None
    return QuantParams(QTYPES[dtype], tuple(scale), tuple(zero), axis=axis, method="channel" if axis is not None else "layer")


def _buffer(model: tflite.Model, raw: bytes, index: int) -> bytes | None:
    buf = model.Buffers(index)
    if buf is None:
        return None
    if buf.Offset() > 1:  # large models keep buffers after the flatbuffer
        return raw[buf.Offset(): buf.Offset() + buf.Size()]
    if buf.DataLength() == 0:
        return None
    return buf.DataAsNumpy().tobytes()


def _options(op: tflite.Operator):
    kind = op.BuiltinOptionsType()
    if not kind:
        return None
    cls = getattr(tflite, _OPTION_NAMES.get(kind, ""), None)
    table = op.BuiltinOptions()
    if cls is None or table is None:
        return None
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    return obj


def _custom_options(op: tflite.Operator, raw: bytes) -> bytes | None:
    """A custom op's option bytes (large models keep them after the flatbuffer), or None."""
    if op.LargeCustomOptionsOffset() > 1:
        return raw[op.LargeCustomOptionsOffset(): op.LargeCustomOptionsOffset() + op.LargeCustomOptionsSize()]
    return op.CustomOptionsAsNumpy().tobytes() if op.CustomOptionsLength() else None


def _tensor(model: tflite.Model, raw: bytes, t: tflite.Tensor, index: int) -> TfTensor:
    name = (t.Name() or b"").decode("utf-8", "replace") or f"tensor_{index}"
    dtype = DTYPES.get(t.Type())
    if dtype is None:
        raise RknnError(f"tensor '{name}' has type {t.Type()} which the toolkit does not support")
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    if any(d < -1 for d in shape) or math.prod(d for d in shape if d > 0) > MAX_ELEMENTS:
        raise RknnError(f"tensor '{name}' has shape {list(shape)}: sizes must be >= 0 (-1: dynamic) and hold at "
                        f"most {MAX_ELEMENTS} elements")
    data = _buffer(model, raw, t.Buffer())
    array = None
    if data is not None:
        flat = np.frombuffer(data, dtype=np.dtype(dtype))
        if t.Sparsity() is not None:
            array = densify(flat, t.Sparsity(), shape)
        else:
            if flat.size != int(np.prod(shape, dtype=np.int64)):
                raise RknnError(f"constant '{name}' holds {flat.size} values for shape {shape} (truncated file?)")
            array = flat.reshape(shape).copy()
    return TfTensor(index, name, shape, dtype, array, _quant(t, dtype))


def read_model(path: str) -> TfModel:
    """Parse ``path``; raises RknnError for a missing, non-TFLite or damaged file."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise RknnError(f"TFLite model file '{path}' does not exist")
    raw = open(path, "rb").read()
    if len(raw) < 8 or raw[4:8] != b"TFL3":
        raise RknnError(f"'{path}' is not a TFLite model (no 'TFL3' flatbuffer identifier)")
    try:
        model = tflite.Model.GetRootAsModel(raw, 0)
        if model.SubgraphsLength() < 1:
            raise RknnError(f"'{path}' holds no subgraph")
        sg = model.Subgraphs(0)
        tensors = [_tensor(model, raw, sg.Tensors(i), i) for i in range(sg.TensorsLength())]
        ops = []
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            oc = model.OperatorCodes(op.OpcodeIndex())
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            name = OP_NAMES.get(code, f"BUILTIN_{code}")
            if name == "CUSTOM":
                name = "custom:" + (oc.CustomCode() or b"?").decode("utf-8", "replace")
            ins = [int(v) for v in op.InputsAsNumpy()] if op.InputsLength() else []
            outs = [int(v) for v in op.OutputsAsNumpy()] if op.OutputsLength() else []
            ops.append(TfOp(i, name, ins, outs, _options(op), _custom_options(op, raw)))
        inputs = [int(v) for v in sg.InputsAsNumpy()] if sg.InputsLength() else []
        outputs = [int(v) for v in sg.OutputsAsNumpy()] if sg.OutputsLength() else []
    except RknnError:
        raise
    except Exception as exc:  # a damaged flatbuffer fails with IndexError, struct.error ...
        raise RknnError(f"'{path}' is a damaged TFLite model: {type(exc).__name__}: {exc}") from None
    _check_indices(path, len(tensors), ops, inputs, outputs)
    name = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    return TfModel(name, tensors, ops, inputs, outputs)


def _check_indices(path: str, count: int, ops: list[TfOp], inputs: list[int], outputs: list[int]) -> None:
    """Every tensor index an operator or the subgraph names is one of its ``count`` tensors (-1: absent input)."""
    if not inputs or not outputs:
        raise RknnError(f"'{path}' is a damaged TFLite model: its subgraph lists no inputs or no outputs")
    named = [("subgraph input", i) for i in inputs] + [("subgraph output", i) for i in outputs]
    for op in ops:
        named += [(f"operator {op.index} ({op.code}) input", i) for i in op.inputs if i != -1]
        named += [(f"operator {op.index} ({op.code}) output", i) for i in op.outputs]
    for what, index in named:
        if not 0 <= index < count:
            raise RknnError(f"'{path}' is a damaged TFLite model: {what} names tensor {index}, but the model has "
                            f"tensors 0..{count - 1}")
