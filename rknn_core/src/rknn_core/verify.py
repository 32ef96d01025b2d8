"""A structural check of a Graph: what every pass must leave intact.

``verify_graph`` raises :class:`RknnError` naming the first offending node or tensor. Tests run it
after every pass (``PassContext.options["verify"]``, or ``RKNN_VERIFY_PASSES=1``).
"""

from __future__ import annotations

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import Graph, Node
from rknn_core.plugins import Registry
from rknn_core.shape_inference import op_for


def _where(node: Node) -> str:
    return f"node '{node.name}' ({node.op})"


def verify_graph(graph: Graph, registry: Registry, check_shapes: bool = True) -> None:
    """Check that ``graph`` is well formed; ``check_shapes`` also re-runs every op's ``infer``.

    Checked: graph inputs are defined, non-constant and produced by no node; every node's op is
    registered with a valid input count; every input is a constant, a graph input or the output of an
    earlier node (topological order); each tensor has one producer; graph outputs are produced; every
    name is in the tensor table; constants' recorded shape and dtype match their data; and the
    recorded output shapes and dtypes are what shape inference gives again.
    """
    tensors = graph.tensors
    defined: set[str] = set()
    if len(set(graph.inputs)) != len(graph.inputs):
        raise RknnError(f"graph '{graph.name}' lists an input twice: {graph.inputs}")
    for name in graph.inputs:
        tensor = tensors.get(name)
        if tensor is None:
            raise RknnError(f"graph input '{name}' is not in the tensor table")
        if tensor.is_const:
            raise RknnError(f"graph input '{name}' is also a constant")
        defined.add(name)
    for tensor in tensors.values():
        if tensor.is_const:
            data = np.asarray(tensor.data)
            if tensor.shape is not None and tuple(tensor.shape) != data.shape:
                raise RknnError(f"constant '{tensor.name}' records shape {tuple(tensor.shape)} but holds {data.shape}")
            if np.dtype(tensor.dtype) != data.dtype:
                raise RknnError(f"constant '{tensor.name}' records dtype {tensor.dtype} but holds {data.dtype}")
    producer: dict[str, Node] = {}
    values: dict[str, np.ndarray] = {}  # data that shape inference derives (Shape outputs ...)
    all_outputs = {o: n for n in graph.nodes for o in n.outputs if o}
    for node in graph.nodes:
        opdef = op_for(node, registry)  # raises for unknown ops and bad input counts, naming the node
        for name in node.inputs:
            if not name:
                continue
            tensor = tensors.get(name)
            if tensor is None:
                raise RknnError(f"{_where(node)} reads '{name}', which is not in the tensor table")
            if name in defined or tensor.is_const:
                continue
            later = all_outputs.get(name)
            if later is not None:
                raise RknnError(f"{_where(node)} reads '{name}' before node '{later.name}' produces it "
                                f"(nodes are not in topological order, or there is a cycle)")
            raise RknnError(f"{_where(node)} reads '{name}', which no node produces and is neither a graph "
                            f"input nor a constant")
        if not any(node.outputs):
            raise RknnError(f"{_where(node)} has no outputs")
        for name in node.outputs:
            if not name:
                continue
            if name in producer:
                raise RknnError(f"tensor '{name}' is produced twice: by node '{producer[name].name}' and by {_where(node)}")
            if name in graph.inputs:
                raise RknnError(f"{_where(node)} writes graph input '{name}'")
            tensor = tensors.get(name)
            if tensor is None:
                raise RknnError(f"{_where(node)} writes '{name}', which is not in the tensor table")
            if tensor.is_const:
                raise RknnError(f"{_where(node)} writes '{name}', which is also a constant")
            producer[name] = node
            defined.add(name)
        if check_shapes:
            _check_shapes(graph, node, opdef, values)
    for name in graph.outputs:
        if name not in defined:
            what = "a constant" if name in tensors and tensors[name].is_const else "produced by no node"
            raise RknnError(f"graph output '{name}' is {what}")
    if check_shapes:
        for name in graph.inputs:
            if tensors[name].shape is None:
                raise RknnError(f"graph input '{name}' has no known shape")


def _check_shapes(graph: Graph, node: Node, opdef, values: dict) -> None:
    infos = []
    for name in node.inputs:
        if not name:
            infos.append(None)
            continue
        tensor = graph.tensors[name]
        if tensor.shape is None:
            raise RknnError(f"{_where(node)} reads '{name}', whose shape is unknown")
        info = tensor.info()
        if info.data is None and name in values:
            info.data = values[name]
        infos.append(info)
    try:
        outs = opdef.infer(infos, node.attrs)
    except Exception as exc:
        raise RknnError(f"{_where(node)}: shape inference fails on the current graph: {type(exc).__name__}: {exc}") from None
    for name, info in zip(node.outputs, outs):
        if not name:
            continue
        if getattr(info, "data", None) is not None:
            values[name] = info.data
        tensor = graph.tensors[name]
        expected = tuple(int(d) for d in info.shape)
        if tensor.shape is None or tuple(tensor.shape) != expected or np.dtype(tensor.dtype) != np.dtype(info.dtype):
            raise RknnError(f"{_where(node)} output '{name}' records {tensor.shape} {tensor.dtype} but shape "
                            f"inference gives {expected} {info.dtype}")
