"""Turn a calibrated float graph into a quantized one: QuantParams on tensors, integer weights."""

from __future__ import annotations

import logging

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import Graph, QuantParams
from rknn_core.plugins import Registry
from rknn_core.quant.calibrate import float_tensors
from rknn_core.quant.params import bias_params, quantize
from rknn_core.quant.schemes import find_quantizer, weight_params
from rknn_core.records import Quantizer

log = logging.getLogger("rknn")
FLOAT_NODES = "float_nodes"  # graph.metadata key: names of nodes that compute in float (hybrid)


def is_float_kind(dtype: str) -> bool:
    return np.dtype(dtype).kind == "f"


def quantize_graph(graph: Graph, registry: Registry, ranges: dict[str, tuple[float, float]], quantized_dtype: str,
                   float_nodes: set[str] | None = None,
                   given: dict[str, QuantParams] | None = None) -> list[str]:
    """Quantize ``graph`` in place with the installed quantizer ``quantized_dtype``; returns the names
    of nodes that stay float.

    ``float_nodes`` are kept float by request (hybrid quantization); ops with no quantized form are
    kept float too, with a warning. ``given`` fixes parameters of named tensors (edited cfg or an
    already-quantized source model) instead of deriving them from ``ranges``.
    """
    quantizer = find_quantizer(registry, quantized_dtype)
    given = given or {}
    float_nodes = set(float_nodes or ())
    for name in float_tensors(graph):
        tensor = graph.tensors[name]
        if name in given:
            tensor.quant = given[name]
        elif name in ranges:
            tensor.quant = quantizer.quantize(*ranges[name])
    stay_float = []
    producers = graph.producers()
    for node in graph.nodes:
        opdef = registry.op(node.op)
        if node.name in float_nodes or not opdef.quantizable:
            if node.name not in float_nodes:
                log.warning("op %s (node '%s') has no quantized form: it runs in float", node.op, node.name)
            stay_float.append(node.name)
            continue
        if opdef.quant_same_scale:
            _tie_outputs(graph, node, producers)
        _quantize_constants(graph, node, opdef, quantizer, given)
    graph.metadata[FLOAT_NODES] = stay_float
    graph.metadata["quantized_dtype"] = quantized_dtype
    return stay_float


def _tie_outputs(graph: Graph, node, producers) -> None:
    """Outputs of a same-scale op take its first input's parameters."""
    source = graph.tensors[node.inputs[0]].quant
    if source is None:
        return
    for out in node.outputs:
        if out and is_float_kind(graph.tensors[out].dtype):
            graph.tensors[out].quant = source


def _quantize_constants(graph: Graph, node, opdef, quantizer: Quantizer, given: dict[str, QuantParams]) -> None:
    """Float constants read by a quantized node become storage integers with their own parameters
    (except the op's ``quant_param_inputs``, real-valued parameters such as Resize scales); weights
    the op takes per channel get the quantizer's per-channel parameters where it has them."""
    channel_axes = opdef.weight_axes(node.attrs)
    for position, name in enumerate(node.inputs):
        if not name or position in opdef.quant_param_inputs:
            continue
        tensor = graph.tensors[name]
        if not tensor.is_const or tensor.quant is not None or not is_float_kind(tensor.dtype):
            continue
        data = np.asarray(tensor.data, dtype=np.float64)
        if position == opdef.quant_bias_input:
            x_q, w_q = graph.tensors[node.inputs[0]].quant, graph.tensors[node.inputs[1]].quant
            if x_q is None or w_q is None:
                raise RknnError(f"node '{node.name}' ({node.op}): its input and weight must be quantized before its bias")
            q = given.get(name) or bias_params(x_q, w_q)
        else:
            q = given.get(name) or weight_params(quantizer, data, channel_axes.get(position))
        tensor.quant = q
        tensor.data = quantize(data, q)
        tensor.dtype = str(tensor.data.dtype)
