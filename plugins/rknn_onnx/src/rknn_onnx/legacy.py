"""Rewrite nodes of older opsets into the newest form, where parameters are inputs, not attributes."""

from __future__ import annotations

import numpy as np
from onnx import helper

from rknn_core.errors import RknnError
from rknn_core.ir import Graph, Node

REWRITTEN_OPS = ("Dropout", "Upsample")  # ops upgrade_node turns into others (Identity, Resize)
_REDUCE_AXES_INPUT_SINCE = {"ReduceSum": 13}  # the other Reduce* ops moved axes to an input in 18
_REDUCE_OPS = ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2",
               "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")


def _attr_to_input(node: Node, graph: Graph, attr: str, position: int, dtype=np.int64) -> None:
    """Move attribute ``attr`` into input slot ``position`` as a constant (absent -> empty slot)."""
    value = node.attrs.pop(attr, None)
    while len(node.inputs) < position:
        node.inputs.append("")
    name = "" if value is None else graph.add_const(f"{node.name}_{attr}", np.asarray(value, dtype=dtype))
    if len(node.inputs) == position:
        node.inputs.append(name)
    else:
        node.inputs[position] = name


def _upgrade_upsample(node: Node, graph: Graph, opset: int) -> None:
    mode = node.attrs.get("mode", "nearest")
    scales = node.attrs.pop("scales", None)
    scales_name = node.inputs[1] if len(node.inputs) > 1 else graph.add_const(
        f"{node.name}_scales", np.asarray(scales, dtype=np.float32))
    node.op = "Resize"
    node.inputs = [node.inputs[0], "", scales_name]
    # onnxruntime's Upsample: asymmetric coordinates; nearest floors (scales below 1 are refused
    # there, and 'simple' ceils them like opset-10 Resize does)
    node.attrs = {"mode": "linear" if mode in ("linear", "bilinear") else "nearest",
                  "coordinate_transformation_mode": "asymmetric", "nearest_mode": "simple"}


def _dtype(graph: Graph, name: str) -> str:
    tensor = graph.tensors.get(name)
    return tensor.dtype if tensor is not None else "float32"


def _inference_dropout(node: Node, graph: Graph, opset: int) -> None:
    """Dropout at inference, any opset: the output is the input (ratio ignored) and the optional mask
    output is all true, made by Shape + ConstantOfShape (bool from opset 10, ones of the input's type
    before: float32 unless the input is a graph input or constant of another type)."""
    training = graph.tensors.get(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    if training is not None and training.is_const and bool(np.asarray(training.data).any()):
        raise RknnError("Dropout in training mode (training_mode is true) drops values at random; "
                        "export the model for inference")
    source = node.inputs[0]
    node.op, node.inputs, node.attrs = "Identity", [source], {}
    if len(node.outputs) > 1 and node.outputs[1]:
        shape = f"{node.name}_mask_shape"
        graph.nodes.append(Node(shape, "Shape", [source], [shape]))
        graph.nodes.append(Node(f"{node.name}_mask", "ConstantOfShape", [shape], [node.outputs[1]],
                                {"value": np.ones(1, dtype=bool if opset >= 10 else _dtype(graph, source))}))
    node.outputs = node.outputs[:1]


def upgrade_node(node: Node, graph: Graph, opset: int) -> None:
    """Bring ``node`` to the newest-opset signature in place."""
    op = node.op
    if op == "Cast":
        node.attrs["to"] = str(helper.tensor_dtype_to_np_dtype(int(node.attrs["to"])))
    elif op == "Split":
        if "split" in node.attrs:
            _attr_to_input(node, graph, "split", 1)
        node.attrs.setdefault("num_outputs", len(node.outputs))
    elif op == "Slice" and opset < 10:
        starts, ends = node.attrs.pop("starts"), node.attrs.pop("ends")
        axes = node.attrs.pop("axes", list(range(len(starts))))
        node.inputs = [node.inputs[0]] + [graph.add_const(f"{node.name}_{k}", np.asarray(v, np.int64))
                                          for k, v in (("starts", starts), ("ends", ends), ("axes", axes))]
    elif op in ("Squeeze", "Unsqueeze") and "axes" in node.attrs:
        _attr_to_input(node, graph, "axes", 1)
    elif op in _REDUCE_OPS and "axes" in node.attrs and opset < _REDUCE_AXES_INPUT_SINCE.get(op, 18):
        _attr_to_input(node, graph, "axes", 1)
    elif op == "Pad" and opset < 11:
        if node.attrs.get("mode", "constant") == "constant" or "value" in node.attrs:
            value = node.attrs.pop("value", 0.0)
            node.inputs = [node.inputs[0], graph.add_const(f"{node.name}_pads", np.asarray(node.attrs.pop("pads"), np.int64)),
                           graph.add_const(f"{node.name}_value", np.asarray(value, np.float32))]
        else:
            _attr_to_input(node, graph, "pads", 1)
    elif op == "Clip" and opset < 11:
        lo, hi = node.attrs.pop("min", None), node.attrs.pop("max", None)
        node.inputs = [node.inputs[0],
                       "" if lo is None else graph.add_const(f"{node.name}_min", np.asarray(lo, np.float32)),
                       "" if hi is None else graph.add_const(f"{node.name}_max", np.asarray(hi, np.float32))]
    elif op == "Upsample":
        _upgrade_upsample(node, graph, opset)
    elif op == "Resize" and opset < 11:
        # onnxruntime's Resize-10: asymmetric coordinates; nearest floors an axis that grows and
        # ceils one that shrinks (its 'simple' nearest mode)
        node.inputs = [node.inputs[0], "", node.inputs[1]]
        node.attrs = {"mode": node.attrs.get("mode", "nearest"), "coordinate_transformation_mode": "asymmetric",
                      "nearest_mode": "simple"}
    elif op in ("Softmax", "LogSoftmax", "Hardmax") and opset < 13:
        node.attrs["coerce_2d"] = True  # opset < 13 flattens to 2-D at axis (default 1)
        node.attrs.setdefault("axis", 1)
    elif op == "Dropout":
        _inference_dropout(node, graph, opset)
    elif op == "MaxPool" and len(node.outputs) > 1 and node.outputs[1]:
        node.attrs["_indices"] = True  # the kernel computes the optional Indices output only on request
    elif op == "BatchNormalization" and len(node.outputs) > 1 and any(node.outputs[1:]):
        raise RknnError("BatchNormalization in training mode (running statistics outputs) is not supported")
