"""Conversion state of one MXNet symbol: node outputs -> IR tensors, parameters, eager constant folding.

A converter ``convert(ctx, node)`` reads the node's inputs (``ctx.inp(k)``, ``ctx.shape(k)``, learned
parameters with ``ctx.param(k, shape, what)``), its attributes (``node.attrs`` through
``rknn_mxnet.attr_values``), emits IR nodes with ``ctx.emit`` and ends with ``ctx.result`` (or
``ctx.bind``) for each output of the MXNet node. Tensors keep MXNet's layout (NCHW).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.graph_builder import emit_node, fresh_names
from rknn_core.ir import Graph
from rknn_core.plugins import Registry
from rknn_mxnet.symbol import MxNode, MxSymbol


class Ctx:
    """Builds one Graph from the nodes of a symbol."""

    def __init__(self, graph: Graph, registry: Registry, symbol: MxSymbol, params: dict[str, np.ndarray]):
        self.graph = graph
        self.registry = registry  # the ops emit() may use: the core's and every installed plugin's
        self.symbol = symbol
        self.params = params  # variable name -> learned array (arg:/aux: prefixes removed)
        self.entries: dict[tuple[int, int], str] = {}  # (node index, output index) -> IR tensor
        self.node: MxNode | None = None  # the node being converted
        self.values: dict[str, np.ndarray] = {}

    # reading the node ----------------------------------------------------------------------------
    @property
    def n_inputs(self) -> int:
        return len(self.node.inputs)

    def source(self, k: int) -> MxNode:
        """The node that produces input k."""
        if k >= self.n_inputs:
            raise RknnError(f"needs at least {k + 1} input(s), the node has {self.n_inputs}")
        return self.symbol.nodes[self.node.inputs[k][0]]

    def inp(self, k: int = 0) -> str:
        """The IR tensor of input k (a learned parameter becomes a constant on first use)."""
        entry = self.node.inputs[k] if k < self.n_inputs else None
        if entry not in self.entries:
            src = self.source(k)
            if src.is_variable:
                raise RknnError(f"input {k} is the variable '{src.name}', which is neither in the .params file nor "
                                f"a model input")
            raise RknnError(f"input {k} is output {entry[1]} of node '{src.name}' ({src.op}), which has no such output")
        return self.entries[entry]

    def shape(self, k: int = 0) -> tuple[int, ...]:
        return tuple(self.graph.tensor(self.inp(k)).shape)

    def value(self, k: int) -> np.ndarray | None:
        """The constant data of input k (a learned parameter or a folded result), else ``None``."""
        return self.graph.tensor(self.inp(k)).data

    def param(self, k: int, shape: Sequence[int], what: str) -> np.ndarray:
        """Input k as a learned array of ``shape`` (float32); errors name the variable and both shapes."""
        data = self.value(k)
        name = self.source(k).name
        if data is None:
            raise RknnError(f"its {what} (input {k}, '{name}') must be a learned parameter from the .params file, "
                            f"but it is computed by the graph")
        shape = tuple(int(d) for d in shape)
        if tuple(data.shape) != shape:
            raise RknnError(f"its {what} '{name}' has shape {list(data.shape)} in the .params file; the node needs "
                            f"{list(shape)}")
        return data.astype(np.float32, copy=False)

    # writing the graph ---------------------------------------------------------------------------
    def const(self, base: str, data) -> str:
        return self.graph.add_const(f"{self.node.name}/{base}", np.asarray(data))

    def scalar(self, value: float) -> str:
        return self.const("scalar", np.float32(value))

    def ints(self, base: str, values: Sequence[int]) -> str:
        return self.const(base, np.array(list(values), np.int64))

    def emit(self, op: str, inputs: Sequence[str], attrs: dict | None = None, outputs: Sequence[str] | None = None,
             n_out: int = 1) -> list[str]:
        """Append an IR node (folded at once when its inputs are constants); returns its output names."""
        outputs = list(outputs) if outputs is not None else fresh_names(self.graph, f"{self.node.name}/{op}", n_out)
        emit_node(self.graph, self.registry, self.values, op, inputs, attrs, outputs, layout="NCHW")
        return outputs

    def result(self, op: str, inputs: Sequence[str], attrs: dict | None = None, index: int = 0) -> str:
        """Emit the node computing output ``index`` of the MXNet node and bind it."""
        name = self.emit(op, inputs, attrs, [self.output_name(index)])[0]
        self.bind(index, name)
        return name

    def output_name(self, index: int = 0) -> str:
        """A fresh IR name for output ``index``: the node's name (``name:index`` past the first)."""
        return self.graph.unique_name(self.node.name if index == 0 else f"{self.node.name}:{index}")

    def bind(self, index: int, ir_name: str) -> None:
        """Output ``index`` of the MXNet node is IR tensor ``ir_name`` (an alias: Dropout, _copy)."""
        self.entries[(self.node.index, index)] = ir_name
