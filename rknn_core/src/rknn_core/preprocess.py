"""Put ``channel_mean_value``/``reorder_channel`` into the model as nodes after each input.

An input the source model already quantized (integer storage with QuantParams, e.g. a uint8
``.tflite``) takes the image as is: its own quantization ``real = (q - zero_point) * scale`` is the
normalization. A configured mean/scale must then say the same thing (mean = zero point, scale =
1 / scale) and is not applied a second time; a different one is an error naming both.
"""

from __future__ import annotations

import numpy as np

from rknn_core.config import Preprocess
from rknn_core.errors import RknnError
from rknn_core.ir import Graph, Node, Tensor
from rknn_core.quant.params import QTYPES

# a configured normalization of a quantized input may differ from the input's own by this many
# quantization steps at any stored value ('127.5 127.5 127.5 127.5' for zero point 127, scale 1/127.5)
QUANTIZED_INPUT_TOLERANCE_STEPS = 2


def channel_axis(tensor: Tensor) -> int | None:
    """The channel axis of a 4-D image input (by its layout), else None."""
    if tensor.shape is None or len(tensor.shape) != 4:
        return None
    return 3 if tensor.layout == "NHWC" else 1


def insert_preprocess(graph: Graph, settings: list[Preprocess]) -> dict[str, str]:
    """Insert Gather (reorder), Sub (mean) and Div (scale) nodes; returns input -> preprocessed tensor."""
    result: dict[str, str] = {}
    for name, pre in zip(list(graph.inputs), settings):
        tensor = graph.tensor(name)
        normalizes = pre.mean is not None or any(s != 1.0 for s in pre.scale)  # even '0 0 0 1' says something
        if pre.is_identity and not (normalizes and is_quantized_input(tensor)):
            continue
        axis = channel_axis(tensor)
        if axis is None:
            raise RknnError(f"input '{name}' has shape {tensor.shape}; channel_mean_value/reorder_channel "
                            f"apply to 4-D image inputs only")
        channels = tensor.shape[axis]
        if is_quantized_input(tensor):
            if normalizes:
                check_quantized_input(tensor, pre, channels)
            pre = Preprocess(reorder=pre.reorder)  # the input's own quantization normalizes it
            if pre.is_identity:
                continue
        bshape = [1] * 4
        bshape[axis] = channels
        current = name
        nodes: list[Node] = []
        if pre.reorder is not None and pre.reorder != sorted(pre.reorder):
            if len(pre.reorder) != channels:
                raise RknnError(f"reorder_channel has {len(pre.reorder)} entries but input '{name}' has {channels} channels")
            idx = graph.add_const(f"{name}_reorder", np.asarray(pre.reorder, np.int64))
            current = _append(graph, nodes, "Gather", [current, idx], tensor, {"axis": axis})
        if pre.mean is not None and any(pre.mean):
            mean = _per_channel(pre.mean, channels, name, "means")
            m = graph.add_const(f"{name}_mean", mean.reshape(bshape))
            current = _append(graph, nodes, "Sub", [current, m], tensor, {})
        if any(s != 1.0 for s in pre.scale):
            scale = _per_channel(pre.scale, channels, name, "scales")
            s = graph.add_const(f"{name}_scale", scale.reshape(bshape) if len(pre.scale) > 1 else scale[:1].reshape(()))
            current = _append(graph, nodes, "Div", [current, s], tensor, {})
        for node in graph.nodes:
            node.inputs = [current if i == name else i for i in node.inputs]
        graph.outputs = [current if o == name else o for o in graph.outputs]
        graph.nodes[:0] = nodes
        result[name] = current
    return result


def is_quantized_input(tensor: Tensor) -> bool:
    """An input stored as integers with the source model's own quantization."""
    return tensor.quant is not None and np.dtype(tensor.dtype).kind in "iu"


def check_quantized_input(tensor: Tensor, pre: Preprocess, channels: int) -> None:
    """The configured ``(q - mean) / scale`` must match ``(q - zero_point) * scale`` of the quantized
    input within ``QUANTIZED_INPUT_TOLERANCE_STEPS`` steps at every stored value (checked at both ends of
    the storage range: the difference is linear in ``q``)."""
    q = tensor.quant
    lo, hi, _ = QTYPES[q.qtype]
    step = _per_channel(list(q.scale), channels, tensor.name, "quantization scales").astype(np.float64)
    zero = _per_channel([float(z) for z in q.zero_point], channels, tensor.name, "zero points").astype(np.float64)
    mean = _per_channel(pre.mean or [0.0], channels, tensor.name, "means").astype(np.float64)
    scale = _per_channel(pre.scale, channels, tensor.name, "scales").astype(np.float64)
    worst = max(float(np.max(np.abs((v - mean) / scale - (v - zero) * step) / step)) for v in (lo, hi))
    if worst > QUANTIZED_INPUT_TOLERANCE_STEPS:
        own = f"{' '.join(f'{z:g}' for z in zero)} {_listed(1 / step, '.6g')}"
        given = f"{' '.join(f'{m:g}' for m in mean)} / {_listed(scale)}"
        raise RknnError(
            f"input '{tensor.name}' is already quantized ({tensor.dtype}: real = (q - {_listed(zero)}) * "
            f"{_listed(step, '.6g')}), so its normalization is mean {_listed(zero)}, scale "
            f"{_listed(1 / step, '.6g')} (channel_mean_value '{own}'); the config gives mean / scale {given}, "
            f"which differs by up to {worst:.1f} quantization steps. Remove channel_mean_value (or "
            f"mean_values/std_values) or make it match the model's own quantization")


def _listed(values: np.ndarray, fmt: str = "g") -> str:
    shown = values if np.ptp(values) else values[:1]
    return " ".join(format(float(v), fmt) for v in shown)


def _per_channel(values: list[float], channels: int, name: str, what: str) -> np.ndarray:
    if len(values) == 1:
        values = values * channels
    if len(values) < channels:
        raise RknnError(f"the normalization of input '{name}' gives {len(values)} {what} but the input has "
                        f"{channels} channels (channel_mean_value, or mean_values/std_values)")
    return np.asarray(values[:channels], np.float32)


def _append(graph: Graph, nodes: list[Node], op: str, inputs: list[str], like: Tensor, attrs: dict) -> str:
    out = graph.unique_name(f"{like.name}_pre_{op.lower()}")
    graph.add_tensor(Tensor(out, like.shape, "float32", layout=like.layout))
    nodes.append(Node(out, op, inputs, [out], attrs))
    return out
