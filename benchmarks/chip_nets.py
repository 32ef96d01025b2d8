"""A small ONNX graph builder for the benchmark architectures (onnx.helper, zero weights: the NPU model needs shapes)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Net:
    """Builds an ONNX graph node by node and tracks every tensor's channel count."""

    def __init__(self, channels: int, height: int, width: int, act: str = "relu"):
        self.nodes, self.inits, self.channels, self.count = [], [], {"input": channels}, 0
        self.shape, self.act = (1, channels, height, width), act

    def _name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, stem: str, array: np.ndarray) -> str:
        name = self._name(stem)
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], channels: int, **attrs) -> str:
        out = self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        self.channels[out] = channels
        return out

    def activation(self, x: str, act: str | None) -> str:
        c = self.channels[x]
        if act == "relu":
            return self.node("Relu", [x], c)
        if act == "leaky":
            return self.node("LeakyRelu", [x], c, alpha=0.1)
        if act == "silu":
            return self.node("Mul", [x, self.node("Sigmoid", [x], c)], c)
        if act == "hardswish":
            return self.node("HardSwish", [x], c)
        if act == "sigmoid":
            return self.node("Sigmoid", [x], c)
        return x

    def conv(self, x: str, cout: int, k: int | tuple[int, int] = 1, s: int | tuple[int, int] = 1,
             act: str | None = "default", group: int = 1, pad: int | tuple[int, int] | None = None,
             dilation: int = 1) -> str:
        cin = self.channels[x]
        kh, kw = (k, k) if isinstance(k, int) else k
        sh, sw = (s, s) if isinstance(s, int) else s
        ph, pw = ((kh // 2) * dilation, (kw // 2) * dilation) if pad is None else (
            (pad, pad) if isinstance(pad, int) else pad)
        w = self.const("w", np.zeros((cout, cin // group, kh, kw), np.float32))
        b = self.const("b", np.zeros(cout, np.float32))
        y = self.node("Conv", [x, w, b], cout, kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, ph, pw],
                      group=group, dilations=[dilation, dilation])
        return self.activation(y, self.act if act == "default" else act)

    def dwconv(self, x: str, k: int = 3, s: int = 1, act: str | None = "default", dilation: int = 1) -> str:
        return self.conv(x, self.channels[x], k, s, act, group=self.channels[x], dilation=dilation)

    def deconv(self, x: str, cout: int, k: int = 2, s: int = 2, act: str | None = "default") -> str:
        w = self.const("w", np.zeros((self.channels[x], cout, k, k), np.float32))
        y = self.node("ConvTranspose", [x, w, self.const("b", np.zeros(cout, np.float32))], cout,
                      kernel_shape=[k, k], strides=[s, s])
        return self.activation(y, self.act if act == "default" else act)

    def bn(self, x: str) -> str:
        c = self.channels[x]
        params = [self.const("bn", np.full(c, v, np.float32)) for v in (1.0, 0.0, 0.0, 1.0)]
        return self.node("BatchNormalization", [x, *params], c)

    def add(self, a: str, b: str) -> str:
        return self.node("Add", [a, b], self.channels[a])

    def mul(self, a: str, b: str) -> str:
        return self.node("Mul", [a, b], self.channels[a])

    def concat(self, xs: list[str]) -> str:
        return self.node("Concat", xs, sum(self.channels[x] for x in xs), axis=1)

    def slice(self, x: str, start: int, end: int, axis: int = 1, step: int = 1) -> str:
        bounds = [self.const("s", np.array([v], np.int64)) for v in (start, end, axis, step)]
        channels = end - start if axis == 1 else self.channels[x]
        return self.node("Slice", [x, *bounds], channels)

    def maxpool(self, x: str, k: int, s: int) -> str:
        return self.node("MaxPool", [x], self.channels[x], kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4)

    def global_pool(self, x: str) -> str:
        return self.node("GlobalAveragePool", [x], self.channels[x])

    def upsample(self, x: str, factor: int = 2, mode: str = "nearest") -> str:
        scales = self.const("scales", np.array([1, 1, factor, factor], np.float32))
        return self.node("Resize", [x, "", scales], self.channels[x], mode=mode)

    def classifier(self, x: str, classes: int = 1000) -> str:
        pooled = self.node("Flatten", [self.global_pool(x)], self.channels[x])
        w = self.const("fc", np.zeros((classes, self.channels[x]), np.float32))
        return self.node("Gemm", [pooled, w, self.const("fcb", np.zeros(classes, np.float32))], classes, transB=1)

    def model(self, outputs: list[str]) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "net", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                    self.shape)],
                                  [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
                                  self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
        model.ir_version = 8
        return model


def csp_block(net: Net, x: str, c2: int, n: int, shortcut: bool = True) -> str:
    """The CSP bottleneck block (YOLOv5's C3, YOLOX's CSP layer): two 1x1 halves, ``n`` bottlenecks on one."""
    c = c2 // 2
    a, b = net.conv(x, c, 1), net.conv(x, c, 1)
    for _ in range(n):
        y = net.conv(net.conv(a, c, 1), c, 3)
        a = net.add(a, y) if shortcut else y
    return net.conv(net.concat([a, b]), c2, 1)


def spp_block(net: Net, x: str, c2: int, kernels: tuple[int, ...] = (5, 5, 5)) -> str:
    """Spatial pyramid pooling: max pools chained (SPPF, equal kernels) or side by side (SPP, (5, 9, 13))."""
    y = [net.conv(x, net.channels[x] // 2, 1)]
    for k in kernels:
        y.append(net.maxpool(y[-1] if len(set(kernels)) == 1 else y[0], k, 1))
    return net.conv(net.concat(y), c2, 1)
