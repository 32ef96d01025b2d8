"""A model cut into segments at its sync points (``export_rknn_sync_model``): each segment is a graph of
consecutive nodes with its own executor, so the agent can run one segment, yield the NPU, and go on."""

from __future__ import annotations

import attrs
import numpy as np

from rknn_core.ir import Graph
from rknn_core.model import RknnModel
from rknn_core.plugins import Registry
from rknn_core.runtime.executor import Executor
from rknn_core.runtime.qexecutor import QuantExecutor


@attrs.frozen
class Segment:
    """Nodes ``first..last`` (inclusive) of the model, as a graph of their own."""

    index: int
    first: int
    last: int
    executor: Executor


def _boundaries(count: int, sync_uids: list[int]) -> list[tuple[int, int]]:
    cuts = sorted({u for u in sync_uids if 0 <= u < count - 1})
    starts = [0, *(u + 1 for u in cuts)]
    ends = [*cuts, count - 1]
    return list(zip(starts, ends))


def split(model: RknnModel, registry: Registry) -> list[Segment]:
    """The model's segments (one when it has no sync points); they share the model's tensor table."""
    graph = model.graph
    nodes = graph.nodes
    spans = _boundaries(len(nodes), list(model.extra.get("sync_uids") or [])) if nodes else []
    executor_type = QuantExecutor if model.quantized_dtype else Executor
    segments = []
    for index, (first, last) in enumerate(spans):
        part = nodes[first:last + 1]
        produced = {t for n in part for t in n.outputs if t}
        later = {t for n in nodes[last + 1:] for t in n.inputs if t} | set(graph.outputs)
        consumed = [t for n in part for t in n.inputs if t and t not in produced]
        inputs = list(dict.fromkeys(t for t in consumed if graph.tensors[t].data is None))
        outputs = [t for n in part for t in n.outputs if t and t in later]
        sub = Graph(f"{graph.name}#{index}", part, graph.tensors, inputs, outputs, graph.metadata)
        segments.append(Segment(index, first, last, executor_type(sub, registry)))
    return segments


def run_one(segment: Segment, values: dict[str, np.ndarray], times: list | None = None,
            keep_all: bool = False) -> dict[str, np.ndarray]:
    """Run one segment on the values computed so far (``values`` gains its outputs, which it returns);
    quantized values stay storage integers between segments. ``keep_all`` keeps every tensor it makes."""
    needed = {k: v for k, v in values.items() if k in segment.executor.graph.inputs}
    keep = [t for n in segment.executor.graph.nodes for t in n.outputs if t] if keep_all else ()
    made = Executor.run(segment.executor, needed, times, keep)  # the base run: no dequantization in between
    values.update(made)
    return {k: v for k, v in made.items() if k not in needed}


def outputs_of(segments: list[Segment], values: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
    """The model's outputs as real values (dequantized where stored quantized)."""
    real = getattr(segments[-1].executor, "real", None) if segments else None
    return [np.asarray(real(o, values[o]) if real else values[o]) for o in outputs]
