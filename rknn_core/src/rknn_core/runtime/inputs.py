"""Turn the user's ``inference`` arguments into the model's input tensors."""

from __future__ import annotations

import functools

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import Tensor
from rknn_core.model import RknnModel
from rknn_core.ops._quant import channels_last_planes
from rknn_core.quant.params import QTYPES

DATA_TYPES = ("float32", "float16", "int8", "uint8", "int16")
DATA_FORMATS = ("nhwc", "nchw")
NUMERIC_KINDS = "biufc"  # numpy dtype kinds of bool and numbers
BYTE_DTYPES = (np.dtype(np.uint8), np.dtype(np.int8))
PICTURE_CHANNELS = 4  # at most this many channels last: a picture (gray, RGB, RGBA)


def prepare_inputs(model: RknnModel, inputs: list, data_type: str = "uint8", data_format: str = "nhwc",
                   inputs_pass_through: list | None = None, batch: int | None = None) -> dict[str, np.ndarray]:
    """Feeds for the executor: checks count, dtype and shape; NHWC data goes to NCHW inputs transposed.

    A pass-through input is fed after the in-model preprocessing, exactly as given. ``batch``: the
    samples expected per input (default the model's ``rknn_batch_size``; calibration feeds single samples).
    """
    batch = model.rknn_batch_size if batch is None else batch
    graph = model.graph
    if data_type not in DATA_TYPES:
        raise RknnError(f"inference data_type '{data_type}' is unknown; use one of {', '.join(DATA_TYPES)}")
    if str(data_format).lower() not in DATA_FORMATS:
        raise RknnError(f"inference data_format '{data_format}' is unknown; use 'nhwc' or 'nchw'")
    if not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    if len(inputs) != len(graph.inputs):
        raise RknnError(f"the model has {len(graph.inputs)} input(s) ({', '.join(graph.inputs)}) "
                        f"but inference got {len(inputs)}")
    passes = list(inputs_pass_through or [0] * len(inputs))
    if len(passes) != len(inputs):
        raise RknnError(f"inputs_pass_through has {len(passes)} entries for {len(inputs)} inputs")
    feeds = {}
    for index, (name, value, through) in enumerate(zip(graph.inputs, inputs, passes)):
        tensor = graph.tensor(name)
        arr = np.asarray(value)
        if arr.dtype.kind not in NUMERIC_KINDS:
            raise RknnError(f"input {index} ('{name}') is not a numeric array (got dtype {arr.dtype})")
        if np.dtype(tensor.dtype).kind == "f":
            arr = arr.astype(np.dtype(data_type), copy=False)  # data_type says what the image data is
        shape = tuple(tensor.shape)
        if tensor.layout and len(shape) == 4 and arr.ndim in (3, 4):
            arr = _to_model_layout(arr, str(data_format).lower(), tensor.layout)
        expected = (shape[0] * batch, *shape[1:]) if shape else ()
        if arr.shape != expected:
            if arr.size == int(np.prod(expected)) and arr.ndim != len(expected):
                arr = arr.reshape(expected)
            else:
                raise RknnError(f"input {index} ('{name}') has shape {arr.shape}; the model expects {expected}")
        target = model.preprocessed.get(name, name) if through else name
        # (a preprocessed tensor folded into the first layer is no graph tensor: the executor maps it back)
        feeds[target] = _stored(arr, graph.tensors.get(target, tensor), index, name)
    return feeds


def _codes_as_given(arr: np.ndarray, tensor: Tensor) -> bool:
    """Whether integer data are already the quantized input's storage codes: its grid is the identity
    (scale 1, zero point 0) in the data's own type, as for uint8 pictures fed to a u8 input."""
    q = tensor.quant
    return (q is not None and arr.dtype.kind in "iu" and q.qtype in QTYPES and len(q.scale) == 1
            and q.scale[0] == 1.0 and q.zero_point[0] == 0 and np.dtype(QTYPES[q.qtype][2]) == arr.dtype)


def _stored(arr: np.ndarray, tensor: Tensor, index: int, name: str) -> np.ndarray:
    """``arr`` in the input's storage type (integer data that are its quantization codes as they are); for
    an already-quantized integer input, values outside its range are refused rather than wrapped (uint8
    pictures fed to an int8 input)."""
    if _codes_as_given(arr, tensor):
        return arr
    kind, dtype = np.dtype(tensor.dtype), tensor.dtype
    if tensor.quant is not None and kind.kind in "iu" and arr.dtype != kind and arr.size:
        info, low, high = np.iinfo(kind), arr.min(), arr.max()
        if low < info.min or high > info.max or (arr.dtype.kind == "f" and not np.all(arr == np.round(arr))):
            raise RknnError(f"input {index} ('{name}') is {dtype} (already quantized) but the data given holds "
                            f"{arr.dtype} values from {low} to {high}; give {dtype} values {info.min}..{info.max} "
                            f"(the picture as the model's own quantization expects it)")
    if arr.dtype in BYTE_DTYPES and kind in (np.float32, arr.dtype) and arr.ndim == 4 and not arr.flags.c_contiguous \
            and arr.transpose(0, 2, 3, 1).flags.c_contiguous:  # an NHWC picture for NCHW: planes in one pass
        return channels_last_planes(arr.transpose(0, 2, 3, 1), _byte_tables(arr.dtype, kind, arr.shape[1]))
    if arr.dtype in BYTE_DTYPES and kind == np.float32 and arr.ndim == 4 and arr.flags.c_contiguous \
            and tensor.layout == "NHWC" and arr.shape[3] <= PICTURE_CHANNELS:
        # an NHWC picture for an NHWC float input: float32 planes in one pass, viewed NHWC, so that the Transpose
        # to NCHW of a Keras export is free and per-channel arithmetic runs along rows
        return channels_last_planes(arr, _byte_tables(arr.dtype, kind, arr.shape[3])).transpose(0, 2, 3, 1)
    return arr.astype(kind, copy=False)


@functools.lru_cache(maxsize=64)
def _byte_tables(data: np.dtype, kind: np.dtype, channels: int) -> np.ndarray:
    """``channels`` tables of each byte's value read as ``data`` (uint8 or int8) in ``kind`` (float32, or the same
    bytes): what ``channels_last_planes`` looks a picture's bytes up in."""
    values = np.arange(256, dtype=np.uint8).view(data).astype(kind)
    tables = np.ascontiguousarray(np.broadcast_to(values, (channels, 256)))
    tables.flags.writeable = False
    return tables


def _to_model_layout(arr: np.ndarray, data_format: str, layout: str) -> np.ndarray:
    if arr.ndim == 3:
        arr = arr[None]
    if data_format == "nhwc" and layout == "NCHW":
        return arr.transpose(0, 3, 1, 2)
    if data_format == "nchw" and layout == "NHWC":
        return arr.transpose(0, 2, 3, 1)
    return arr
