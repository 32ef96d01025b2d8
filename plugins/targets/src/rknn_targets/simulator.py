"""The PC simulator: runs a built model with the core's kernels; eval_perf / eval_memory answer with the
model's chip model (``Target.chip``) and keep the PC's own measured times beside them."""

from __future__ import annotations

import statistics

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.model import RknnModel
from rknn_core.platforms import chip_for
from rknn_core.plugins import Registry
from rknn_core.runtime.executor import Executor
from rknn_core.runtime.qexecutor import QuantExecutor

PERF_RUNS = 5
DEFAULT_CHIP = "rk1808"  # the vendor guide's default target platform


def operator_statistics(result: dict) -> dict[str, dict]:
    """perf_debug's per-operator table: layers, modelled time and share of the total per operation."""
    stats: dict[str, dict] = {}
    for layer in result["layers"].values():
        entry = stats.setdefault(layer["operation"].split(".")[0], {"count": 0, "time": 0})
        entry["count"] += 1
        entry["time"] += layer["time"]
    total = max(sum(e["time"] for e in stats.values()), 1)
    for entry in stats.values():
        entry["ratio"] = round(100.0 * entry["time"] / total, 2)
    return dict(sorted(stats.items(), key=lambda kv: -kv[1]["time"]))


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
        self.perf_debug = perf_debug
        self.registry = registry
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
        """The chip's modelled per-layer NPU time (the model's first target platform, rk1808 by default),
        with this PC's own measured time beside it as ``pc_time`` / ``pc_total_time``; without a chip model
        installed, only the PC's time (``chip`` None)."""
        measured = self._measure(feeds)
        chip = chip_for(self.model.target_platform or [DEFAULT_CHIP], self.registry)
        if chip is None:
            for layer in measured["layers"].values():
                layer["pc_time"] = layer["time"]
            return {**measured, "chip": None, "pc_total_time": measured["total_time"]}
        result = chip.perf(self.model)
        for layer in result["layers"].values():
            layer["pc_time"] = sum(measured["layers"].get(i, {}).get("time", 0) for i in layer["nodes"])
        result["pc_total_time"] = measured["total_time"]
        if self.perf_debug:
            result["operators"] = operator_statistics(result)
        return result

    def _measure(self, feeds: dict[str, np.ndarray] | None) -> dict:
        """Median per-layer wall time of this PC over a few runs, in microseconds."""
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
        graph, batch = self.model.graph, self.model.rknn_batch_size
        shapes = {name: tuple(graph.tensor(name).shape) for name in graph.inputs}
        return {name: np.zeros((shape[0] * batch, *shape[1:]) if shape else (), graph.tensor(name).dtype)
                for name, shape in shapes.items()}  # (a scalar input has no batch axis)

    def memory(self) -> dict:
        """The model's memory on its chip, estimated by the chip's memory model (a device measures it)."""
        chip = chip_for(self.model.target_platform or [DEFAULT_CHIP], self.registry)
        if chip is None:
            raise RknnError(f"eval_memory on the PC needs a target plugin that models {self.model.target_platform[0]} "
                            f"(pip install plugins/targets/rk18xx or plugins/targets/rv11xx); measuring needs "
                            f"init_runtime(target=<chip>, eval_mem=True) with a connected device")
        return chip.memory(self.model)

    def sdk_version(self) -> str:
        raise RknnError("get_sdk_version reports the driver of a connected device; the simulator has none")
