"""Run a Graph node by node with numpy kernels, freeing each tensor after its last use."""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import Graph, Node
from rknn_core.plugins import Registry
from rknn_core.shape_inference import op_for


class Executor:
    """A compiled run plan: kernels in order over numbered slots; constants preloaded."""

    def __init__(self, graph: Graph, registry: Registry):
        self.graph = graph
        self.opdefs = [op_for(node, registry) for node in graph.nodes]
        self.kernels = [opdef.kernel for opdef in self.opdefs]
        self._plans: dict[frozenset, tuple[list[int], dict[str, int]]] = {}

    def _plan(self, fed: frozenset) -> tuple[list[int], dict[str, int]]:
        """Indices of the nodes needed for the outputs when the tensors in ``fed`` are given, and the
        step of each tensor's last use."""
        if fed not in self._plans:
            producers = {out: i for i, node in enumerate(self.graph.nodes) for out in node.outputs}
            needed, stack = set(), [o for o in self.graph.outputs if o not in fed]
            while stack:
                i = producers.get(stack.pop())
                if i is None or i in needed:
                    continue
                needed.add(i)
                stack.extend(t for t in self.graph.nodes[i].inputs if t and t not in fed)
            plan = sorted(needed)
            last_use = {name: step for step, i in enumerate(plan) for name in self.graph.nodes[i].inputs}
            self._plans[fed] = plan, last_use
        return self._plans[fed]

    def run(self, feeds: dict[str, np.ndarray], times: list | None = None,
            keep: Iterable[str] = ()) -> dict[str, np.ndarray]:
        """Values of the graph outputs (and of ``keep``); with ``times``, appends (node, seconds)."""
        g = self.graph
        plan, last_use = self._plan(frozenset(feeds))
        pinned = set(g.outputs) | set(keep)
        values: dict[str, np.ndarray] = dict(feeds)
        for step, i in enumerate(plan):
            node = g.nodes[i]
            args = [self._value(values, name) for name in node.inputs]
            start = time.perf_counter()
            outs = self._call(i, node, args)
            if times is not None:
                times.append((node, time.perf_counter() - start))
            for name, value in zip(node.outputs, outs):
                if name:
                    values[name] = value
            for name in node.inputs:
                if name and last_use.get(name) == step and name not in pinned and name in values:
                    del values[name]
        return values

    def _value(self, values: dict, name: str) -> np.ndarray | None:
        if not name:
            return None
        if name in values:
            return values[name]
        data = self.graph.tensors[name].data
        if data is None:
            raise RknnError(f"tensor '{name}' has no value (is an input missing?)")
        return data

    def compute(self, i: int, node: Node, args: list) -> list[np.ndarray]:
        """One node's outputs from its input values (subclasses change the arithmetic)."""
        return self.kernels[i](args, node.attrs)

    def _call(self, i: int, node: Node, args: list) -> list[np.ndarray]:
        try:
            return self.compute(i, node, args)
        except RknnError as exc:
            raise RknnError(f"node '{node.name}' ({node.op}) failed: {exc}") from None
        except Exception as exc:
            raise RknnError(f"node '{node.name}' ({node.op}) failed: {type(exc).__name__}: {exc}") from exc
