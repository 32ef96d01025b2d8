"""``config(need_horizontal_merge=True)``: parallel convolutions reading one tensor become one.

Inception blocks start several branches with convolutions of one input (often 1x1). Convolutions
that read the same tensor with the same geometry (kernel, strides, dilations, padding), ``group=1``
and the same fused activation are merged, as the NPU compiler does: one Conv whose weights and
biases are the branches' concatenated along the output channels, then a Split giving each branch
its own output again. Every output channel is computed exactly as before, so float results do not
change; a quantized build gives the merged output one range. Runs only when the flag is set, at
optimization levels 1 to 3 (level 0 switches every optimization off).
"""

from __future__ import annotations

import numpy as np

from rknn_core.ir import Graph, Node, Tensor
from rknn_core.ops._spatial import resolve_pads
from rknn_core.passes._util import unique_node_name
from rknn_core.records import PassSpec

OPTION = "horizontal_merge"  # PassContext option set from config(need_horizontal_merge=...)


def _constant(graph: Graph, name: str) -> np.ndarray | None:
    """The float data of a constant that is not quantized, else None."""
    tensor = graph.tensors.get(name) if name else None
    if tensor is None or tensor.data is None or tensor.quant is not None:
        return None
    data = np.asarray(tensor.data)
    return data if data.dtype.kind == "f" else None


def merge_key(graph: Graph, conv: Node) -> tuple | None:
    """What must be equal for two convolutions of one input to merge; None when this one cannot."""
    x = graph.tensors.get(conv.inputs[0])
    weight = _constant(graph, conv.inputs[1])
    has_bias = len(conv.inputs) > 2 and conv.inputs[2]
    if (x is None or x.shape is None or len(x.shape) != 4 or x.quant is not None or weight is None
            or weight.ndim != 4 or int(conv.attrs.get("group", 1)) != 1 or len(conv.outputs) != 1
            or (has_bias and _constant(graph, conv.inputs[2]) is None)):
        return None
    kernel = list(weight.shape[2:])
    begin, end, _ = resolve_pads(list(x.shape[2:]), kernel, conv.attrs)
    strides = list(conv.attrs.get("strides") or [1, 1])
    dilations = list(conv.attrs.get("dilations") or [1, 1])
    return (conv.inputs[0], str(weight.dtype), tuple(kernel), tuple(strides), tuple(dilations), tuple(begin),
            tuple(end), repr(conv.attrs.get("activation")))


def _merge(graph: Graph, convs: list[Node]) -> None:
    weights = [np.asarray(graph.tensors[c.inputs[1]].data) for c in convs]
    biases = [np.asarray(graph.tensors[c.inputs[2]].data) if len(c.inputs) > 2 and c.inputs[2]
              else np.zeros(w.shape[0], w.dtype) for c, w in zip(convs, weights)]
    first = convs[0]
    name = unique_node_name(graph, f"{first.name}_merged")
    out = graph.unique_name(f"{first.outputs[0]}_merged")
    x = graph.tensors[first.inputs[0]]
    graph.add_tensor(Tensor(out, None, x.dtype, layout=x.layout))
    merged = Node(name, "Conv", [first.inputs[0], graph.add_const(f"{name}_weight", np.concatenate(weights)),
                                 graph.add_const(f"{name}_bias", np.concatenate(biases))], [out], dict(first.attrs))
    sizes = graph.add_const(f"{name}_split", np.array([w.shape[0] for w in weights], np.int64))
    split = Node(unique_node_name(graph, f"{name}_split"), "Split", [out, sizes], [c.outputs[0] for c in convs],
                 {"axis": 1})
    at = next(i for i, node in enumerate(graph.nodes) if node is first)
    graph.nodes[:] = [node for node in graph.nodes if not any(node is c for c in convs)]
    graph.nodes[at:at] = [merged, split]


def run(graph: Graph, ctx) -> bool:
    if not ctx.options.get(OPTION):
        return False
    groups: dict[tuple, list[Node]] = {}
    for node in graph.nodes:
        if node.op == "Conv":
            key = merge_key(graph, node)
            if key is not None:
                groups.setdefault(key, []).append(node)
    mergeable = [convs for convs in groups.values() if len(convs) > 1]
    for convs in mergeable:
        _merge(graph, convs)
    return bool(mergeable)


PASS = PassSpec("merge_horizontal", run, min_level=1, changes_numerics=False,
                after=("fold_constants", "remove_identity", "eliminate_transposes", "fold_batchnorm",
                       "fold_channel_affine", "fuse_activation"),
                doc="With need_horizontal_merge: parallel Convs of one input (same geometry) into one Conv + Split.")
