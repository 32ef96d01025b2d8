"""Propagate shapes and dtypes through a graph with each op's ``infer``."""

from __future__ import annotations

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import Graph, Node, Tensor, TensorInfo
from rknn_core.plugins import Registry
from rknn_core.records import OpDef


def op_for(node: Node, registry: Registry) -> OpDef:
    """The op definition of a node, or an error naming the op and the node."""
    opdef = registry.op(node.op)
    if opdef is None:
        raise RknnError(
            f"unsupported op '{node.op}' at node '{node.name}': no installed plugin provides it "
            f"(install a custom-op plugin, or call rknn.register_op() with its definition)"
        )
    n = len(node.inputs)
    if n < opdef.min_inputs or (opdef.max_inputs is not None and n > opdef.max_inputs):
        most = "any number of" if opdef.max_inputs is None else f"at most {opdef.max_inputs}"
        raise RknnError(f"node '{node.name}' ({node.op}) has {n} inputs; the op takes at least "
                        f"{opdef.min_inputs} and {most}")
    return opdef


def infer_node(graph: Graph, node: Node, opdef: OpDef, values: dict[str, np.ndarray] | None = None) -> None:
    """Set the shapes and dtypes of one node's outputs.

    ``values`` holds the data that ``infer`` computed for non-constant tensors (``Shape`` outputs and
    small shape arithmetic on them); it is read for this node's inputs and extended with its outputs.
    """
    values = {} if values is None else values
    infos = [_info(graph, name, values) if name else None for name in node.inputs]
    try:
        outs = opdef.infer(infos, node.attrs)
    except RknnError as exc:
        raise RknnError(f"node '{node.name}' ({node.op}): {exc}") from None
    except Exception as exc:
        raise RknnError(f"node '{node.name}' ({node.op}): shape inference failed: {type(exc).__name__}: {exc}") from exc
    for name, info in zip(node.outputs, outs):
        if not name:
            continue
        tensor = graph.tensors.get(name) or graph.add_tensor(Tensor(name))
        tensor.shape = tuple(int(d) for d in info.shape)
        tensor.dtype = str(info.dtype)
        if getattr(info, "data", None) is not None:
            values[name] = info.data


def _info(graph: Graph, name: str, values: dict[str, np.ndarray]) -> TensorInfo:
    info = graph.tensor(name).info()
    if info.data is None and name in values:
        info.data = values[name]
    return info


def infer_shapes(graph: Graph, registry: Registry) -> None:
    """Infer every intermediate tensor; errors name the node and op."""
    values: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        infer_node(graph, node, op_for(node, registry), values)
    for name in graph.outputs:
        if graph.tensor(name).shape is None:
            raise RknnError(f"graph output '{name}' is produced by no node")
