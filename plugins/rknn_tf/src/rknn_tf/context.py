"""Conversion state: TF tensors -> IR tensors, the layout each is held in, eager constant folding.

TensorFlow tensors are NHWC. A 4-D tensor may be *held* in NCHW inside the IR (the output of a
Conv, a pool, a BatchNormalization, or of elementwise ops on such tensors), so that chains of
spatial ops need no Transposes between them. ``get(key, "tf")`` / ``get(key, "nchw")`` return the
IR tensor in the wanted layout, inserting (once) the Transpose that converts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.graph_builder import emit_node, fresh_names
from rknn_core.ir import Graph, Node, Tensor
from rknn_core.plugins import Registry

TF, NCHW = "tf", "nchw"
TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)
NCHW_AXIS = (0, 2, 3, 1)  # NHWC axis a is NCHW axis NCHW_AXIS[a]


class Context:
    """Builds one Graph from converted TF nodes."""

    def __init__(self, graph: Graph, registry: Registry):
        self.graph = graph
        self.registry = registry  # the ops emit() may use: the core's and every installed plugin's
        self.values: dict[str, np.ndarray] = {}
        self.held: dict[str, tuple[str, str]] = {}  # TF tensor key -> (IR name, layout)
        self.converted: dict[tuple[str, str], str] = {}  # (IR name, layout) -> IR name
        self.scope = ""  # the TF node being converted (names new tensors)
        self.producer: dict[str, Node] = {}  # IR tensor -> the node computing it
        self.nodes: dict = {}  # TF node name -> TfNode (the imported part of the graph)
        self.consumers: dict[str, int] = {}  # TF tensor key -> number of readers
        self.outputs: set[str] = set()  # TF tensor keys that are model outputs

    # TF tensors ---------------------------------------------------------------------------
    def bind(self, key: str, ir_name: str, layout: str = TF) -> None:
        self.held[key] = (ir_name, layout)

    def known(self, key: str) -> bool:
        return key in self.held

    def layout(self, key: str) -> str:
        return self._held(key)[1]

    def _held(self, key: str) -> tuple[str, str]:
        try:
            return self.held[key]
        except KeyError:
            raise RknnError(f"input tensor '{key}' is not computed by the imported part of the graph") from None

    def tensor(self, key: str) -> Tensor:
        return self.graph.tensor(self._held(key)[0])

    def shape(self, key: str) -> tuple[int, ...]:
        """The TF (NHWC) shape of a tensor."""
        name, layout = self._held(key)
        shape = self.graph.tensor(name).shape
        if shape is None:
            raise RknnError(f"tensor '{key}' has an unknown shape")
        return tuple(shape[a] for a in TO_NHWC) if layout == NCHW else tuple(shape)

    def rank(self, key: str) -> int:
        return len(self.shape(key))

    def const(self, key: str) -> np.ndarray | None:
        """The TF-layout value of a constant tensor, else None."""
        name, layout = self._held(key)
        data = self.graph.tensors[name].data
        if data is None:
            return None
        return np.transpose(data, TO_NHWC) if layout == NCHW else data

    def need_const(self, key: str, what: str) -> np.ndarray:
        data = self.const(key)
        if data is None:
            raise RknnError(f"{what} ('{key}') must be a constant: it is computed from the graph inputs")
        return data

    def get(self, key: str, layout: str = TF) -> str:
        """The IR tensor of ``key`` in ``layout``, converted by a (shared) Transpose if needed."""
        name, held = self._held(key)
        if held == layout or (layout == NCHW and len(self.shape(key)) != 4):
            return name
        if (name, layout) not in self.converted:
            perm = TO_NCHW if layout == NCHW else TO_NHWC
            target = key if layout == TF else f"{key}__nchw"
            self.converted[(name, layout)] = self.emit("Transpose", [name], {"perm": list(perm)},
                                                       out=self.graph.unique_name(target), scope=key)[0]
        return self.converted[(name, layout)]

    # IR construction ------------------------------------------------------------------------
    def add_const(self, base: str, data: Any) -> str:
        return self.graph.add_const(base, np.asarray(data))

    def emit(self, op: str, inputs: Sequence[str], attrs: dict | None = None, out: str | Sequence[str] | None = None,
             n_out: int = 1, scope: str | None = None) -> list[str]:
        """Append an IR node (folded at once when its inputs are constants); returns its outputs."""
        if out is None:
            outs = fresh_names(self.graph, f"{scope or self.scope}/{op}", n_out)
        else:
            outs = [out] if isinstance(out, str) else list(out)
        node = emit_node(self.graph, self.registry, self.values, op, inputs, attrs, outs, fold_inferred=True)
        if node is not None:
            self.producer.update((o, node) for o in outs)
        return outs

    def out(self, node_name: str, index: int, layout: str = TF) -> str:
        """A fresh IR name for output ``index`` of TF node ``node_name`` held in ``layout``."""
        key = node_name if index == 0 else f"{node_name}:{index}"
        return self.graph.unique_name(key if layout == TF else f"{key}__nchw")

    def result(self, node_name: str, op: str, inputs: Sequence[str], attrs: dict | None = None,
               layout: str = TF, index: int = 0) -> str:
        """Emit the node computing output ``index`` of TF node ``node_name`` and bind it."""
        name = self.emit(op, inputs, attrs, out=self.out(node_name, index, layout))[0]
        self.bind(node_name if index == 0 else f"{node_name}:{index}", name, layout)
        return name

    def const_for(self, data: np.ndarray, layout: str, base: str) -> str:
        """A constant operand for a binary op on a ``layout`` tensor (rank-4 broadcast in NCHW)."""
        data = np.asarray(data)
        if layout == NCHW and data.ndim > 0 and data.size > 1:
            if data.ndim > 4:
                raise RknnError(f"constant '{base}' of rank {data.ndim} cannot broadcast with a 4-D tensor")
            data = np.transpose(data.reshape((1,) * (4 - data.ndim) + data.shape), TO_NCHW)
        elif layout == NCHW and data.ndim > 0:
            data = data.reshape(())
        return self.add_const(base, data)
