"""Fold a constant ``Pad`` into the Conv, AveragePool or MaxPool that reads it.

TensorFlow exports (tf2onnx, Keras ``ZeroPadding2D``) put an explicit ``Pad`` before every strided or
large-kernel convolution; the convolution reads the padded plane through its own ``pads`` at no cost.
A reader takes the Pad's spatial widths into its own ``pads`` when that computes the same values:

- Conv: a zero pad (also for quantized graphs: a zero pad is the zero point, as the conv's own).
- AveragePool: a zero pad, and the pool counts the padded cells (``count_include_pad=1`` already, or no
  own pads, since the explicit pad's cells are real input); not with ``ceil_mode`` (its last window
  depends on where the padding starts).
- MaxPool: a pad of -inf only (what the pool's own padding is).

Only non-negative constant pads of the spatial axes with ``auto_pad`` NOTSET/VALID qualify. Each
qualifying reader is rewired to the Pad's input; the Pad goes when nothing else reads it.
"""

from __future__ import annotations

import numpy as np

from rknn_core.ir import Graph, Node
from rknn_core.records import PassSpec

READERS = ("Conv", "AveragePool", "MaxPool")


def spatial_widths(graph: Graph, pad: Node) -> tuple[list[int], list[int]] | None:
    """The Pad's (begin, end) widths of the spatial axes of an N,C,spatial... tensor, or None when it pads
    the batch or channel axes, crops, uses axes, is not constant or not in constant mode."""
    mode = pad.attrs.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode != "constant" or len(pad.inputs) < 2 or (len(pad.inputs) > 3 and pad.inputs[3]):
        return None
    pads = graph.tensors[pad.inputs[1]].data
    shape = graph.tensors[pad.inputs[0]].shape
    if pads is None or shape is None or len(shape) < 3:
        return None
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    rank = len(shape)
    if len(pads) != 2 * rank or min(pads) < 0 or any(pads[a] or pads[rank + a] for a in (0, 1)):
        return None
    return pads[2:rank], pads[rank + 2:]


def pad_value(graph: Graph, pad: Node) -> float | None:
    """The constant the Pad fills with (0 when absent), or None when it is not a known scalar."""
    if len(pad.inputs) < 3 or not pad.inputs[2]:
        return 0.0
    data = graph.tensors[pad.inputs[2]].data
    if data is None or np.asarray(data).size > 1:
        return None
    return float(np.asarray(data).reshape(-1)[0]) if np.asarray(data).size else 0.0


def _own_pads(attrs: dict, rank: int) -> list[int] | None:
    auto_pad = attrs.get("auto_pad", "NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad == "VALID":
        return [0] * (2 * rank)
    if auto_pad != "NOTSET":
        return None
    return [int(p) for p in (attrs.get("pads") or [0] * (2 * rank))]


def folded_attrs(reader: Node, value: float, begin: list[int], end: list[int]) -> dict | None:
    """``reader``'s attributes with the Pad folded in, or None when the result would differ."""
    rank = len(begin)
    own = _own_pads(reader.attrs, rank)
    if own is None or len(own) != 2 * rank:
        return None
    attrs = {k: v for k, v in reader.attrs.items() if k != "auto_pad"}
    if reader.op == "Conv" and value != 0.0:
        return None
    if reader.op == "MaxPool" and not (value == -np.inf and not attrs.get("_indices")):
        return None  # the Indices output would count positions of the unpadded input
    if reader.op == "AveragePool":
        if value != 0.0 or int(attrs.get("ceil_mode", 0)):
            return None
        if any(own) and not int(attrs.get("count_include_pad", 0)):
            return None
        attrs["count_include_pad"] = 1
    attrs["pads"] = [b + p for b, p in zip(begin, own[:rank])] + [e + p for e, p in zip(end, own[rank:])]
    return attrs


def run(graph: Graph, ctx) -> bool:
    changed = False
    consumers = graph.consumers()
    for pad in [n for n in graph.nodes if n.op == "Pad"]:
        widths = spatial_widths(graph, pad)
        value = pad_value(graph, pad)
        if widths is None or value is None:
            continue
        for reader in consumers.get(pad.outputs[0], []):
            if reader.op not in READERS or reader.inputs[0] != pad.outputs[0] or pad.outputs[0] in reader.inputs[1:]:
                continue
            attrs = folded_attrs(reader, value, *widths)
            if attrs is None:
                continue
            reader.attrs = attrs
            reader.inputs = [pad.inputs[0], *reader.inputs[1:]]
            changed = True
    return changed


PASS = PassSpec("fold_pad", run, min_level=1, changes_numerics=False,
                after=("fold_constants", "remove_identity", "eliminate_transposes"),
                doc="A constant Pad into the pads of the Conv / AveragePool / MaxPool reading it.")
