"""Standard architectures (MobileNetV2, ResNet18) as ONNX graphs with random weights.

They follow the published layer lists exactly (channels, strides, expansions, residuals), with
BatchNormalization and Clip(0, 6)/Relu as exporters emit them, for tests and benchmarks.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


class _Builder:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, kind: str) -> str:
        self.count += 1
        return f"{kind}_{self.count}"

    def const(self, kind: str, value: np.ndarray) -> str:
        name = self.name(kind)
        self.inits.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    def conv_bn(self, x: str, cin: int, cout: int, k: int, stride: int = 1, group: int = 1, act: str | None = "relu6") -> str:
        fan_in = cin // group * k * k
        w = self.const("w", self.rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2.0 / fan_in))
        y = self.name("conv")
        self.nodes.append(helper.make_node("Conv", [x, w], [y], kernel_shape=[k, k], strides=[stride, stride],
                                           pads=[k // 2] * 4, group=group, name=y))
        scale = self.const("bn_scale", 1 + 0.1 * self.rng.standard_normal(cout))
        bias = self.const("bn_bias", 0.1 * self.rng.standard_normal(cout))
        mean = self.const("bn_mean", 0.1 * self.rng.standard_normal(cout))
        var = self.const("bn_var", 1 + 0.1 * self.rng.random(cout))
        z = self.name("bn")
        self.nodes.append(helper.make_node("BatchNormalization", [y, scale, bias, mean, var], [z], name=z))
        if act is None:
            return z
        out = self.name(act)
        if act == "relu6":
            lo, hi = self.const("zero", np.array(0.0)), self.const("six", np.array(6.0))
            self.nodes.append(helper.make_node("Clip", [z, lo, hi], [out], name=out))
        else:
            self.nodes.append(helper.make_node("Relu", [z], [out], name=out))
        return out

    def add(self, a: str, b: str, relu: bool = False) -> str:
        out = self.name("add")
        self.nodes.append(helper.make_node("Add", [a, b], [out], name=out))
        if relu:
            r = self.name("relu")
            self.nodes.append(helper.make_node("Relu", [out], [r], name=r))
            return r
        return out

    def head(self, x: str, channels: int, classes: int) -> str:
        pooled, flat = self.name("gap"), self.name("flatten")
        self.nodes.append(helper.make_node("GlobalAveragePool", [x], [pooled], name=pooled))
        self.nodes.append(helper.make_node("Flatten", [pooled], [flat], axis=1, name=flat))
        w = self.const("fc_w", self.rng.standard_normal((classes, channels)) * np.sqrt(1.0 / channels))
        b = self.const("fc_b", 0.01 * self.rng.standard_normal(classes))
        logits = self.name("fc")
        self.nodes.append(helper.make_node("Gemm", [flat, w, b], [logits], transB=1, name=logits))
        self.nodes.append(helper.make_node("Softmax", [logits], ["prob"], axis=1, name="softmax"))
        return "prob"

    def model(self, name: str, size: int, classes: int, opset: int = 13) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name,
                                  [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, size, size])],
                                  [helper.make_tensor_value_info("prob", onnx.TensorProto.FLOAT, [1, classes])], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        return model


# (expansion t, channels c, repeats n, stride s) from the MobileNetV2 paper, table 2
MOBILENET_V2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenet_v2(size: int = 224, classes: int = 1000, width: float = 1.0, seed: int = 0) -> onnx.ModelProto:
    """MobileNetV2 (inverted residuals with linear bottlenecks)."""
    b = _Builder(seed)
    cin = int(32 * width)
    x = b.conv_bn("input", 3, cin, 3, 2)
    for t, c, n, s in MOBILENET_V2:
        cout = int(c * width)
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            y = x if t == 1 else b.conv_bn(x, cin, hidden, 1)
            y = b.conv_bn(y, hidden, hidden, 3, stride, group=hidden)
            y = b.conv_bn(y, hidden, cout, 1, act=None)
            x = b.add(x, y) if stride == 1 and cin == cout else y
            cin = cout
    last = int(1280 * max(width, 1.0))
    x = b.conv_bn(x, cin, last, 1)
    b.head(x, last, classes)
    return b.model("mobilenet_v2", size, classes)


def resnet18(size: int = 224, classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    """ResNet-18 (basic blocks [2, 2, 2, 2])."""
    b = _Builder(seed)
    x = b.conv_bn("input", 3, 64, 7, 2, act="relu")
    pooled = b.name("maxpool")
    b.nodes.append(helper.make_node("MaxPool", [x], [pooled], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    x, cin = pooled, 64
    for stage, cout in enumerate((64, 128, 256, 512)):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            y = b.conv_bn(x, cin, cout, 3, stride, act="relu")
            y = b.conv_bn(y, cout, cout, 3, 1, act=None)
            shortcut = x if stride == 1 and cin == cout else b.conv_bn(x, cin, cout, 1, stride, act=None)
            x = b.add(shortcut, y, relu=True)
            cin = cout
    b.head(x, cin, classes)
    return b.model("resnet18", size, classes)
