"""Run a quantized graph with the integer arithmetic of the chip.

A value is held as storage integers when its tensor has QuantParams and the value has an integer
dtype; otherwise it is a real (float) value. A quantized node gets storage integers for every
quantized input (real values are quantized on the way in, as a hybrid boundary does) and runs its
``quant_kernel``; a float node (hybrid ``float32`` layer or op with no quantized form) gets real
values and its outputs are quantized only where its consumers are quantized nodes.
"""

from __future__ import annotations

import numpy as np

from rknn_core.ir import Graph, Node
from rknn_core.plugins import Registry
from rknn_core.quant.params import dequantize, quantize
from rknn_core.quant.quantize_graph import FLOAT_NODES
from rknn_core.runtime.executor import Executor


def is_stored_quantized(value: np.ndarray | None, q) -> bool:
    return q is not None and value is not None and np.asarray(value).dtype.kind in "iu"


class QuantExecutor(Executor):
    """The Executor with integer kernels for quantized nodes; real values in and out."""

    def __init__(self, graph: Graph, registry: Registry):
        super().__init__(graph, registry)
        float_nodes = set(graph.metadata.get(FLOAT_NODES, ()))
        self.quantized = [node.name not in float_nodes and opdef.quantizable
                          for node, opdef in zip(graph.nodes, self.opdefs)]

    def run(self, feeds: dict[str, np.ndarray], times: list | None = None, keep=()) -> dict[str, np.ndarray]:
        """Real-valued feeds in; outputs (and kept tensors) come back as real float32 values."""
        values = super().run(feeds, times, keep)
        return {name: self.real(name, value) for name, value in values.items()}

    def real(self, name: str, value: np.ndarray) -> np.ndarray:
        q = self.graph.tensors[name].quant if name in self.graph.tensors else None
        return dequantize(value, q) if is_stored_quantized(value, q) else value

    def compute(self, i: int, node: Node, args: list) -> list[np.ndarray]:
        tensors = self.graph.tensors  # looked up per call: bias correction adds inputs and parameters
        in_q = [tensors[n].quant if n else None for n in node.inputs]
        if not self.quantized[i]:
            real_args = [None if a is None else (dequantize(a, q) if is_stored_quantized(a, q) else a)
                         for a, q in zip(args, in_q)]
            return self.kernels[i](real_args, node.attrs)
        stored = [a if a is None or q is None or is_stored_quantized(a, q) else quantize(a, q)
                  for a, q in zip(args, in_q)]
        opdef = self.opdefs[i]
        if opdef.quant_kernel is None:  # same-scale op: the float kernel moves storage integers
            return self.kernels[i](stored, node.attrs)
        out_q = [tensors[n].quant if n else None for n in node.outputs]
        return opdef.quant_kernel(stored, in_q, out_q, node.attrs)
