"""Per-layer NPU time: compute time against memory time, plus a fixed start-up cost per layer.

compute = effective MACs / (MACs per cycle of the dtype x utilisation x NPU clock); effective MACs
pad the output channels to the array's ``kernel_lanes`` and the input channels to its
``input_lanes`` (a first convolution with 3 input channels uses 3 of 16), count a dilated kernel
at the span it covers (3x3 at dilation 4 = 9x9 taps), and divide depthwise work by the depthwise
efficiency; layers without MACs run on the tensor unit at ``tensor_per_cycle`` elements per cycle.
memory = bytes over DDR / bandwidth, the bandwidth being the NPU port's bytes per NPU cycle (at most
the DDR's peak); the bytes are the layer's weights, the inputs it reads and the outputs it writes,
except activations that stay in the on-chip SRAM (a tensor read only by the next layer that fits in
half the SRAM) and the intermediate tensors of fused nodes; an input is re-read once per SRAM-sized
slice of weights when neither fits. time = max(compute, memory) + overhead; the layer is
``compute``, ``memory`` or ``overhead`` bound by the largest term. A CPU fallback layer costs the
switch plus its bytes and MACs at the CPU's throughputs. The features (MACs, bytes) do not depend
on the calibration, so fitting it is cheap (``feature_matrix`` + ``layer_times`` work on arrays).
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from rknn_core.ir import Graph
from rknn_targets.npu.fusion import ANCHORS, POOLS, Layer, base_op, fuse_layers

ELEMENT_BYTES = {"int8": 1, "int16": 2, "fp16": 2}


@attrs.frozen
class LayerFeatures:
    """What a layer asks of the chip, independent of the calibration."""

    layer: Layer
    dense_macs: float = 0.0      # array MACs after padding input channels to the array's depth and outputs to its lanes
    depthwise_macs: float = 0.0  # depthwise MACs (run at the depthwise efficiency)
    tensor_ops: float = 0.0      # elements the tensor unit processes (element-wise layers, pooling passes, activations)
    dram_bytes: float = 0.0
    cpu_bytes: float = 0.0       # bytes a CPU fallback layer touches
    cpu_macs: float = 0.0        # multiply-accumulates a CPU fallback layer computes (MatMul of two activations)

    def row(self) -> list[float]:
        return [self.dense_macs, self.depthwise_macs, self.tensor_ops, self.dram_bytes, self.cpu_bytes, self.cpu_macs,
                float(self.layer.device == "CPU")]


def model_dtype(quantized_dtype: str | None) -> str:
    """The MAC rate a build runs at: u8/i8 at int8, dfp16/i16 at int16, float at fp16."""
    if not quantized_dtype:
        return "fp16"
    return "int16" if "16" in quantized_dtype else "int8"


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape is not None else 0


def _padded(n: int, lanes: int) -> int:
    return math.ceil(n / lanes) * lanes


def _conv_macs(node, graph: Graph, chip) -> tuple[float, float]:
    """(dense, depthwise) effective MACs of a Conv/ConvTranspose/Gemm/MatMul node: the array computes
    ``kernel_lanes`` output channels from ``input_lanes`` input channels per step, so each is padded."""
    weight = graph.tensor(node.inputs[1]).shape
    out = graph.tensor(node.outputs[0]).shape
    if weight is None or out is None:
        return 0.0, 0.0
    lanes, depth = chip.kernel_lanes, chip.input_lanes
    op = base_op(node.op)
    if op in ("Gemm", "MatMul"):
        n_out = out[-1]
        rows = _size(out) // max(n_out, 1)
        k = _size(weight) // max(n_out, 1)
        return float(rows * _padded(n_out, lanes) * _padded(k, depth)), 0.0
    group = int(node.attrs.get("group", 1))
    cout, cin = weight[0], weight[1]
    # a dilated kernel runs as the dense kernel it spans, zeros included (3x3 at dilation 2 = 5x5 taps)
    dilations = [int(d) for d in node.attrs.get("dilations", [1] * len(weight[2:]))]
    taps = int(np.prod([(k - 1) * d + 1 for k, d in zip(weight[2:], dilations)]))
    if op == "ConvTranspose":  # each input pixel scatters a kernel: MACs over the input plane
        cout, cin = weight[1] * group, weight[0] // group
        spatial = _size(graph.tensor(node.inputs[0]).shape[2:])
    else:
        spatial = _size(out[2:])
    if group > 1 and cin == 1:  # depthwise: one input channel per output channel
        return 0.0, float(spatial * cout * taps)
    return float(spatial * _padded(cout // group, lanes) * group * _padded(cin, depth) * taps), 0.0


def layer_features(graph: Graph, chip, dtype: str, layers: list[Layer] | None = None) -> list[LayerFeatures]:
    """The features of every layer of ``graph`` on ``chip`` at ``dtype`` (``int8``/``int16``/``fp16``)."""
    layers = layers if layers is not None else fuse_layers(graph, chip)
    element = ELEMENT_BYTES[dtype]
    owner = {i: n for n, layer in enumerate(layers) for i in layer.nodes}
    producer = {out: owner[i] for i, node in enumerate(graph.nodes) for out in node.outputs}
    readers: dict[str, set[int]] = {}
    for i, node in enumerate(graph.nodes):
        for name in node.inputs:
            if name:
                readers.setdefault(name, set()).add(owner[i])
    half_sram = chip.sram_bytes // 2

    def on_chip(name: str) -> bool:
        """Written by one layer and read only by the next one, small enough to stay in SRAM."""
        users = readers.get(name, set())
        return (name in producer and name not in graph.outputs and len(users) == 1
                and next(iter(users)) == producer[name] + 1
                and _size(graph.tensor(name).shape) * element <= half_sram)

    features = []
    for n, layer in enumerate(layers):
        members = [graph.nodes[i] for i in layer.nodes]
        inside = {out for node in members for out in node.outputs}
        weights = sum(_size(graph.tensor(t).shape) * (4 if base_op(node.op) in ANCHORS and k == 2 else element)
                      for node in members for k, t in enumerate(node.inputs) if t and graph.tensor(t).is_const)
        inputs = {t for node in members for t in node.inputs if t and not graph.tensor(t).is_const and t not in inside}
        outputs = {t for t in inside if t in graph.outputs or readers.get(t, set()) - {n}}
        moved = [_size(graph.tensor(t).shape) * element for t in inputs | outputs if not on_chip(t)]
        activations = float(sum(moved))
        if layer.device == "CPU":
            touched = sum(_size(graph.tensor(t).shape) * element for t in inputs | outputs)
            macs = sum(_cpu_macs(node, graph) for node in members)
            features.append(LayerFeatures(layer, cpu_bytes=float(touched), cpu_macs=macs))
            continue
        dense = depthwise = tensor_ops = 0.0
        for node in members:
            op = base_op(node.op)
            if op in ANCHORS:
                d, w = _conv_macs(node, graph, chip)
                dense, depthwise = dense + d, depthwise + w
            elif op in POOLS and node is not members[0]:
                continue  # a pooling fused after a convolution works on the convolution's output tiles
            elif op not in ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"):
                passes = _pool_passes(node, chip) if op == "MaxPool" else 1
                tensor_ops += passes * max((_size(graph.tensor(t).shape) for t in node.inputs + node.outputs if t),
                                           default=0)
        reread = _input_rereads(weights, sum(_size(graph.tensor(t).shape) * element for t in inputs), half_sram)
        features.append(LayerFeatures(layer, dense, depthwise, tensor_ops, weights + activations * reread))
    return features


def _pool_passes(node, chip) -> int:
    """Max pooling above the native kernel runs as repeated native passes (a 5x5 pool = two 3x3 passes)."""
    k = max(int(v) for v in node.attrs.get("kernel_shape", [1]))
    native = chip.limits.max_pool_kernel
    return 1 if k <= native else math.ceil((k - 1) / (native - 1))


def _input_rereads(weight_bytes: float, input_bytes: float, half_sram: int) -> float:
    """How often the input is read: once, unless neither the weights nor the input fit on chip, when the
    input streams once per SRAM-sized slice of the weights."""
    if weight_bytes <= half_sram or input_bytes <= half_sram:
        return 1.0
    return float(math.ceil(weight_bytes / half_sram))


def _cpu_macs(node, graph: Graph) -> float:
    """MACs of a matrix product the CPU computes (two activations: attention's q^T k and its weighted sum)."""
    if base_op(node.op) != "MatMul":
        return 0.0
    a, out = graph.tensor(node.inputs[0]).shape, graph.tensor(node.outputs[0]).shape
    return float(_size(out) * a[-1]) if a is not None and out is not None else 0.0


def feature_matrix(features: list[LayerFeatures]) -> np.ndarray:
    """The features as rows (dense, depthwise, tensor, DDR bytes, CPU bytes, CPU MACs, on the CPU)."""
    return np.array([f.row() for f in features], dtype=np.float64).reshape(-1, 7)


def layer_times(rows: np.ndarray, chip, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(time, compute, memory, overhead) in microseconds per layer for ``feature_matrix`` rows on ``chip``.

    NPU layer: max(compute, memory) + overhead; compute = array MACs at the dtype's rate times the
    utilisation (depthwise MACs also divided by the depthwise efficiency) + tensor-unit elements at
    its rate; memory = DDR bytes at the NPU port's bytes per cycle (at most the DDR peak). CPU layer: the switch
    plus its bytes and MACs at the CPU's throughputs."""
    cal = chip.calibration
    dense, depthwise, tensor, dram, cpu_bytes, cpu_macs, on_cpu = rows.T
    rate = chip.macs_per_cycle[dtype] * cal.utilisation * chip.npu_mhz  # MACs per microsecond
    compute = (dense + depthwise / cal.depthwise_efficiency) / rate + tensor / (cal.tensor_per_cycle * chip.npu_mhz)
    memory = dram / min(chip.ddr_bytes_per_us, cal.bytes_per_cycle * chip.npu_mhz)
    overhead = np.full_like(dense, cal.layer_overhead_cycles / chip.npu_mhz)
    npu = np.maximum(compute, memory) + overhead
    cpu = chip.cpu_fallback_us + cpu_bytes / chip.cpu_bytes_per_us + cpu_macs / chip.cpu_macs_per_us
    cpu_layer = on_cpu > 0
    return (np.where(cpu_layer, cpu, npu), np.where(cpu_layer, 0.0, compute), np.where(cpu_layer, 0.0, memory),
            np.where(cpu_layer, chip.cpu_fallback_us, overhead))


def _bound(compute: float, memory: float, overhead: float, device: str) -> str:
    if device == "CPU":
        return "cpu"
    return max((("compute", compute), ("memory", memory), ("overhead", overhead)), key=lambda kv: kv[1])[0]


def model_perf(model, chip, dtype: str | None = None) -> dict:
    """The eval_perf dict of ``model`` on ``chip``: per layer (keyed by its anchor node's index) the modelled
    time in whole microseconds, its operation, bound and device; the total; the chip's clocks."""
    dtype = dtype or model_dtype(model.quantized_dtype)
    features = layer_features(model.graph, chip, dtype)
    times = layer_times(feature_matrix(features), chip, dtype)
    layers, total = {}, 0.0
    for f, time, compute, memory, overhead in zip(features, *(t.tolist() for t in times)):
        time *= model.rknn_batch_size
        total += time
        layers[f.layer.layer_id] = {"name": f.layer.name, "operation": f.layer.operation, "time": int(round(time)),
                                    "bound": _bound(compute, memory, overhead, f.layer.device),
                                    "device": f.layer.device, "nodes": list(f.layer.nodes),
                                    "compute_us": round(compute, 2), "memory_us": round(memory, 2),
                                    "overhead_us": round(overhead, 2)}
    return {"total_time": int(round(total)), "layers": layers, "chip": chip.name, "npu_mhz": chip.npu_mhz,
            "ddr_mhz": chip.ddr_mhz, "dtype": dtype, "total_time_exact": total}
