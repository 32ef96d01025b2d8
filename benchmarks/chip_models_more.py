"""More published architectures of the rknn_model_zoo benchmark table, as ONNX graphs (zero weights).

YOLOv6 3.0 (n/s: EfficientRep + RepPAN with re-parameterised 3x3 convolutions and ReLU; m: CSP
blocks of RepVGG bottlenecks), YOLOv7 (tiny: ELAN with LeakyReLU; full: ELAN, MP and SPPCSPC with
SiLU), YOLOX (Focus, CSPDarknet, PAFPN, decoupled heads), PP-YOLOE+ (CSPRepResNet with effective SE,
CustomCSPPAN, ESE heads), YOLO11 (C3k2, C2PSA attention, depthwise class heads), DeepLabv3
MobileNetV2 (output stride 8, dilated, image pooling), LPRNet (24x94, channel max pooling) and
PP-OCRv4 detection (PP-LCNetV3 0.75, RSE-FPN, DB head) at their published input sizes. The
structure follows each project's model definition; shapes and MACs are what the NPU model needs.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from chip_nets import Net, csp_block, spp_block


def _scaled(channels: tuple[int, ...], width: float, limit: int = 10_000) -> list[int]:
    return [max(8, math.ceil(min(c, limit) * width / 8) * 8) for c in channels]


def _repeats(n: int, depth: float) -> int:
    return max(round(n * depth), 1)


def _heads(net: Net, levels: list[str], width: int, reg: int, classes: int = 80, stem: bool = True) -> list[str]:
    """Decoupled heads (YOLOX / YOLOv6): a 1x1 stem, two 3x3 (YOLOX) or one 3x3 (YOLOv6) per branch,
    box regression and Sigmoid class scores per level."""
    outputs = []
    for level in levels:
        x = net.conv(level, width, 1) if stem else level
        cls, box = x, x
        for _ in range(2 if reg == 4 else 1):
            cls, box = net.conv(cls, width, 3), net.conv(box, width, 3)
        outputs += [net.conv(box, reg, 1, act=None), net.activation(net.conv(cls, classes, 1, act=None), "sigmoid")]
    return outputs


# ---------------------------------------------------------------- YOLOv6 3.0
def _rep_block(net: Net, x: str, c: int, n: int) -> str:
    for _ in range(n):
        x = net.conv(x, c, 3)
    return x


def _bep_c3(net: Net, x: str, c: int, n: int) -> str:
    """BepC3 (YOLOv6-m): two 1x1 branches of 2/3 width, RepVGG bottlenecks (two 3x3 + shortcut), 1x1."""
    mid = int(c * 2 / 3)
    a, b = net.conv(x, mid, 1), net.conv(x, mid, 1)
    for _ in range(max(n // 2, 1)):
        a = net.add(a, net.conv(net.conv(a, mid, 3), mid, 3))
    return net.conv(net.concat([a, b]), c, 1)


def yolov6(width: float, depth: float, csp: bool = False, size: int = 640) -> onnx.ModelProto:
    net = Net(3, size, size, "relu")
    ch = _scaled((64, 128, 256, 512, 1024), width)
    neck = _scaled((256, 128, 128, 256, 256, 512), width)
    block = _bep_c3 if csp else _rep_block
    x = net.conv("input", ch[0], 3, 2)
    feats = []
    for c, n in zip(ch[1:], (6, 12, 18, 6)):
        x = block(net, net.conv(x, c, 3, 2), c, _repeats(n, depth))
        feats.append(x)
    p3, p4, p5 = feats[1], feats[2], spp_block(net, feats[3], ch[4])
    r0 = net.conv(p5, neck[0], 1)
    f4 = block(net, net.conv(net.concat([net.upsample(r0), p4, net.conv(p3, neck[0], 3, 2)]), neck[0], 1),
               neck[0], _repeats(12, depth))
    r1 = net.conv(f4, neck[1], 1)
    o3 = block(net, net.conv(net.concat([net.upsample(r1), p3, net.conv(feats[0], neck[1], 3, 2)]), neck[1], 1),
               neck[1], _repeats(12, depth))
    o4 = block(net, net.concat([net.conv(o3, neck[2], 3, 2), r1]), neck[3], _repeats(12, depth))
    o5 = block(net, net.concat([net.conv(o4, neck[4], 3, 2), r0]), neck[5], _repeats(12, depth))
    outputs = []
    for o in (o3, o4, o5):
        outputs += _heads(net, [o], net.channels[o], 68 if csp else 4)
    return net.model(outputs)


# ---------------------------------------------------------------- YOLOv7
def _elan(net: Net, x: str, mid: int, out: int, chain: int, deep: int, taps: tuple[int, ...]) -> str:
    """ELAN: two 1x1 branches of ``mid`` channels, a chain of ``deep`` 3x3 convolutions of ``chain`` channels
    on the second; the branches and the chain outputs at ``taps`` are concatenated and mixed by a 1x1."""
    a, b = net.conv(x, mid, 1), net.conv(x, mid, 1)
    y, keep = b, [a, b]
    for i in range(deep):
        y = net.conv(y, chain, 3)
        if i + 1 in taps:
            keep.append(y)
    return net.conv(net.concat(keep[::-1]), out, 1)


def _pool2(net: Net, x: str) -> str:
    return net.node("MaxPool", [x], net.channels[x], kernel_shape=[2, 2], strides=[2, 2])


def _mp(net: Net, x: str, c: int) -> str:
    """YOLOv7 MP block: max pool + 1x1 beside 1x1 + strided 3x3, concatenated."""
    pooled = net.conv(_pool2(net, x), c, 1)
    return net.concat([net.conv(net.conv(x, c, 1), c, 3, 2), pooled])


def yolov7(tiny: bool, size: int = 640) -> onnx.ModelProto:
    if tiny:
        net = Net(3, size, size, "leaky")
        x = net.conv(net.conv("input", 32, 3, 2), 64, 3, 2)
        feats = []
        for i, c in enumerate((64, 128, 256, 512)):
            x = _elan(net, _pool2(net, x) if i else x, c // 2, c, c // 2, 2, (1, 2))
            feats.append(x)
        sppf = spp_block(net, feats[3], 256, (5, 9, 13))
        p5 = net.conv(net.concat([sppf, net.conv(feats[3], 256, 1)]), 256, 1)
        h4 = _elan(net, net.concat([net.upsample(net.conv(p5, 128, 1)), net.conv(feats[2], 128, 1)]), 64, 128, 64, 2,
                   (1, 2))
        o3 = _elan(net, net.concat([net.upsample(net.conv(h4, 64, 1)), net.conv(feats[1], 64, 1)]), 32, 64, 32, 2,
                   (1, 2))
        o4 = _elan(net, net.concat([net.conv(o3, 128, 3, 2), h4]), 64, 128, 64, 2, (1, 2))
        o5 = _elan(net, net.concat([net.conv(o4, 256, 3, 2), p5]), 128, 256, 128, 2, (1, 2))
        heads = [net.conv(o, 2 * net.channels[o], 3) for o in (o3, o4, o5)]
    else:
        net = Net(3, size, size, "silu")
        x = net.conv(net.conv(net.conv(net.conv("input", 32, 3), 64, 3, 2), 64, 3), 128, 3, 2)
        x = _elan(net, x, 64, 256, 64, 4, (2, 4))
        feats = []
        for mid, out in ((128, 512), (256, 1024), (256, 1024)):
            x = _elan(net, _mp(net, x, net.channels[x] // 2), mid, out, mid, 4, (2, 4))
            feats.append(x)
        c5 = feats[2]
        main = net.conv(net.conv(net.conv(c5, 512, 1), 512, 3), 512, 1)
        spp = net.conv(net.conv(net.concat([main, *[net.maxpool(main, k, 1) for k in (5, 9, 13)]]), 512, 1), 512, 3)
        p5 = net.conv(net.concat([spp, net.conv(c5, 512, 1)]), 512, 1)
        every = (1, 2, 3, 4)
        h4 = _elan(net, net.concat([net.conv(feats[1], 256, 1), net.upsample(net.conv(p5, 256, 1))]), 256, 256, 128,
                   4, every)
        o3 = _elan(net, net.concat([net.conv(feats[0], 128, 1), net.upsample(net.conv(h4, 128, 1))]), 128, 128, 64,
                   4, every)
        o4 = _elan(net, net.concat([_mp(net, o3, 128), h4]), 256, 256, 128, 4, every)
        o5 = _elan(net, net.concat([_mp(net, o4, 256), p5]), 512, 512, 256, 4, every)
        heads = [net.conv(o, 2 * net.channels[o], 3) for o in (o3, o4, o5)]
    return net.model([net.conv(h, 255, 1, act=None) for h in heads])


# ---------------------------------------------------------------- YOLOX
def _pafpn(net: Net, p3: str, p4: str, p5: str, ch: list[int], n: int) -> list[str]:
    """YOLOv5/YOLOX PAFPN: top-down with 1x1 lateral convolutions, bottom-up with strided 3x3."""
    h10 = net.conv(p5, ch[3], 1)
    h14 = net.conv(csp_block(net, net.concat([net.upsample(h10), p4]), ch[3], n, False), ch[2], 1)
    o3 = csp_block(net, net.concat([net.upsample(h14), p3]), ch[2], n, False)
    o4 = csp_block(net, net.concat([net.conv(o3, ch[2], 3, 2), h14]), ch[3], n, False)
    o5 = csp_block(net, net.concat([net.conv(o4, ch[3], 3, 2), h10]), ch[4], n, False)
    return [o3, o4, o5]


def yolox(width: float, depth: float, size: int = 640) -> onnx.ModelProto:
    net = Net(3, size, size, "silu")
    ch = _scaled((64, 128, 256, 512, 1024), width)
    n = _repeats(3, depth)
    quarters = [net.slice(net.slice("input", dy, size, 2, 2), dx, size, 3, 2) for dy, dx in ((0, 0), (1, 0), (0, 1),
                                                                                               (1, 1))]
    for q in quarters:
        net.channels[q] = 3
    x = net.conv(net.concat(quarters), ch[0], 3)  # Focus: space-to-depth by strided slices, then 3x3
    x = csp_block(net, net.conv(x, ch[1], 3, 2), ch[1], n)
    p3 = csp_block(net, net.conv(x, ch[2], 3, 2), ch[2], 3 * n)
    p4 = csp_block(net, net.conv(p3, ch[3], 3, 2), ch[3], 3 * n)
    p5 = csp_block(net, spp_block(net, net.conv(p4, ch[4], 3, 2), ch[4], (5, 9, 13)), ch[4], n, False)
    levels = _pafpn(net, p3, p4, p5, ch, n)
    outputs = []
    for level in levels:  # reg 4, objectness and classes through Sigmoid, concatenated per level
        box, cls = _heads(net, [level], ch[2], 4)
        obj = net.activation(net.conv(net.conv(net.conv(level, ch[2], 1), ch[2], 3), 1, 1, act=None), "sigmoid")
        outputs.append(net.concat([box, obj, cls]))
    return net.model(outputs)


# ---------------------------------------------------------------- PP-YOLOE+
def _ese(net: Net, x: str) -> str:
    """Effective squeeze-excitation: global pool, 1x1, HardSigmoid, scale."""
    gate = net.node("HardSigmoid", [net.conv(net.global_pool(x), net.channels[x], 1, act=None)], net.channels[x])
    return net.mul(x, gate)


def _csp_res(net: Net, x: str, c_out: int, n: int, down: bool, shortcut: bool = True) -> str:
    mid = (net.channels[x] + c_out) // 2 if down else c_out
    if down:
        x = net.conv(x, mid, 3, 2)
    a, b = net.conv(x, mid // 2, 1), net.conv(x, mid // 2, 1)
    for _ in range(n):
        y = net.conv(net.conv(b, mid // 2, 3), mid // 2, 3)
        b = net.add(b, y) if shortcut else y
    y = net.concat([a, b])
    return net.conv(_ese(net, y) if down else y, c_out, 1)


def ppyoloe(width: float, depth: float, size: int = 640) -> onnx.ModelProto:
    net = Net(3, size, size, "silu")
    ch = _scaled((64, 128, 256, 512, 1024), width)
    x = net.conv(net.conv(net.conv("input", ch[0] // 2, 3, 2), ch[0] // 2, 3), ch[0], 3)
    feats = []
    for c, n in zip(ch[1:], (3, 6, 6, 3)):
        x = _csp_res(net, x, c, _repeats(n, depth), True)
        feats.append(x)
    neck = _scaled((768, 384, 192), width)
    n = _repeats(3, depth)
    top = _csp_res(net, spp_block(net, feats[3], neck[0], (5, 9, 13)), neck[0], n, False, False)
    route = net.conv(top, neck[1] // 2, 1)
    f4 = _csp_res(net, net.concat([net.upsample(route), feats[2]]), neck[1], n, False, False)
    route = net.conv(f4, neck[2] // 2, 1)
    o3 = _csp_res(net, net.concat([net.upsample(route), feats[1]]), neck[2], n, False, False)
    o4 = _csp_res(net, net.concat([net.conv(o3, neck[2], 3, 2), f4]), neck[1], n, False, False)
    o5 = _csp_res(net, net.concat([net.conv(o4, neck[1], 3, 2), top]), neck[0], n, False, False)
    outputs = []
    for o in (o3, o4, o5):  # ESE attention then a 3x3 prediction, classes through Sigmoid, box as 4 x 17 bins
        c = net.channels[o]
        cls = net.add(net.conv(net.mul(o, net.activation(net.conv(net.global_pool(o), c, 1, act=None), "sigmoid")),
                               c, 1), o)
        box = net.conv(net.mul(o, net.activation(net.conv(net.global_pool(o), c, 1, act=None), "sigmoid")), c, 1)
        outputs += [net.activation(net.conv(cls, 80, 3, act=None), "sigmoid"), net.conv(box, 68, 3, act=None)]
    return net.model(outputs)


# ---------------------------------------------------------------- YOLO11
def _c3k2(net: Net, x: str, c2: int, n: int, c3k: bool, e: float = 0.5) -> str:
    c = int(c2 * e)
    y = net.conv(x, 2 * c, 1)
    parts = [net.slice(y, 0, c), net.slice(y, c, 2 * c)]
    for _ in range(n):
        z = parts[-1]
        if c3k:  # C3k: a C3 of two bottlenecks
            z = csp_block(net, z, c, 2)
        else:
            z = net.add(z, net.conv(net.conv(z, c // 2 * 2, 3), c, 3))
        parts.append(z)
    return net.conv(net.concat(parts), c2, 1)


def _c2psa(net: Net, x: str, c2: int, n: int, side: int) -> str:
    """C2PSA: half the channels through position-sensitive attention (q, k, v by a 1x1, softmax(q^T k) v,
    a depthwise positional 3x3) and a feed-forward pair of 1x1 convolutions."""
    c = c2 // 2
    y = net.conv(x, 2 * c, 1)
    a, b = net.slice(y, 0, c), net.slice(y, c, 2 * c)
    heads = max(c // 64, 1)
    key_dim = c // heads // 2
    for _ in range(n):
        qkv = net.conv(b, c + 2 * key_dim * heads, 1, act=None)
        hw = net.const("shape", np.array([1, heads, key_dim * 2 + c // heads, -1], np.int64))
        qkv4 = net.node("Reshape", [qkv, hw], heads)
        q = net.slice(qkv4, 0, key_dim, 2)
        k = net.slice(qkv4, key_dim, 2 * key_dim, 2)
        v = net.slice(qkv4, 2 * key_dim, 2 * key_dim + c // heads, 2)
        attn = net.node("Softmax", [net.node("MatMul", [net.node("Transpose", [q], heads, perm=[0, 1, 3, 2]), k],
                                             heads)], heads, axis=-1)
        out = net.node("MatMul", [v, net.node("Transpose", [attn], heads, perm=[0, 1, 3, 2])], heads)
        back = net.const("shape", np.array([1, c, side, side], np.int64))
        out = net.node("Reshape", [out, back], c)
        v_img = net.node("Reshape", [v, back], c)
        out = net.add(out, net.dwconv(v_img, 3, act=None))
        b = net.add(b, net.conv(out, c, 1, act=None))
        b = net.add(b, net.conv(net.conv(b, 2 * c, 1), c, 1, act=None))
    return net.conv(net.concat([a, b]), c2, 1)


def yolo11(width: float, depth: float, max_channels: int, deep: bool = False, size: int = 640) -> onnx.ModelProto:
    """YOLO11; ``deep``: the m/l/x scales' C3k blocks inside every C3k2."""
    net = Net(3, size, size, "silu")
    ch = _scaled((64, 128, 256, 512, 1024), width, max_channels)
    x = net.conv(net.conv("input", ch[0], 3, 2), ch[1], 3, 2)
    x = _c3k2(net, x, _scaled((256,), width, max_channels)[0], _repeats(2, depth), deep, 0.25)
    p3 = _c3k2(net, net.conv(x, ch[2], 3, 2), _scaled((512,), width, max_channels)[0], _repeats(2, depth), deep, 0.25)
    p4 = _c3k2(net, net.conv(p3, ch[3], 3, 2), ch[3], _repeats(2, depth), True)
    p5 = _c3k2(net, net.conv(p4, ch[4], 3, 2), ch[4], _repeats(2, depth), True)
    p5 = _c2psa(net, spp_block(net, p5, ch[4]), ch[4], _repeats(2, depth), size // 32)
    h4 = _c3k2(net, net.concat([net.upsample(p5), p4]), ch[3], _repeats(2, depth), deep)
    o3 = _c3k2(net, net.concat([net.upsample(h4), p3]), ch[2], _repeats(2, depth), deep)
    o4 = _c3k2(net, net.concat([net.conv(o3, ch[2], 3, 2), h4]), ch[3], _repeats(2, depth), deep)
    o5 = _c3k2(net, net.concat([net.conv(o4, ch[3], 3, 2), p5]), ch[4], _repeats(2, depth), True)
    c2, c3 = max(16, ch[2] // 4, 64), max(ch[2], 80)
    outputs = []
    for o in (o3, o4, o5):  # box as YOLOv8; classes through depthwise + pointwise pairs
        outputs.append(net.conv(net.conv(net.conv(o, c2, 3), c2, 3), 64, 1, act=None))
        cls = o
        for _ in range(2):
            cls = net.conv(net.dwconv(cls, 3), c3, 1)
        outputs.append(net.activation(net.conv(cls, 80, 1, act=None), "sigmoid"))
    return net.model(outputs)


# ---------------------------------------------------------------- segmentation and OCR
def deeplabv3_mobilenet_v2(size: int = 513) -> onnx.ModelProto:
    """TensorFlow DeepLab v3 MobileNetV2 (output stride 8): stages after stride 8 dilated, image pooling and
    a 1x1 branch, 1x1 to the 21 classes at 65x65."""
    net = Net(3, size, size, "relu")
    x = net.conv("input", 32, 3, 2)
    rate = 1
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1)):
        for i in range(n):
            cin, stride = net.channels[x], s if i == 0 else 1
            dilation = rate
            if stride == 2 and c in (64, 160):  # output stride 8: the stride becomes dilation
                stride, rate = 1, rate * 2
                dilation = rate if i else dilation
            y = net.conv(x, cin * t, 1) if t != 1 else x
            y = net.conv(y, cin * t, 3, stride, group=cin * t, dilation=dilation)
            y = net.conv(y, c, 1, act=None)
            x = net.add(x, y) if stride == 1 and cin == c else y
    pooled = net.conv(net.global_pool(x), 256, 1)
    pooled = net.node("Resize", [pooled, "", "", net.const("size", np.array([1, 256, 65, 65], np.int64))], 256,
                      mode="linear")
    y = net.conv(net.concat([pooled, net.conv(x, 256, 1)]), 256, 1)
    return net.model([net.conv(y, 21, 1, act=None)])


def lprnet() -> onnx.ModelProto:
    """LPRNet (sirius-ai LPRNet_Pytorch) at 24x94: small basic blocks of 1x1 / 3x1 / 1x3 convolutions, 3-D max
    pooling over channels and space, the global-context concatenation and the 1x1 classifier (68 classes)."""
    net = Net(3, 24, 94, "relu")

    def block(x: str, out: int) -> str:
        y = net.conv(net.conv(net.conv(x, out // 4, 1), out // 4, (3, 1)), out // 4, (1, 3))
        return net.activation(net.bn(net.conv(y, out, 1, act=None)), "relu")

    def pool3d(x: str, channel_stride: int, stride: tuple[int, int]) -> str:
        c = net.channels[x]
        five = net.node("Unsqueeze", [x, net.const("axis", np.array([1], np.int64))], 1)
        y = net.node("MaxPool", [five], 1, kernel_shape=[1, 3, 3], strides=[channel_stride, *stride])
        out = net.node("Squeeze", [y, net.const("axis", np.array([1], np.int64))], c // channel_stride)
        return out

    x = net.activation(net.bn(net.conv("input", 64, 3, pad=0, act=None)), "relu")
    f0 = x
    x = block(pool3d(x, 1, (1, 1)), 128)
    f1 = x
    x = block(block(pool3d(x, 2, (1, 2)), 256), 256)
    f2 = x
    x = net.activation(net.bn(net.conv(pool3d(x, 4, (1, 2)), 256, (1, 4), pad=0, act=None)), "relu")
    x = net.activation(net.bn(net.conv(x, 68, (13, 1), pad=0, act=None)), "relu")
    context = []
    for f, k, s in ((f0, (5, 5), (5, 5)), (f1, (5, 5), (5, 5)), (f2, (4, 10), (4, 2)), (x, None, None)):
        if k:
            f = net.node("AveragePool", [f], net.channels[f], kernel_shape=list(k), strides=list(s))
        square = net.mul(f, f)
        mean = net.node("ReduceMean", [square], 1, keepdims=1)
        context.append(net.node("Div", [f, mean], net.channels[f]))
    y = net.conv(net.concat(context), 68, 1, act=None)
    return net.model([net.node("ReduceMean", [y], 68, axes=[2], keepdims=0)])


def ppocrv4_det(size: int = 480) -> onnx.ModelProto:
    """PP-OCRv4 mobile detection: PP-LCNetV3 (scale 0.75, HardSwish, depthwise 3x3/5x5 + pointwise, SE in the
    last stage), RSE-FPN (96 channels, SE shortcuts), DB head (3x3, two 2x2 transposed convolutions, Sigmoid)."""
    net = Net(3, size, size, "hardswish")
    blocks = ((3, 32, 1, False), (3, 64, 2, False), (3, 64, 1, False), (3, 128, 2, False), (3, 128, 1, False),
              (3, 256, 2, False), (5, 256, 1, False), (5, 256, 1, False), (5, 256, 1, False), (5, 256, 1, False),
              (5, 512, 2, True), (5, 512, 1, True), (5, 512, 1, False), (5, 512, 1, False))
    x = net.conv("input", 16, 3, 2)
    taps = {2: None, 4: None, 9: None, 13: None}
    for i, (k, c, s, se) in enumerate(blocks):
        x = net.dwconv(x, k, s)
        if se:
            x = _se(net, x)
        x = net.conv(x, max(8, int(c * 0.75 + 4) // 8 * 8), 1)
        if i in taps:
            taps[i] = x
    lat = [_rse(net, net.conv(t, 96, 1, act=None)) for t in taps.values()]
    for i in (2, 1, 0):
        lat[i] = net.add(lat[i], net.upsample(lat[i + 1]))
    outs = [_rse(net, net.conv(level, 24, 3, act=None)) for level in lat]
    outs = [net.upsample(o, 2 ** i) if i else o for i, o in enumerate(outs)]
    y = net.conv(net.concat(outs), 24, 3, act="relu")
    y = net.deconv(net.deconv(y, 24, act="relu"), 1, act="sigmoid")
    return net.model([y])


def _se(net: Net, x: str) -> str:
    c = net.channels[x]
    gate = net.conv(net.conv(net.global_pool(x), c // 4, 1, act="relu"), c, 1, act=None)
    return net.mul(x, net.node("HardSigmoid", [gate], c))


def _rse(net: Net, x: str) -> str:
    """RSE layer: the input plus its squeeze-excitation scaled copy."""
    return net.add(x, _se(net, x))
