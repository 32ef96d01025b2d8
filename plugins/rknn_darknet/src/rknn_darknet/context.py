"""Conversion state shared by the layer converters: the graph, every layer's output, the weights.

Darknet tensors are NCHW (batch 1) and stay so in the IR. A converter ``convert(ctx, section)``
reads ``ctx.input()`` (the previous layer's output) or ``ctx.layer(i)`` (``layers=``/``from=``
indices, negative ones relative to the current layer), emits nodes with ``ctx.emit`` and returns
the IR tensor that is the layer's output.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rknn_core.graph_builder import emit_node
from rknn_core.ir import Graph
from rknn_core.plugins import Registry
from rknn_darknet.cfg import Section


class Ctx:
    """Builds one Graph from the sections of a .cfg."""

    def __init__(self, graph: Graph, registry: Registry, weights, data: str):
        self.graph = graph
        self.registry = registry  # the ops emit() may use: the core's and every installed plugin's
        self.weights = weights  # WeightsFile (or RandomWeights when inventing a file)
        self.outputs: list[str] = []  # IR tensor of each converted layer, by layer index
        self.data = data  # the graph input, read by layer 0
        self.section: Section | None = None  # the layer being converted
        self.results: list[str] = []  # tensors that are model outputs (yolo / region inputs)

    # darknet layers ---------------------------------------------------------------------------
    def input(self) -> str:
        """The previous layer's output (the graph input for layer 0)."""
        return self.outputs[-1] if self.outputs else self.data

    def layer(self, index: int, key: str) -> str:
        """The output of layer ``index`` (negative: counted back from the current layer), named in
        errors as the option ``key`` that gave it."""
        here = self.section.index
        absolute = index + here if index < 0 else index
        if not 0 <= absolute < here:
            raise self.section.error(f"refers to layer {index} (layer {absolute}), but only layers 0..{here - 1} "
                                     f"come before it", key)
        return self.outputs[absolute]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.graph.tensors[name].shape)

    def take(self, shape: Sequence[int], what: str) -> np.ndarray:
        """The layer's next parameter array from the weights file."""
        return self.weights.take(tuple(int(d) for d in shape), what, self.section.where())

    def mark_output(self, name: str) -> None:
        if name not in self.results:
            self.results.append(name)

    # IR construction --------------------------------------------------------------------------
    def const(self, what: str, data: np.ndarray) -> str:
        return self.graph.add_const(f"{self.scope()}/{what}", data)

    def scope(self) -> str:
        return f"{self.section.type}_{self.section.index}"

    def emit(self, op: str, inputs: Sequence[str], **attrs) -> str:
        """Append one IR node (shape-inferred at once, never folded); returns its output's name."""
        out = self.graph.unique_name(f"{self.scope()}/{op}")
        emit_node(self.graph, self.registry, None, op, inputs, attrs, [out], fold_limit=None, layout="NCHW")
        return out

    def reshape(self, name: str, shape: Sequence[int]) -> str:
        return self.emit("Reshape", [name, self.const("shape", np.asarray(shape, np.int64))])
