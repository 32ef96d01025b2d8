"""Bring models of opsets 1-8 to opset 9 with onnx's own version converter before they are imported."""

from __future__ import annotations

import onnx
from onnx import helper, version_converter

from rknn_core.errors import RknnError
from rknn_core.records import DEFAULT_DOMAINS

UPGRADE_TO = 9  # the oldest opset the importer reads directly (legacy.py handles 9 and newer)


def _default_opset(proto: onnx.ModelProto) -> int:
    return next((int(imp.version) for imp in proto.opset_import if imp.domain in DEFAULT_DOMAINS), 1)


def _alone(proto: onnx.ModelProto, node: onnx.NodeProto) -> onnx.ModelProto:
    """A model holding only ``node``, its inputs typed as in ``proto`` where it says (float otherwise)."""
    g = proto.graph
    typed = {vi.name: vi for vi in (*g.input, *g.value_info)}
    typed.update({init.name: helper.make_tensor_value_info(init.name, init.data_type, init.dims) for init in g.initializer})
    inputs = [typed.get(name) or helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
              for name in dict.fromkeys(i for i in node.input if i)]
    outputs = [onnx.ValueInfoProto(name=name) for name in node.output if name]
    graph = helper.make_graph([node], "node", inputs, outputs)
    return helper.make_model(graph, opset_imports=proto.opset_import, ir_version=proto.ir_version)


def _with_shapes(proto: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(proto)
    except Exception:  # a model onnx cannot infer is converted as it is
        return proto


def _convert(proto: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """Convert one opset at a time, inferring shapes before each step: the converter's broadcasting
    adapters need the shapes of intermediate tensors, which old opsets' ops do not infer."""
    for version in range(opset + 1, UPGRADE_TO + 1):
        proto = _with_shapes(proto)
        if version == 7:
            _explicit_broadcasts(proto)
        proto = version_converter.convert_version(proto, version)
    return proto


def _culprit(proto: onnx.ModelProto) -> str:
    """Which node the converter cannot take: the first one that fails on its own (empty if none does)."""
    for index, node in enumerate(proto.graph.node):
        if node.domain not in DEFAULT_DOMAINS:
            continue
        try:
            _convert(_alone(proto, node), _default_opset(proto))
        except Exception:  # the converter raises RuntimeError/IndexError/...: any of them marks the node
            return f"node '{node.name or f'{node.op_type}_{index}'}' ({node.op_type}): "
    return ""


_AXIS_BROADCAST_OPS = ("Add", "Sub", "Mul", "Div", "Pow", "And", "Or", "Xor", "Equal", "Greater", "Less")


def _explicit_broadcasts(proto: onnx.ModelProto) -> None:
    """Opset-6 broadcasts the converter gets wrong, made explicit with Unsqueeze nodes: a binary op's
    ``broadcast=1, axis=k`` (B aligned at axis k of A, not at its end) and PRelu's 1-D slope (per
    channel, axis 1). Needs the shapes of the opset-6 graph (``_with_shapes``)."""
    g = proto.graph
    ranks = {vi.name: len(vi.type.tensor_type.shape.dim) for vi in (*g.input, *g.value_info)
             if vi.type.tensor_type.HasField("shape")}
    ranks.update({init.name: len(init.dims) for init in g.initializer})
    nodes = []
    for node in g.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        rank_a = ranks.get(node.input[0]) if node.input else None
        rank_b = ranks.get(node.input[1]) if len(node.input) > 1 else None
        axes: list[int] = []
        if rank_a and rank_b and node.op_type in _AXIS_BROADCAST_OPS and attrs.get("broadcast") and "axis" in attrs:
            axes = list(range(rank_b, rank_a - int(attrs["axis"]) % rank_a))
            node.attribute.remove(next(a for a in node.attribute if a.name == "axis"))
        elif node.op_type == "PRelu" and rank_b == 1 and rank_a and rank_a > 2:
            axes = list(range(1, rank_a - 1))
        if axes:
            aligned = f"{node.input[1]}_aligned_{len(nodes)}"
            nodes.append(helper.make_node("Unsqueeze", [node.input[1]], [aligned], axes=axes))
            node.input[1] = aligned
        nodes.append(node)
    del g.node[:]
    g.node.extend(nodes)


def _list_initializers(proto: onnx.ModelProto) -> None:
    """List every initializer among the graph inputs, as IR versions before 4 require (the converter
    checks models by those rules)."""
    listed = {vi.name for vi in proto.graph.input}
    proto.graph.input.extend(helper.make_tensor_value_info(init.name, init.data_type, init.dims)
                             for init in proto.graph.initializer if init.name not in listed)


def upgrade_opset(proto: onnx.ModelProto, model: str) -> onnx.ModelProto:
    """``proto`` at opset 9 when it is older (unchanged otherwise); a failure names the node and op."""
    opset = _default_opset(proto)
    if opset >= UPGRADE_TO:
        return proto
    work = onnx.ModelProto()
    work.CopyFrom(proto)
    _list_initializers(work)
    try:
        return _convert(work, opset)
    except Exception as exc:  # the converter's C++ assertions arrive as several exception types
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise RknnError(f"'{model}' uses opset {opset}; onnx's version converter could not bring it to opset "
                        f"{UPGRADE_TO}: {_culprit(proto)}{reason}") from None
