"""A model loaded on the agent and run with this package's own runtime (the core's kernels): its
segments as scheduler steps, perf (the chip model's times on an emulated device, measured times on a
board), memory measured during a run."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.model import RknnModel
from rknn_core.plugins import Registry
from rknn_server.segments import Segment, outputs_of, run_one, split


class ModelRunner:
    """One loaded model. ``chip`` is the emulated chip's model (``Target.chip``), or None on a board, where
    times are measured."""

    def __init__(self, model: RknnModel, registry: Registry, chip: Any, name: str, size: int):
        self.model, self.chip, self.name, self.size = model, chip, name, size
        self.segments = split(model, registry)
        self.modelled = chip.perf(model) if chip is not None else None
        self.segment_us = [self._modelled_us(s) for s in self.segments]

    def _modelled_us(self, segment: Segment) -> float | None:
        """The emulated chip's time for a segment: its layers' modelled times (layers keyed by anchor node)."""
        if self.modelled is None:
            return None
        return float(sum(layer["time"] for key, layer in self.modelled["layers"].items()
                         if segment.first <= int(key) <= segment.last))

    def _samples(self, feeds: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        batch = self.model.rknn_batch_size
        if batch == 1:
            return [feeds]
        return [{k: v[b * (len(v) // batch):(b + 1) * (len(v) // batch)] for k, v in feeds.items()} for b in range(batch)]

    def steps(self, feeds: dict[str, np.ndarray]) -> Iterator[tuple[str, float | None]]:
        """One inference as scheduler steps: yields (segment label, modelled microseconds or None) after
        running each segment; returns the outputs."""
        results = []
        count = len(self.segments)
        for sample in self._samples(self._check(feeds)):
            values = dict(sample)
            for segment in self.segments:
                run_one(segment, values)
                yield f"{self.name} segment {segment.index + 1}/{count}", self.segment_us[segment.index]
            results.append(outputs_of(self.segments, values, self.model.graph.outputs))
        if len(results) == 1:
            return results[0]
        return [np.concatenate([r[i] for r in results]) for i in range(len(results[0]))]

    def _check(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        graph = self.model.graph
        missing = [n for n in graph.inputs if n not in feeds]
        if missing or len(feeds) != len(graph.inputs):
            raise RknnError(f"the request gives inputs {sorted(feeds)}; the model takes {graph.inputs}")
        return feeds

    def zero_feeds(self) -> dict[str, np.ndarray]:
        graph, batch = self.model.graph, self.model.rknn_batch_size
        feeds = {}
        for name in graph.inputs:
            shape = tuple(graph.tensor(name).shape)
            feeds[name] = np.zeros((shape[0] * batch, *shape[1:]) if shape else (), graph.tensor(name).dtype)
        return feeds

    def measured_layers(self, feeds: dict[str, np.ndarray]) -> dict[int, float]:
        """Microseconds per node index of one run on this host (every segment, every sample)."""
        times: list = []
        index = {id(n): i for i, n in enumerate(self.model.graph.nodes)}
        for sample in self._samples(self._check(feeds)):
            values = dict(sample)
            for segment in self.segments:
                run_one(segment, values, times)
        per_node: dict[int, float] = {}
        for node, seconds in times:
            per_node[index[id(node)]] = per_node.get(index[id(node)], 0.0) + seconds * 1e6
        return per_node

    def perf(self, feeds: dict[str, np.ndarray] | None, perf_debug: bool) -> dict:
        """eval_perf on this device: without ``perf_debug`` only the total time, as the vendor's device does.
        An emulated chip's times are its performance model's; on a board they are measured here."""
        from rknn_targets.simulator import operator_statistics

        measured = self.measured_layers(self.zero_feeds() if feeds is None else feeds)
        if self.modelled is not None:
            result = {k: v for k, v in self.modelled.items() if k != "layers"}
            result["layers"] = {int(k): {**layer, "pc_time": int(round(sum(measured.get(i, 0.0) for i in layer["nodes"])))}
                                for k, layer in self.modelled["layers"].items()}
            result["pc_total_time"] = int(round(sum(measured.values())))
        else:
            nodes = self.model.graph.nodes
            layers = {i: {"name": nodes[i].name, "operation": nodes[i].op, "time": int(round(t))}
                      for i, t in sorted(measured.items())}
            result = {"total_time": sum(layer["time"] for layer in layers.values()), "chip": None, "layers": layers}
        if not perf_debug:
            return {"total_time": result["total_time"]}
        result["operators"] = operator_statistics(result)
        return result

    def memory(self) -> dict:
        """Memory measured during one inference on zeros: the model's constants plus the peak traced
        allocation (maximum), and the constants, every tensor the run produced and that peak's working
        memory (total). NPU memory is the
        emulated chip's memory model (none on a board running this runtime: it computes on the CPU)."""
        constants = sum(int(np.asarray(t.data).nbytes) for t in self.model.graph.tensors.values() if t.data is not None)
        feeds = self.zero_feeds()
        started = not tracemalloc.is_tracing()
        if started:
            tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            self.measured_layers(feeds)
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            if started:
                tracemalloc.stop()
        produced = 0
        for sample in self._samples(feeds):
            values = dict(sample)
            for segment in self.segments:
                produced += sum(int(np.asarray(v).nbytes) for v in run_one(segment, values, keep_all=True).values())
        system = {"maximum_allocation": constants + peak, "total_allocation": constants + produced + peak}
        npu = {"maximum_allocation": 0, "total_allocation": 0}
        if self.chip is not None:
            npu = dict(self.chip.memory(self.model).get("npu_memory", npu))
        total = {k: system[k] + npu.get(k, 0) for k in system}
        return {"system_memory": system, "npu_memory": npu, "total_memory": total, "model_size": self.size,
                "measured_on": "emulated " + self.chip.name if self.chip is not None else "board"}


def timed(step: Iterator[tuple[str, float | None]]) -> Iterator[tuple[str, float]]:
    """Steps with their duration: the modelled one, else the wall time the step took."""
    while True:
        start = time.perf_counter()
        try:
            label, modelled = next(step)
        except StopIteration as done:
            return done.value
        yield label, modelled if modelled is not None else (time.perf_counter() - start) * 1e6
