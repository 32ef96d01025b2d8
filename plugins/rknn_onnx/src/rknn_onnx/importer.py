"""Read an .onnx file into the toolkit's Graph: tensors, constants, nodes in the newest-opset form."""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import helper

from rknn_core.cut import cut_graph
from rknn_core.errors import RknnError
from rknn_core.ir import Graph, Node, Tensor
from rknn_core.plugins import Registry, default_registry
from rknn_core.records import DEFAULT_DOMAINS, op_key
from rknn_onnx.checks import check_names, np_dtype, tensor_array
from rknn_onnx.legacy import upgrade_node
from rknn_onnx.upgrade import upgrade_opset


def _attr_value(attr: onnx.AttributeProto):
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, onnx.TensorProto):
        return tensor_array(value, f"attribute '{attr.name}'")
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8", "replace") for v in value]
    if isinstance(value, onnx.GraphProto):
        raise RknnError(f"attribute '{attr.name}' holds a subgraph (control flow is not supported)")
    return value


def _constant_value(node: onnx.NodeProto) -> np.ndarray:
    for attr in node.attribute:
        value = _attr_value(attr)
        if attr.name == "value":
            return np.asarray(value)
        if attr.name in ("value_float", "value_floats"):
            return np.asarray(value, dtype=np.float32)
        if attr.name in ("value_int", "value_ints"):
            return np.asarray(value, dtype=np.int64)
    raise RknnError(f"Constant node '{node.name}' has no supported value attribute")


def _value_info_shape(vi: onnx.ValueInfoProto, model: str) -> tuple[tuple[int, ...], str]:
    """Shape (-1 marks a dynamic dimension; a dynamic batch becomes 1) and dtype of a graph input."""
    if not vi.type.HasField("tensor_type"):
        raise RknnError(f"input '{vi.name}' of '{model}' is not a tensor")
    ttype = vi.type.tensor_type
    dims = [int(d.dim_value) if d.HasField("dim_value") and d.dim_value >= 0 else -1 for d in ttype.shape.dim]
    if dims and dims[0] == -1:
        dims[0] = 1  # a symbolic batch dimension runs with batch 1
    return tuple(dims), np_dtype(ttype.elem_type, f"input '{vi.name}' of '{model}'")


def _read(model: str) -> onnx.ModelProto:
    if not isinstance(model, (str, os.PathLike)) or not os.path.isfile(model):
        raise RknnError(f"ONNX model file '{model}' does not exist")
    try:
        proto = onnx.load(os.fspath(model))
    except Exception as exc:
        raise RknnError(f"'{model}' is not a readable ONNX model: {type(exc).__name__}: {exc}") from None
    if not proto.graph.node:
        raise RknnError(f"'{model}' holds no graph nodes (is it a truncated or non-ONNX file?)")
    return proto


def default_opset(proto: onnx.ModelProto) -> int:
    for imp in proto.opset_import:
        if imp.domain in DEFAULT_DOMAINS:
            return int(imp.version)
    return 1


def load_onnx(model: str, inputs: list[str] | None = None, input_size_list: list | None = None,
              outputs: list[str] | None = None, registry: Registry | None = None) -> Graph:
    """Import an ONNX model; raises RknnError naming the file, node or op on any problem.

    ``input_size_list`` fixes input sizes (needed when the model's sizes are dynamic; the batch axis
    may be left out); ``inputs``/``outputs`` cut the graph at inner tensors. A node outside the default
    domain gets the op key ``domain:op_type`` and must find an op registered for that domain in
    ``registry`` (the installed plugins' by default).
    """
    registry = registry or default_registry()
    proto = _read(model)
    check_names(proto, model)
    proto = upgrade_opset(proto, model)
    opset = default_opset(proto)
    g = proto.graph
    graph = Graph(name=g.name or os.path.splitext(os.path.basename(model))[0])
    graph.metadata.update(source="onnx", source_file=os.path.basename(model), opset=opset)
    for init in g.initializer:
        data = tensor_array(init, f"initializer '{init.name}' in '{model}'")
        graph.add_tensor(Tensor(init.name, tuple(data.shape), str(data.dtype), data))
    for vi in g.input:
        if vi.name in graph.tensors:
            continue  # an initializer listed as input (old exporters)
        shape, dtype = _value_info_shape(vi, model)
        graph.add_tensor(Tensor(vi.name, shape, dtype))
        graph.inputs.append(vi.name)
    custom_nodes: dict[str, onnx.NodeProto] = {}
    for index, onode in enumerate(proto.graph.node):
        name = onode.name or f"{onode.op_type}_{index}"
        if onode.op_type == "Constant":
            data = _constant_value(onode)
            graph.add_tensor(Tensor(onode.output[0], tuple(data.shape), str(data.dtype), data))
            continue
        custom = onode.domain not in DEFAULT_DOMAINS
        if custom:
            custom_nodes[name] = onode
        try:
            attrs = {a.name: _attr_value(a) for a in onode.attribute}
            node = Node(name, op_key(onode.op_type, onode.domain), list(onode.input), list(onode.output), attrs)
            if not custom:  # older opsets of the default domain take the newest form
                upgrade_node(node, graph, opset)
        except RknnError as exc:
            raise RknnError(f"node '{name}' ({onode.op_type}) in '{model}': {exc}") from None
        except (KeyError, ValueError, TypeError) as exc:  # a damaged node: an attribute missing or of the wrong type
            raise RknnError(f"node '{name}' ({onode.op_type}) in '{model}' has a missing or malformed attribute "
                            f"for opset {opset}: {type(exc).__name__}: {exc}") from None
        if node.op:
            graph.nodes.append(node)
    graph.outputs = [o.name for o in g.output]
    _computed_outputs(graph)
    graph.toposort()
    try:
        cut_graph(graph, inputs, input_size_list, outputs)
    except RknnError as exc:
        raise RknnError(f"'{model}': {exc}; the model's inputs are {', '.join(graph.inputs)}") from None
    for node in graph.nodes:  # only the nodes left after the cut
        if node.name in custom_nodes:
            _check_custom_op(custom_nodes[node.name], node.name, registry)
    _mark_input_layouts(graph)
    return graph


def _computed_outputs(graph: Graph) -> None:
    """A graph output that is a constant (an initializer, a Constant node) gets a node that copies it,
    so the runtime computes every output."""
    for name in graph.outputs:
        tensor = graph.tensors.get(name)
        if tensor is not None and tensor.is_const:
            source = graph.add_const(f"{name}_value", tensor.data)
            del graph.tensors[name]
            graph.add_tensor(Tensor(name, tensor.shape, tensor.dtype))
            graph.nodes.append(Node(f"{name}_output", "Identity", [source], [name]))


def _check_custom_op(onode: onnx.NodeProto, name: str, registry: Registry) -> None:
    """A node of another domain needs an op registered for that domain; the error names op, domain and node."""
    if registry.op(op_key(onode.op_type, onode.domain)) is None:
        raise RknnError(f"unsupported op '{onode.op_type}' at node '{name}' (domain '{onode.domain}'): no installed "
                        f"plugin provides it for that domain (a plugin registers it as OpDef('{onode.op_type}', ..., "
                        f"domain='{onode.domain}'), or call rknn.register_op() with one)")


def _mark_input_layouts(graph: Graph) -> None:
    """4-D inputs are NCHW unless the model's first step transposes them from NHWC."""
    consumers = graph.consumers()
    for name in graph.inputs:
        tensor = graph.tensors[name]
        if tensor.shape is None or len(tensor.shape) != 4:
            continue
        users = consumers.get(name, [])
        nhwc = users and all(u.op == "Transpose" and list(u.attrs.get("perm", [])) == [0, 3, 1, 2] for u in users)
        tensor.layout = "NHWC" if nhwc else "NCHW"
