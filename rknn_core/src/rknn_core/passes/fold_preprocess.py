"""Fold the input normalization (``channel_mean_value`` / ``mean_values``+``std_values`` and
``reorder_channel``, as ``insert_preprocess`` adds them) into the first convolution of a float model.

``z_c = (x_P[c] - m_c) / s_c`` read by Convs (directly or through the model's NHWC->NCHW Transpose)
is what ``W'[o, P[c]] = W[o, c] / s_c`` computes on ``x - m`` in ``x``'s channel order. The mean goes
into the bias (``b - sum W' m``) when the Conv has no padding (a padded border is 0 in ``z``, which is
``m`` in ``x``); otherwise one ``Sub`` of the mean stays. Regrouped float arithmetic: level 3 only,
float graphs only (a late pass, so it sees whether the build quantized: quantized models keep the
nodes, which the quantized executor runs as one lookup over the input codes).

``inputs_pass_through`` still works: ``graph.metadata["folded_preprocess"]`` keeps, per removed
preprocessed tensor, the input and the per-channel ``perm``/``mean``/``scale``, and the executor turns
a fed preprocessed tensor back into the input it stands for.
"""

from __future__ import annotations

import numpy as np

from rknn_core.ir import Graph, Node, Tensor
from rknn_core.passes._util import unique_node_name
from rknn_core.preprocess import channel_axis
from rknn_core.records import PassSpec

FOLDED = "folded_preprocess"  # graph.metadata key


def _constant(graph: Graph, node: Node, channels: int) -> np.ndarray | None:
    """The per-channel constant operand of a preprocessing Sub/Div (the second input), or None."""
    data = graph.tensors[node.inputs[1]].data if len(node.inputs) == 2 else None
    if data is None or np.asarray(data).size not in (1, channels):
        return None
    return np.broadcast_to(np.asarray(data, np.float64).reshape(-1), (channels,)).copy()


def preprocess_chain(graph: Graph, x: str, protected: set[str]):
    """(nodes, perm, mean, scale, z) of the Gather/Sub/Div chain after input ``x`` ending at a protected
    (preprocessed) tensor ``z``, or None."""
    tensor = graph.tensors[x]
    axis = channel_axis(tensor)
    if axis is None or np.dtype(tensor.dtype).kind != "f":
        return None
    channels = tensor.shape[axis]
    perm, mean, scale = np.arange(channels), np.zeros(channels), np.ones(channels)
    consumers = graph.consumers()
    nodes, current = [], x
    while current not in protected:
        readers = consumers.get(current, [])
        if len(readers) != 1 or readers[0].inputs[0] != current:
            return None
        node = readers[0]
        if node.op == "Gather" and not nodes and int(node.attrs.get("axis", 0)) == axis:
            order = graph.tensors[node.inputs[1]].data
            if order is None or sorted(np.asarray(order).reshape(-1).tolist()) != list(range(channels)):
                return None
            perm = np.asarray(order).reshape(-1)
        elif node.op in ("Sub", "Div") and _constant(graph, node, channels) is not None:
            value = _constant(graph, node, channels)
            if node.op == "Sub":
                mean = mean + value * scale
            else:
                scale = scale * value
        else:
            return None
        nodes.append(node)
        current = node.outputs[0]
    return (nodes, perm, mean, scale, current) if nodes else None


def _conv_readers(graph: Graph, z: str, axis: int, protected: set[str]):
    """(transpose or None, convs) when ``z`` is read only by group-1 Convs with constant weights (as
    their input 0), directly or through one Transpose that moves the channel axis to axis 1; else None."""
    consumers = graph.consumers()
    readers, read = consumers.get(z, []), z
    transpose = None
    if len(readers) == 1 and readers[0].op == "Transpose":
        transpose, read = readers[0], readers[0].outputs[0]
        if list(transpose.attrs.get("perm", []))[1:2] != [axis] or read in protected or read in graph.outputs:
            return None
        readers = consumers.get(read, [])
    elif axis != 1:
        return None
    for conv in readers:
        if conv.op != "Conv" or int(conv.attrs.get("group", 1)) != 1 or conv.inputs.count(read) != 1:
            return None
        if conv.inputs[0] != read or any(graph.tensors[n].data is None for n in conv.inputs[1:3] if n):
            return None
    return (transpose, readers) if readers else None


def _unpadded(conv: Node) -> bool:
    auto_pad = conv.attrs.get("auto_pad", "NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    return auto_pad == "VALID" or (auto_pad == "NOTSET" and not any(conv.attrs.get("pads") or ()))


def _fold_conv(graph: Graph, conv: Node, perm, mean, scale, with_mean: bool) -> None:
    w = np.asarray(graph.tensors[conv.inputs[1]].data)
    scaled = w.astype(np.float64) / scale.reshape(1, -1, *([1] * (w.ndim - 2)))
    folded = np.empty_like(scaled)
    folded[:, perm] = scaled
    bias = conv.inputs[2] if len(conv.inputs) > 2 and conv.inputs[2] else ""
    b = np.asarray(graph.tensors[bias].data, np.float64) if bias else np.zeros(w.shape[0])
    if with_mean:
        b = b - (scaled * mean.reshape(1, -1, *([1] * (w.ndim - 2)))).reshape(w.shape[0], -1).sum(axis=1)
    conv.inputs = [conv.inputs[0], graph.add_const(f"{conv.inputs[1]}_pre", folded.astype(w.dtype)),
                   graph.add_const(f"{conv.name}_bias_pre", b.astype(w.dtype)), *conv.inputs[3:]]


def _fold(graph: Graph, x: str, chain, transpose: Node | None, convs: list[Node]) -> None:
    nodes, perm, mean, scale, z = chain
    source = x
    with_mean = all(_unpadded(c) for c in convs)
    if not with_mean and np.any(mean):
        tensor = graph.tensors[x]
        bshape = [1] * 4
        bshape[channel_axis(tensor)] = len(mean)
        in_x_order = np.empty_like(mean)
        in_x_order[perm] = mean
        m = graph.add_const(f"{x}_mean_folded", in_x_order.astype(tensor.dtype).reshape(bshape))
        source = graph.unique_name(f"{x}_centered")
        graph.add_tensor(Tensor(source, tensor.shape, tensor.dtype, layout=tensor.layout))
        graph.nodes.insert(graph.nodes.index(nodes[0]), Node(unique_node_name(graph, source), "Sub", [x, m], [source]))
    for conv in convs:
        _fold_conv(graph, conv, perm, mean, scale, with_mean)
    if transpose is not None:
        transpose.inputs = [source]
    else:
        for conv in convs:
            conv.inputs = [source, *conv.inputs[1:]]
    graph.metadata.setdefault(FOLDED, {})[z] = {
        "input": x, "axis": channel_axis(graph.tensors[x]), "perm": [int(p) for p in perm],
        "mean": [float(v) for v in mean], "scale": [float(v) for v in scale]}


def run(graph: Graph, ctx) -> bool:
    if "quantized_dtype" in graph.metadata:
        return False
    changed = False
    protected = set(ctx.options.get("protected", ()))
    for x in list(graph.inputs):
        chain = preprocess_chain(graph, x, protected)
        if chain is None or chain[-1] in graph.outputs:
            continue
        readers = _conv_readers(graph, chain[-1], channel_axis(graph.tensors[x]), protected)
        if readers is None:
            continue
        _fold(graph, x, chain, *readers)
        changed = True
    return changed


PASS = PassSpec("fold_preprocess", run, min_level=3, changes_numerics=True, late=True,
                doc="The input normalization (mean, scale, channel order) into the first Convs of a float model.")
