"""Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization", section 4.1).

For two consecutive convolutions ``y = W2 f(W1 x + b1) + b2`` with a positively homogeneous ``f``
(none, ReLU, LeakyReLU: ``f(x / s) = f(x) / s`` for ``s > 0``), dividing output channel ``c`` of
``W1``/``b1`` by ``s_c`` and multiplying input channel ``c`` of ``W2`` by ``s_c`` leaves the
function unchanged. Choosing ``s_c = sqrt(r1_c / r2_c)`` (``r`` the channel's weight range) gives
both layers' channels the same range ``sqrt(r1_c r2_c)``, so one per-tensor scale fits every
channel: essential for depthwise convolutions, whose channels' ranges differ by orders of magnitude.

ReLU6 (``Clip(0, 6)``) is not homogeneous: ``clip(x / s, 0, 6) != clip(x, 0, 6) / s``. The paper
replaces it by ReLU, which changes the float function wherever the ReLU6 saturates (on a network
whose activations often exceed 6 that is a different model). Here a ReLU6 becomes a ReLU only when
it saturates on at most ``RELU6_TOLERANCE`` of its values over the calibration data (measured by
:class:`SaturationObserver`); otherwise that pair is left alone. Any other bounded Clip is left alone.
"""

from __future__ import annotations

import logging

import numpy as np

from rknn_core.ir import Graph, Node

log = logging.getLogger("rknn")
MAX_SWEEPS = 20
TOLERANCE = 1e-3  # stop when no scale moves by more than 0.1 %
RELU6_TOLERANCE = 1e-4  # a ReLU6 saturating on at most this fraction of its values may become a ReLU


class SaturationObserver:
    """Fraction of the values of given tensors that reach 6 (the ReLU6 bound), over all samples."""

    def __init__(self, names: list[str]) -> None:
        self.counts = {name: [0, 0] for name in names}

    def update(self, name: str, value: np.ndarray) -> None:
        if name in self.counts:
            self.counts[name][0] += int(np.count_nonzero(value >= 6))
            self.counts[name][1] += int(value.size)

    def fractions(self) -> dict[str, float]:
        return {name: hit / max(total, 1) for name, (hit, total) in self.counts.items()}


def relu6_outputs(graph: Graph) -> list[str]:
    """Outputs of the first convs of equalizable pairs that end in a ReLU6 (they need a saturation check)."""
    return [first.outputs[0] for first, _ in find_pairs(graph)
            if _activation_kind(first.attrs.get("activation")) == "relu6"]


def _activation_kind(act: dict | None) -> str | None:
    """'linear' / 'homogeneous' / 'relu6' for activations equalization can pass, else None."""
    if not act:
        return "linear"
    if act.get("op") in ("Relu", "LeakyRelu"):
        return "homogeneous"
    if act.get("op") == "Clip" and act.get("min") == 0:
        if act.get("max") is None:
            return "homogeneous"
        if act.get("max") == 6:
            return "relu6"
    return None


def _const_float(graph: Graph, name: str) -> np.ndarray | None:
    tensor = graph.tensors.get(name) if name else None
    if tensor is None or tensor.data is None or np.asarray(tensor.data).dtype.kind != "f":
        return None
    return np.asarray(tensor.data)


def find_pairs(graph: Graph) -> list[tuple[Node, Node]]:
    """Conv -> Conv pairs (the first read by the second alone) that equalization may rescale."""
    consumers = graph.consumers()
    pairs = []
    for first in graph.nodes:
        if first.op != "Conv" or len(first.outputs) != 1 or first.outputs[0] in graph.outputs:
            continue
        readers = consumers.get(first.outputs[0], [])
        if len(readers) != 1 or readers[0].op != "Conv" or readers[0].inputs[0] != first.outputs[0]:
            continue
        second = readers[0]
        if first.outputs[0] in second.inputs[1:] or _activation_kind(first.attrs.get("activation")) is None:
            continue
        w1, w2 = _const_float(graph, first.inputs[1]), _const_float(graph, second.inputs[1])
        bias = first.inputs[2] if len(first.inputs) > 2 else ""
        if w1 is None or w2 is None or (bias and _const_float(graph, bias) is None):
            continue
        group = int(second.attrs.get("group", 1))
        if w2.shape[1] * group != w1.shape[0] or w2.shape[0] % group:
            continue
        pairs.append((first, second))
    return pairs


def _input_channel_ranges(w2: np.ndarray, group: int) -> np.ndarray:
    """max |w| over everything input channel c of a (grouped) convolution touches, per c."""
    m, cg = w2.shape[:2]
    per = np.abs(w2.reshape(group, m // group, cg, -1)).max(axis=(1, 3))  # group, cg
    return per.reshape(-1)


def _scale_input_channels(w2: np.ndarray, s: np.ndarray, group: int) -> np.ndarray:
    m, cg = w2.shape[:2]
    factors = s.reshape(group, 1, cg, 1)
    return (w2.reshape(group, m // group, cg, -1) * factors).reshape(w2.shape)


def equalize_pair(graph: Graph, first: Node, second: Node) -> float:
    """Rescale one pair in place (new arrays); returns the largest |log s_c| applied."""
    w1 = _const_float(graph, first.inputs[1])
    w2 = _const_float(graph, second.inputs[1])
    group = int(second.attrs.get("group", 1))
    r1 = np.abs(w1.reshape(w1.shape[0], -1)).max(axis=1).astype(np.float64)
    r2 = _input_channel_ranges(w2.astype(np.float64), group)
    valid = (r1 > 0) & (r2 > 0)
    s = np.ones_like(r1)
    s[valid] = np.sqrt(r1[valid] / r2[valid])
    shape = (-1,) + (1,) * (w1.ndim - 1)
    graph.tensors[first.inputs[1]].data = (w1 / s.reshape(shape)).astype(w1.dtype)
    if len(first.inputs) > 2 and first.inputs[2]:
        b1 = _const_float(graph, first.inputs[2])
        graph.tensors[first.inputs[2]].data = (b1 / s).astype(b1.dtype)
    graph.tensors[second.inputs[1]].data = _scale_input_channels(w2, s, group).astype(w2.dtype)
    if _activation_kind(first.attrs.get("activation")) == "relu6":
        first.attrs = {**first.attrs, "activation": {"op": "Relu"}}
    return float(np.abs(np.log(s)).max(initial=0.0))


def _private_constants(graph: Graph, pairs: list[tuple[Node, Node]]) -> None:
    """Weights/biases read by several nodes get a private copy per node before rescaling."""
    readers: dict[str, int] = {}
    for node in graph.nodes:
        for name in set(node.inputs):
            readers[name] = readers.get(name, 0) + 1
    for node in {id(n): n for pair in pairs for n in pair}.values():
        for position in (1, 2):
            if position < len(node.inputs) and node.inputs[position] and readers.get(node.inputs[position], 0) > 1:
                name = node.inputs[position]
                node.inputs[position] = graph.add_const(f"{name}_{node.name}", graph.tensors[name].data)


def equalize(graph: Graph, saturation: dict[str, float] | None = None) -> int:
    """Equalize every eligible Conv -> Conv pair of ``graph`` until the scales settle; returns the
    number of pairs. ``saturation``: ReLU6 output -> fraction of saturated values (pairs whose
    ReLU6 saturates more than ``RELU6_TOLERANCE``, or is not measured, are skipped)."""
    saturation = saturation or {}
    pairs, skipped = [], 0
    for first, second in find_pairs(graph):
        if (_activation_kind(first.attrs.get("activation")) == "relu6"
                and saturation.get(first.outputs[0], 1.0) > RELU6_TOLERANCE):
            skipped += 1
            continue
        pairs.append((first, second))
    if skipped:
        log.info("cross-layer equalization: %d pair(s) skipped: their ReLU6 saturates on the calibration data", skipped)
    if not pairs:
        return 0
    _private_constants(graph, pairs)
    relu6 = sum(_activation_kind(first.attrs.get("activation")) == "relu6" for first, _ in pairs)
    sweeps = 0
    while sweeps < MAX_SWEEPS:
        sweeps += 1
        if max(equalize_pair(graph, first, second) for first, second in pairs) < TOLERANCE:
            break
    log.info("cross-layer equalization: %d conv pair(s), %d sweep(s); %d ReLU6 became ReLU",
             len(pairs), sweeps, relu6)
    return len(pairs)
