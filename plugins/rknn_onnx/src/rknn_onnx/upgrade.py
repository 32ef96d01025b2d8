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


def _culprit(proto: onnx.ModelProto) -> str:
    """Which node the converter cannot take: the first one that fails on its own (empty if none does)."""
    for index, node in enumerate(proto.graph.node):
        if node.domain not in DEFAULT_DOMAINS:
            continue
        try:
            version_converter.convert_version(_alone(proto, node), UPGRADE_TO)
        except Exception:  # the converter raises RuntimeError/IndexError/...: any of them marks the node
            return f"node '{node.name or f'{node.op_type}_{index}'}' ({node.op_type}): "
    return ""


def _channel_slopes(proto: onnx.ModelProto) -> None:
    """PRelu before opset 7 applies a 1-D slope per channel (axis 1); from 7 on it broadcasts from the
    right, which the converter does not adapt: such slopes are reshaped to (C, 1, ...)."""
    slopes = {init.name: init for init in proto.graph.initializer}
    if not any(n.op_type == "PRelu" and len(n.input) > 1 and n.input[1] in slopes for n in proto.graph.node):
        return
    try:
        inferred = onnx.shape_inference.infer_shapes(proto).graph.value_info
    except Exception:  # a model onnx cannot infer: only the declared input ranks are known
        inferred = []
    ranks = {vi.name: len(vi.type.tensor_type.shape.dim) for vi in (*proto.graph.input, *inferred)
             if vi.type.tensor_type.HasField("shape")}
    for node in proto.graph.node:
        slope = slopes.get(node.input[1]) if node.op_type == "PRelu" and len(node.input) > 1 else None
        rank = ranks.get(node.input[0], 0)
        if slope is not None and len(slope.dims) == 1 and slope.dims[0] > 1 and rank > 2:
            slope.dims[:] = [slope.dims[0], *[1] * (rank - 2)]
            for vi in proto.graph.input:  # old files list initializers as inputs too
                if vi.name == slope.name:
                    vi.type.CopyFrom(helper.make_tensor_type_proto(slope.data_type, slope.dims))


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
    if opset < 7:
        _channel_slopes(work)
    try:
        return version_converter.convert_version(work, UPGRADE_TO)
    except Exception as exc:  # the converter's C++ assertions arrive as several exception types
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise RknnError(f"'{model}' uses opset {opset}; onnx's version converter could not bring it to opset "
                        f"{UPGRADE_TO}: {_culprit(proto)}{reason}") from None
