"""Empirical bias correction (Nagel et al. 2019, section 4.2, with measured instead of analytic means).

Quantizing weights and activations shifts the mean of a layer's output: ``E[W_q x_q] != E[W x]``,
and with per-tensor scales that shift differs per channel. The float graph and the quantized graph
run side by side, layer by layer, over calibration samples; at each quantized layer with a bias
input (Conv, and Gemm-like ops declaring ``quant_bias_input``) the mean per-channel difference of
the pre-activation outputs ``mean(W x + b - (W_q x_q + b_q))`` — the quantized side fed by the
already-corrected quantized layers before it — is added to the int32 bias. The corrected layer's
output then feeds the next layers, so corrections do not double count.
"""

from __future__ import annotations

import logging

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import Graph, Node
from rknn_core.plugins import Registry
from rknn_core.quant.params import QTYPES, bias_params, dequantize, quantize
from rknn_core.runtime.executor import Executor
from rknn_core.runtime.qexecutor import QuantExecutor, is_stored_quantized

log = logging.getLogger("rknn")
MAX_SAMPLES = 32  # calibration samples used for the correction (the first of the plan)


def _value(graph: Graph, values: dict, name: str) -> np.ndarray | None:
    if not name:
        return None
    if name in values:
        return values[name]
    data = graph.tensors[name].data
    if data is None:
        raise RknnError(f"bias correction: tensor '{name}' has no value")
    return data


def _real(value: np.ndarray | None, q) -> np.ndarray | None:
    """What a quantized kernel computes with: real values on the quantization grid."""
    if value is None or q is None:
        return value
    stored = value if is_stored_quantized(value, q) else quantize(value, q)
    return dequantize(stored, q)


def _correctable(qgraph: Graph, qexec: QuantExecutor, i: int) -> bool:
    node, opdef = qgraph.nodes[i], qexec.opdefs[i]
    position = opdef.quant_bias_input
    if not qexec.quantized[i] or position is None or opdef.quant_kernel is None or len(node.inputs) < 2:
        return False
    x_q = qgraph.tensors[node.inputs[0]].quant
    w = qgraph.tensors.get(node.inputs[1])
    if x_q is None or w is None or not w.is_const or w.quant is None:
        return False
    return len(node.inputs) == position or (len(node.inputs) > position and bool(node.inputs[position])
                                            and qgraph.tensors[node.inputs[position]].is_const)


def _pre_activation(kernel, args: list, node: Node) -> np.ndarray:
    attrs = {k: v for k, v in node.attrs.items() if k != "activation"}
    return np.asarray(kernel(args, attrs)[0], dtype=np.float64)


def _correct_node(float_graph: Graph, qgraph: Graph, qexec: QuantExecutor, i: int,
                  float_args: list[list], quant_args: list[list]) -> float:
    """Fold the mean pre-activation error of node ``i`` into its int32 bias; returns max |error|."""
    node, kernel = qgraph.nodes[i], qexec.kernels[i]
    position = qexec.opdefs[i].quant_bias_input
    tensors = qgraph.tensors
    x_q, w_q = tensors[node.inputs[0]].quant, tensors[node.inputs[1]].quant
    if len(node.inputs) == position:  # no bias yet: an int32 zero bias to correct
        channels = np.asarray(tensors[node.inputs[1]].data).shape[0]
        name = qgraph.add_const(f"{node.name}_bias_correction", np.zeros(channels, np.int32))
        tensors[name].quant = bias_params(x_q, w_q)
        node.inputs = [*node.inputs, name]
    bias = tensors[node.inputs[position]]
    in_q = [tensors[n].quant if n else None for n in node.inputs]
    const_real = {p: dequantize(tensors[n].data, in_q[p]) for p, n in enumerate(node.inputs)
                  if p > 0 and n and tensors[n].is_const and in_q[p] is not None}
    total, count = None, 0
    for f_args, q_args in zip(float_args, quant_args):
        reals = [const_real.get(p, _real(a, q)) for p, (a, q) in enumerate(zip(q_args, in_q))]
        reals += [None] * (len(node.inputs) - len(reals))
        reals[position] = const_real[position] if position in const_real else None
        f_args = list(f_args) + [None] * (len(node.inputs) - len(f_args))
        diff = _pre_activation(kernel, f_args, node) - _pre_activation(kernel, reals, node)
        axes = tuple(a for a in range(diff.ndim) if a != 1)
        part = diff.sum(axis=axes)
        total = part if total is None else total + part
        count += diff.size // diff.shape[1]
    error = total / max(count, 1)
    scale = np.broadcast_to(np.asarray(bias.quant.scale, dtype=np.float64), error.shape)
    lo, hi, dtype = QTYPES[bias.quant.qtype]
    stored = np.asarray(bias.data, dtype=np.int64) + np.rint(error / scale).astype(np.int64)
    bias.data = np.clip(stored, lo, hi).astype(dtype)
    return float(np.abs(error).max(initial=0.0))


def correct_bias(float_graph: Graph, qgraph: Graph, registry: Registry, feeds: list[dict[str, np.ndarray]]) -> int:
    """Correct the biases of ``qgraph`` (quantized from ``float_graph``, same node order) on
    ``feeds``; returns the number of corrected layers."""
    if [n.name for n in float_graph.nodes] != [n.name for n in qgraph.nodes]:
        raise RknnError("bias correction: the float and quantized graphs differ in their nodes")
    fexec, qexec = Executor(float_graph, registry), QuantExecutor(qgraph, registry)
    fvals = [dict(feed) for feed in feeds]
    qvals = [dict(feed) for feed in feeds]
    last_use = {name: i for i, node in enumerate(qgraph.nodes) for name in node.inputs if name}
    pinned = set(qgraph.outputs)
    corrected = 0
    for i, node in enumerate(qgraph.nodes):
        fnode = float_graph.nodes[i]
        float_args = [[_value(float_graph, v, n) for n in fnode.inputs] for v in fvals]
        if _correctable(qgraph, qexec, i):
            quant_args = [[_value(qgraph, v, n) for n in node.inputs] for v in qvals]
            shift = _correct_node(float_graph, qgraph, qexec, i, float_args, quant_args)
            log.debug("bias correction: node '%s' mean error up to %.3g", node.name, shift)
            corrected += 1
        for fv, qv, f_args in zip(fvals, qvals, float_args):
            f_outs = fexec._call(i, fnode, f_args)
            q_outs = qexec._call(i, node, [_value(qgraph, qv, n) for n in node.inputs])
            for name, f_out, q_out in zip(node.outputs, f_outs, q_outs):
                if name:
                    fv[name], qv[name] = f_out, q_out
        for name in set(node.inputs):
            if name and last_use.get(name) == i and name not in pinned:
                for fv, qv in zip(fvals, qvals):
                    fv.pop(name, None)
                    qv.pop(name, None)
    log.info("bias correction: %d layer(s) corrected on %d sample(s)", corrected, len(feeds))
    return corrected
