"""Supported-op rules: per op, the constraint functions a node must pass to run on the NPU.

A check is ``check(node, graph, chip) -> str | None``: ``None`` when the node is fine, else the reason
it falls back to the CPU. An op without a rule has no NPU kernel and always runs on the CPU.
``standard_rules(limits)`` is the first-generation NPU's table; a chip plugin takes it and changes
what differs on its chip. SUPPORTED_OPS.md is generated from these tables (scripts/supported_ops.py).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from rknn_core.ir import Graph, Node

Check = Callable[[Node, Graph, object], "str | None"]
VIEW_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")  # no data movement on the NPU
ALIASES = {"TFLiteQuantizedConv": "Conv", "TFLiteQuantizedFullyConnected": "Gemm", "TFLiteQuantizedAdd": "Add",
           "TFLiteQuantizedMul": "Mul", "TFLiteQuantizedAveragePool": "AveragePool",
           "TFLiteQuantizedHardSwish": "HardSwish", "TFLiteIntegerMean": "GlobalAveragePool",
           "QuantizeLinear": "Cast", "DequantizeLinear": "Cast"}


@attrs.frozen
class OpRule:
    """One op the NPU runs: its constraint checks, the dtypes it runs in, and one line for SUPPORTED_OPS.md."""

    op: str
    checks: tuple[Check, ...] = ()
    doc: str = ""
    dtypes: tuple[str, ...] = ("u8", "i8", "i16", "fp16")
    fuses: str = ""  # what the NPU fuses into this op's layer

    def reason(self, node: Node, graph: Graph, chip: object) -> str | None:
        for check in self.checks:
            why = check(node, graph, chip)
            if why:
                return why
        return None


def _pair(value, default: int = 1) -> tuple[int, int]:
    if value is None:
        return default, default
    values = [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    return (values[0], values[-1]) if values else (default, default)


def _kernel(node: Node, graph: Graph) -> tuple[int, int]:
    if "kernel_shape" in node.attrs:
        return _pair(node.attrs["kernel_shape"])
    weight = graph.tensor(node.inputs[1]).shape if len(node.inputs) > 1 else None
    return (int(weight[2]), int(weight[3])) if weight is not None and len(weight) == 4 else (1, 1)


def conv_kernel(node: Node, graph: Graph, chip) -> str | None:
    """Kernel N x N with N <= max_kernel_per_stride * stride; stride and dilation within the limits."""
    limits = chip.limits
    (kh, kw), (sh, sw) = _kernel(node, graph), _pair(node.attrs.get("strides"))
    dh, dw = _pair(node.attrs.get("dilations"))
    if max(sh, sw) > limits.max_stride:
        return f"stride {max(sh, sw)} > {limits.max_stride}"
    if kh > limits.max_kernel_per_stride * sh or kw > limits.max_kernel_per_stride * sw:
        return f"kernel {kh}x{kw} > {limits.max_kernel_per_stride} x stride {sh}x{sw}"
    if max(dh, dw) > limits.max_dilation:
        return f"dilation {max(dh, dw)} > {limits.max_dilation}"
    return None


def conv_group(node: Node, graph: Graph, chip) -> str | None:
    """Plain, depthwise (multiplier 1) and grouped convolutions run; a depthwise multiplier > 1 does not."""
    group = int(node.attrs.get("group", 1))
    weight = graph.tensor(node.inputs[1]).shape
    if group > 1 and weight is not None and weight[1] == 1 and weight[0] != group:
        return f"depthwise channel multiplier {weight[0] // group} > 1"
    return None


def constant_weight(node: Node, graph: Graph, chip) -> str | None:
    """A fully connected layer / MatMul needs constant weights (two activations multiply on the CPU)."""
    if len(node.inputs) < 2 or not graph.tensor(node.inputs[1]).is_const:
        return "the second operand is not a constant weight"
    return None


def channels(node: Node, graph: Graph, chip) -> str | None:
    """At most ``max_channels`` channels (axis 1) on each input and output."""
    for name in (*node.inputs, *node.outputs):
        shape = graph.tensor(name).shape if name else None
        if shape is not None and len(shape) >= 2 and shape[1] > chip.limits.max_channels:
            return f"tensor '{name}' has {shape[1]} channels > {chip.limits.max_channels}"
    return None


def avg_pool_kernel(node: Node, graph: Graph, chip) -> str | None:
    """Local average pooling up to ``max_avg_pool_kernel``."""
    kh, kw = _pair(node.attrs.get("kernel_shape"))
    limit = chip.limits.max_avg_pool_kernel
    return f"average pool {kh}x{kw} > {limit}x{limit}" if max(kh, kw) > limit else None


def four_dims(node: Node, graph: Graph, chip) -> str | None:
    """Tensors of at most 4 dimensions (the NPU's NCHW descriptors)."""
    for name in node.outputs:
        shape = graph.tensor(name).shape
        if shape is not None and len(shape) > 4:
            return f"output '{name}' has {len(shape)} dimensions > 4"
    return None


def resize_mode(node: Node, graph: Graph, chip) -> str | None:
    """Nearest and bilinear resizing run; cubic does not."""
    mode = node.attrs.get("mode", "nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    return None if mode in ("nearest", "linear") else f"resize mode '{mode}'"


def standard_rules() -> dict[str, OpRule]:
    """The first-generation Rockchip NPU's op table (RK3399Pro NPU feature list, rknpu_ddk op list)."""
    conv = (conv_kernel, conv_group, channels)
    rules = [
        OpRule("Conv", conv, "convolution: N x N kernel, N <= 11 x stride; plain, grouped and depthwise",
               fuses="bias, Relu/Clip(Relu6)/LeakyRelu, BatchNormalization, a residual Add, a following pooling"),
        OpRule("ConvTranspose", conv, "deconvolution (as a convolution over the upsampled input)",
               fuses="bias, Relu/Clip/LeakyRelu"),
        OpRule("Gemm", (constant_weight,), "fully connected with constant weights", fuses="bias, Relu"),
        OpRule("MatMul", (constant_weight,), "matrix product with a constant right operand"),
        OpRule("MaxPool", (four_dims,), "max pooling; kernels above 3x3 run as repeated 3x3 passes"),
        OpRule("AveragePool", (avg_pool_kernel, four_dims), "local average pooling up to 11x11"),
        OpRule("GlobalAveragePool", (), "global average pooling"),
        OpRule("GlobalMaxPool", (), "global max pooling"),
        *[OpRule(op, (four_dims,), "element-wise (tensor unit)") for op in
          ("Add", "Sub", "Mul", "Max", "Min", "Relu", "Clip", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "HardSigmoid",
           "HardSwish", "Abs", "Neg", "BatchNormalization")],
        OpRule("Div", (constant_weight,), "division by a constant (as a multiplication)"),
        OpRule("Softmax", (four_dims,), "softmax (tensor unit)", dtypes=("i16", "fp16", "u8", "i8")),
        OpRule("LRN", (), "local response normalization"),
        OpRule("InstanceNormalization", (), "instance normalization"),
        OpRule("Concat", (four_dims,), "concatenation"),
        OpRule("Split", (four_dims,), "split"),
        OpRule("Slice", (four_dims,), "slice"),
        OpRule("Pad", (four_dims,), "constant padding"),
        OpRule("Transpose", (four_dims,), "permute"),
        OpRule("DepthToSpace", (), "depth to space"),
        OpRule("SpaceToDepth", (), "space to depth"),
        OpRule("Resize", (resize_mode, four_dims), "upsampling: nearest and bilinear"),
        OpRule("Gather", (), "gather along one axis"),
        OpRule("Cast", (), "data conversion"),
        *[OpRule(op, (), "view: no data movement") for op in VIEW_OPS],
    ]
    table = {rule.op: rule for rule in rules}
    for alias, op in ALIASES.items():  # integer-exact forms of imported quantized models run as their op
        table[alias] = attrs.evolve(table[op], op=alias, doc=f"as {op}: {table[op].doc}")
    return table


def node_reason(node: Node, graph: Graph, chip) -> str | None:
    """Why ``node`` runs on the CPU of ``chip``, or None when the NPU runs it."""
    rule = chip.rules.get(node.op)
    if rule is None:
        return f"{node.op} has no NPU kernel on {chip.name}"
    return rule.reason(node, graph, chip)


def fallback_nodes(graph: Graph, chip) -> list[tuple[Node, str]]:
    """The nodes of ``graph`` that fall back to the CPU of ``chip``, with the reason."""
    found = []
    for node in graph.nodes:
        why = node_reason(node, graph, chip)
        if why:
            found.append((node, why))
    return found
