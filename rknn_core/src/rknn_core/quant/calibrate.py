"""Run the float graph over the calibration samples and collect each tensor's value range."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from rknn_core.ir import Graph
from rknn_core.plugins import Registry
from rknn_core.runtime.executor import Executor


class RangeObserver:
    """Running min/max of every observed tensor (the vendor's ``normal`` algorithm)."""

    def __init__(self) -> None:
        self.low: dict[str, float] = {}
        self.high: dict[str, float] = {}

    def update(self, name: str, value: np.ndarray) -> None:
        if value.size == 0:
            return
        lo, hi = float(np.min(value)), float(np.max(value))
        self.low[name] = min(lo, self.low.get(name, lo))
        self.high[name] = max(hi, self.high.get(name, hi))

    def ranges(self) -> dict[str, tuple[float, float]]:
        return {name: (self.low[name], self.high[name]) for name in self.low}


def float_tensors(graph: Graph) -> list[str]:
    """Activation tensors that quantization covers: graph inputs and node outputs of float dtype."""
    names = list(graph.inputs) + [o for node in graph.nodes for o in node.outputs if o]
    return [n for n in names if n in graph.tensors and np.dtype(graph.tensors[n].dtype).kind == "f"]


def observe(graph: Graph, registry: Registry, feeds: Iterable[dict[str, np.ndarray]], observer: RangeObserver) -> int:
    """Feed every sample through the float graph; returns the number of samples seen."""
    executor = Executor(graph, registry)
    names = float_tensors(graph)
    count = 0
    for feed in feeds:
        values = executor.run(feed, keep=names)
        for name in names:
            if name in values:
                observer.update(name, np.asarray(values[name]))
        count += 1
    return count
