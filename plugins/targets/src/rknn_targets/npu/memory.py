"""Memory estimate: tensor lifetimes over the layer schedule and a buffer planner, as Arm Vela's tensor_allocation.

Activations that cross layers get one buffer each, live from the layer that writes them to the last
layer that reads them. The planner places buffers greedily, largest first, at the lowest offset that
overlaps no buffer alive at the same time (first fit); its peak is the activation arena. NPU memory
= weights in the build's dtype + arena (+ per-layer command buffers); its total allocation counts
every buffer separately. System memory = the runtime's base + the model file + the host input and
output buffers (float32); its total also counts the file read once before loading and the inputs and
outputs converted to and from the NPU's dtype. Every figure is an estimate: nothing measures a device.
"""

from __future__ import annotations

import json

import attrs
import numpy as np

from rknn_core.ir import Graph
from rknn_targets.npu.fusion import Layer, fuse_layers
from rknn_targets.npu.perf import ELEMENT_BYTES, model_dtype

ALIGN = 64                       # bytes; buffer offsets and sizes
COMMAND_BYTES_PER_LAYER = 4096   # estimate: one layer's descriptor and command buffer
MIB = 1024 * 1024


@attrs.frozen
class Buffer:
    """One tensor's buffer: its size and the first and last schedule steps it is alive in."""

    name: str
    size: int
    first: int
    last: int

    def overlaps(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan_buffers(buffers: list[Buffer]) -> tuple[dict[str, int], int]:
    """Offsets (greedy by size, first fit among buffers alive at the same time) and the peak arena size."""
    placed: list[tuple[int, Buffer]] = []
    offsets: dict[str, int] = {}
    for buf in sorted(buffers, key=lambda b: (-b.size, b.first, b.name)):
        offset = 0
        for start, other in sorted((p for p in placed if p[1].overlaps(buf)), key=lambda p: p[0]):
            if offset + buf.size <= start:
                break
            offset = max(offset, start + other.size)
        placed.append((offset, buf))
        offsets[buf.name] = offset
    peak = max((offset + buf.size for offset, buf in placed), default=0)
    return offsets, peak


def schedule(layers: list[Layer]) -> list[Layer]:
    """Execution order: a layer runs once its last node's inputs exist (by its last node's position)."""
    return sorted(layers, key=lambda layer: max(layer.nodes))


def tensor_buffers(graph: Graph, layers: list[Layer], element: int) -> list[Buffer]:
    """The buffers of the activations that cross layers (graph inputs from step 0, outputs to the end)."""
    order = schedule(layers)
    step = {i: s for s, layer in enumerate(order) for i in layer.nodes}
    first: dict[str, int] = {name: 0 for name in graph.inputs}
    last: dict[str, int] = {name: len(order) - 1 for name in graph.outputs}
    for i, node in enumerate(graph.nodes):
        for out in node.outputs:
            first.setdefault(out, step[i])
        for name in node.inputs:
            if name and not graph.tensor(name).is_const:
                last[name] = max(last.get(name, 0), step[i])
    inside = {out for layer in layers for i in layer.nodes[:-1] for out in graph.nodes[i].outputs}
    buffers = []
    for name, begin in first.items():
        if name in inside and name not in graph.outputs:
            continue  # an intermediate of fused nodes never leaves the NPU
        shape = graph.tensor(name).shape
        size = int(np.prod(shape, dtype=np.int64)) * element if shape is not None else 0
        buffers.append(Buffer(name, _aligned(size), begin, max(last.get(name, begin), begin)))
    return buffers


def model_size(model) -> int:
    """Bytes of the model's .rknn file (header, description and constants), as export_rknn writes it."""
    from rknn_core.fileformat import describe

    meta, chunks = describe(model)
    return 64 + _aligned(len(json.dumps(meta, separators=(",", ":")).encode())) + sum(len(c) for c in chunks)


def model_memory(model, chip) -> dict:
    """The eval_memory dict of ``model`` on ``chip`` (bytes), marked as an estimate."""
    graph = model.graph
    element = ELEMENT_BYTES[model_dtype(model.quantized_dtype)]
    layers = fuse_layers(graph, chip)
    npu_layers = [layer for layer in layers if layer.device == "NPU"]
    buffers = tensor_buffers(graph, layers, element)
    _offsets, arena = plan_buffers(buffers)
    weights = sum(_aligned(int(t.data.size) * element) for t in graph.tensors.values()
                  if t.is_const and not t.name.startswith("__program__."))  # pre_compile's copies replace them
    internal = COMMAND_BYTES_PER_LAYER * len(npu_layers)
    batch = model.rknn_batch_size
    host_io = sum(int(np.prod(graph.tensor(n).shape, dtype=np.int64)) * 4 * batch for n in graph.inputs + graph.outputs)
    size = model_size(model)
    base = int(chip.runtime_base_mib * MIB)
    npu = {"maximum_allocation": weights + arena * batch + internal,
           "total_allocation": weights + sum(b.size for b in buffers) * batch + internal}
    system = {"maximum_allocation": base + size + host_io, "total_allocation": base + 2 * size + 2 * host_io}
    return {"system_memory": system, "npu_memory": npu,
            "total_memory": {k: system[k] + npu[k] for k in system},
            "model_size": size, "estimate": True, "chip": chip.name,
            "weights": weights, "activation_peak": arena, "internal": internal}
