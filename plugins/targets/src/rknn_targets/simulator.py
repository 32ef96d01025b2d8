"""The PC simulator: runs a built model with the core's kernels and measures per-layer times."""

from __future__ import annotations

import statistics

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.model import RknnModel
from rknn_core.plugins import Registry
from rknn_core.runtime.executor import Executor
from rknn_core.runtime.qexecutor import QuantExecutor

PERF_RUNS = 5


class SimulatorRuntime:
    """``run`` computes outputs; ``perf`` times every layer; memory needs a device."""

    def __init__(self, model: RknnModel, registry: Registry, device_id: str | None = None,
                 perf_debug: bool = False, eval_mem: bool = False, async_mode: bool = False):
        if model.pre_compile:
            raise RknnError("this model was built with pre_compile=True, which only a device can run; "
                            "rebuild it with pre_compile=False to use the simulator")
        if device_id is not None:
            raise RknnError("init_runtime: device_id selects a connected device; the simulator (target=None) takes none")
        self.model = model
        executor_type = QuantExecutor if model.quantized_dtype else Executor
        self.executor = executor_type(model.graph, registry)
        self.async_mode = async_mode
        self._pending: list[np.ndarray] | None = None

    def _run_batch(self, feeds: dict[str, np.ndarray], times: list | None = None) -> list[np.ndarray]:
        batch = self.model.rknn_batch_size
        outputs = self.model.graph.outputs
        if batch == 1:
            values = self.executor.run(feeds, times)
            return [np.asarray(values[o]) for o in outputs]
        per_sample = []
        for b in range(batch):
            part = {k: v[b * (len(v) // batch):(b + 1) * (len(v) // batch)] for k, v in feeds.items()}
            values = self.executor.run(part, times)
            per_sample.append([np.asarray(values[o]) for o in outputs])
        return [np.concatenate([s[i] for s in per_sample]) for i in range(len(outputs))]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs for ``feeds``; in async mode, the previous call's outputs (the first call waits)."""
        result = self._run_batch(feeds)
        if not self.async_mode:
            return result
        previous, self._pending = self._pending, result
        return previous if previous is not None else result

    def perf(self, feeds: dict[str, np.ndarray] | None) -> dict:
        """Median per-layer wall time over a few runs, in microseconds."""
        if feeds is None:
            feeds = self._zero_feeds()
        self._run_batch(feeds)  # warm up caches and allocators
        runs = []
        for _ in range(PERF_RUNS):
            times: list = []
            self._run_batch(feeds, times)
            runs.append(times)
        nodes = self.model.graph.nodes
        index = {id(n): i for i, n in enumerate(nodes)}
        per_layer: dict[int, list[float]] = {}
        for times in runs:
            sums: dict[int, float] = {}
            for node, seconds in times:
                sums[index[id(node)]] = sums.get(index[id(node)], 0.0) + seconds
            for i, s in sums.items():
                per_layer.setdefault(i, []).append(s)
        layers = {i: {"name": nodes[i].name, "operation": nodes[i].op,
                      "time": int(round(statistics.median(ts) * 1e6))} for i, ts in sorted(per_layer.items())}
        return {"total_time": sum(layer["time"] for layer in layers.values()), "layers": layers}

    def _zero_feeds(self) -> dict[str, np.ndarray]:
        graph = self.model.graph
        return {name: np.zeros((graph.tensor(name).shape[0] * self.model.rknn_batch_size,
                                *graph.tensor(name).shape[1:]), graph.tensor(name).dtype) for name in graph.inputs}

    def memory(self) -> dict:
        raise RknnError("eval_memory measures memory on a device: call init_runtime(target='rk1808' or "
                        "another chip, eval_mem=True) with a connected device")

    def sdk_version(self) -> str:
        raise RknnError("get_sdk_version reports the driver of a connected device; the simulator has none")
