"""pre_compile: the lowered program a device loads without compiling.

``compile_program`` fuses the layers, schedules them, plans the activation buffers and re-lays the
convolution weights channel-blocked (``[ceil(O / lanes), I, kH, kW, lanes]``, output channels padded
with zeros to the array's kernel lanes), as the NPU reads them. ``build(pre_compile=True)`` stores
the program in the .rknn file: its description under ``extra["program"]`` (versioned by
``version``) and the blocked weights as constant tensors ``__program__.<weight>`` (file blobs, read
zero-copy). ``load_program`` is the device path: the runnable schedule from the stored program alone.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from rknn_core.errors import RknnError
from rknn_targets.npu.fusion import base_op, fuse_layers
from rknn_targets.npu.memory import ELEMENT_BYTES, plan_buffers, schedule, tensor_buffers
from rknn_targets.npu.perf import model_dtype

PROGRAM_VERSION = 1


def blocked(weight: np.ndarray, lanes: int) -> np.ndarray:
    """``[O, I, kH, kW]`` as ``[ceil(O / lanes), I, kH, kW, lanes]``, padded output channels zero."""
    weight = np.asarray(weight)
    out = weight.shape[0]
    padded = np.zeros((math.ceil(out / lanes) * lanes, *weight.shape[1:]), weight.dtype)
    padded[:out] = weight
    return np.ascontiguousarray(np.moveaxis(padded.reshape(-1, lanes, *weight.shape[1:]), 1, -1))


def unblocked(weight: np.ndarray, out_channels: int) -> np.ndarray:
    """The inverse of :func:`blocked`."""
    return np.moveaxis(weight, -1, 1).reshape(-1, *weight.shape[1:-1])[:out_channels]


def compile_program(model, chip) -> dict:
    """The lowered program of ``model`` for ``chip``; adds the blocked weights to the model's graph."""
    graph = model.graph
    dtype = model_dtype(model.quantized_dtype)
    layers = fuse_layers(graph, chip)
    buffers = tensor_buffers(graph, layers, ELEMENT_BYTES[dtype])
    offsets, arena = plan_buffers(buffers)
    weights = {}
    for layer in layers:
        node = graph.nodes[layer.nodes[0]]
        if layer.device == "NPU" and base_op(node.op) == "Conv" and graph.tensor(node.inputs[1]).is_const:
            weights[node.inputs[1]] = graph.add_const(f"__program__.{node.inputs[1]}",
                                                      blocked(graph.tensor(node.inputs[1]).data, chip.kernel_lanes))
    steps = []
    for layer in schedule(layers):
        nodes = [graph.nodes[i] for i in layer.nodes]
        inside = {o for n in nodes for o in n.outputs}
        steps.append({"id": layer.layer_id, "name": layer.name, "operation": layer.operation,
                      "device": layer.device, "nodes": list(layer.nodes),
                      "inputs": sorted({t for n in nodes for t in n.inputs
                                        if t and t not in inside and not graph.tensor(t).is_const}),
                      "weights": [t for n in nodes for t in n.inputs if t in weights]})
    return {"version": PROGRAM_VERSION, "chip": chip.name, "dtype": dtype, "kernel_lanes": chip.kernel_lanes,
            "layers": steps, "buffers": {b.name: {"offset": offsets[b.name], "size": b.size} for b in buffers},
            "arena_size": arena, "weights": weights}


@attrs.frozen
class LoadedProgram:
    """What a device runs: the layer steps in order, the buffer plan and the blocked weights."""

    chip: str
    steps: tuple[dict, ...]
    buffers: dict[str, tuple[int, int]]
    arena_size: int
    weights: dict[str, np.ndarray]


def load_program(model, chip_name: str | None = None) -> LoadedProgram:
    """The runnable form of ``model``'s stored program, without fusing, planning or re-laying anything."""
    program = model.extra.get("program")
    if not program:
        raise RknnError("this model has no pre-compiled program: build it with pre_compile=True")
    if program.get("version", 0) > PROGRAM_VERSION:
        raise RknnError(f"the model's pre-compiled program has version {program['version']}, newer than this "
                        f"target's {PROGRAM_VERSION}: upgrade rknn-targets")
    if chip_name is not None and program["chip"] != chip_name:
        raise RknnError(f"the model was pre-compiled for {program['chip']}, not {chip_name}: build it again "
                        f"with config(target_platform=['{chip_name}'])")
    steps = tuple(program["layers"])
    stored = program["weights"]
    missing = sorted(w for s in steps for w in s["weights"] if stored.get(w) not in model.graph.tensors)
    if missing:
        raise RknnError(f"the model's pre-compiled program lacks the blocked weights of {missing}")
    return LoadedProgram(program["chip"], steps,
                         {k: (v["offset"], v["size"]) for k, v in program["buffers"].items()},
                         int(program["arena_size"]), {k: model.graph.tensor(v).data for k, v in stored.items()})

