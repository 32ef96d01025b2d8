"""The architectures of the published NPU benchmarks, written as ONNX graphs with onnx.helper (no hub).

The performance model needs shapes, not weights: every weight is zero. Each builder follows the
published architecture: MobileNetV2 1.0 and ResNet50 v2 (the ONNX model zoo's mobilenetv2-12 and
resnet50-v2-7, pre-activation blocks with their standalone BatchNormalization), MobileNet v1 1.0 and
ResNet50 v1 (Paddle-Lite's rows), YOLOv5 v6 (n/s/m, SiLU or ReLU) and YOLOv8 (n/s/m) as Rockchip's
model zoo exports them (detection heads without decoding), RetinaFace (MobileNet-0.25 and ResNet50
backbones, FPN, SSH, heads) at 320x320.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from chip_nets import Net, csp_block, spp_block


# ---------------------------------------------------------------- classification (calibration)
def mobilenet_v2(size: int = 224) -> onnx.ModelProto:
    net = Net(3, size, size)
    x = net.conv("input", 32, 3, 2)
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1)):
        for i in range(n):
            cin, stride = net.channels[x], s if i == 0 else 1
            y = net.conv(x, cin * t, 1) if t != 1 else x
            y = net.conv(y, cin * t, 3, stride, group=cin * t)
            y = net.conv(y, c, 1, act=None)
            x = net.add(x, y) if stride == 1 and cin == c else y
    return net.model([net.classifier(net.conv(x, 1280, 1))])


def mobilenet_v1(size: int = 224, alpha: float = 1.0) -> onnx.ModelProto:
    net = Net(3, size, size)
    x = net.conv("input", int(32 * alpha), 3, 2)
    for c, s in ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5, (1024, 2), (1024, 1)):
        x = net.conv(net.conv(x, net.channels[x], 3, s, group=net.channels[x]), int(c * alpha), 1)
    return net.model([net.classifier(x)])


def _bottleneck(net: Net, x: str, width: int, stride: int) -> str:
    out = width * 4
    shortcut = net.conv(x, out, 1, stride, act=None) if stride != 1 or net.channels[x] != out else x
    y = net.conv(net.conv(net.conv(x, width, 1), width, 3, stride), out, 1, act=None)
    return net.activation(net.add(y, shortcut), "relu")


def resnet_stages(net: Net, x: str) -> list[str]:
    """ResNet50 v1 stages 2..5 (bottlenecks 3, 4, 6, 3); the stage outputs."""
    outs = []
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            x = _bottleneck(net, x, width, stride if i == 0 else 1)
        outs.append(x)
    return outs


def resnet50_v1(size: int = 224) -> onnx.ModelProto:
    net = Net(3, size, size)
    x = net.maxpool(net.conv("input", 64, 7, 2), 3, 2)
    return net.model([net.classifier(resnet_stages(net, x)[-1])])


def resnet50_v2(size: int = 224) -> onnx.ModelProto:
    """Pre-activation ResNet50 (gluon v2, the ONNX zoo's resnet50-v2-7): BN + ReLU before each block."""
    net = Net(3, size, size)
    x = net.maxpool(net.conv(net.bn("input"), 64, 7, 2), 3, 2)
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            s = stride if i == 0 else 1
            pre = net.activation(net.bn(x), "relu")
            shortcut = net.conv(pre, width * 4, 1, s, act=None) if i == 0 else x
            y = net.conv(net.conv(pre, width, 1), width, 3, s)
            x = net.add(net.conv(y, width * 4, 1, act=None), shortcut)
    return net.model([net.classifier(net.activation(net.bn(x), "relu"))])


# ---------------------------------------------------------------- detection and faces (validation)
def yolov5(width: float, depth: float, act: str = "silu", seg: bool = False, size: int = 640) -> onnx.ModelProto:
    """YOLOv5 v6 as rknn_model_zoo exports it: three raw head convolutions (no decoding); ``seg`` adds the 32
    mask coefficients per anchor and the prototype branch (yolov5-seg)."""
    net = Net(3, size, size, act)
    ch = [max(8, math.ceil(c * width / 8) * 8) for c in (64, 128, 256, 512, 1024)]

    def rep(n: int) -> int:
        return max(round(n * depth), 1)

    x = net.conv(net.conv("input", ch[0], 6, 2, pad=2), ch[1], 3, 2)
    p3 = csp_block(net, net.conv(csp_block(net, x, ch[1], rep(3)), ch[2], 3, 2), ch[2], rep(6))
    p4 = csp_block(net, net.conv(p3, ch[3], 3, 2), ch[3], rep(9))
    p5 = spp_block(net, csp_block(net, net.conv(p4, ch[4], 3, 2), ch[4], rep(3)), ch[4])
    h10 = net.conv(p5, ch[3], 1)
    h14 = net.conv(csp_block(net, net.concat([net.upsample(h10), p4]), ch[3], rep(3), False), ch[2], 1)
    o3 = csp_block(net, net.concat([net.upsample(h14), p3]), ch[2], rep(3), False)
    o4 = csp_block(net, net.concat([net.conv(o3, ch[2], 3, 2), h14]), ch[3], rep(3), False)
    o5 = csp_block(net, net.concat([net.conv(o4, ch[3], 3, 2), h10]), ch[4], rep(3), False)
    per_anchor = 85 + 32 if seg else 85
    outputs = [net.conv(o, 3 * per_anchor, 1, act=None) for o in (o3, o4, o5)]
    if seg:  # Proto: 3x3, nearest 2x, 3x3, 1x1 to 32 prototypes at stride 4
        c = math.ceil(256 * width / 8) * 8
        outputs.append(net.conv(net.conv(net.upsample(net.conv(o3, c, 3)), c, 3), 32, 1))
    return net.model(outputs)


def _c2f(net: Net, x: str, c2: int, n: int, shortcut: bool) -> str:
    c = c2 // 2
    y = net.conv(x, 2 * c, 1)
    halves = [net.node("Slice", [y, *[net.const("s", np.array([v], np.int64)) for v in (lo, lo + c, 1)]], c)
              for lo in (0, c)]
    for _ in range(n):
        z = net.conv(net.conv(halves[-1], c, 3), c, 3)
        halves.append(net.add(halves[-1], z) if shortcut else z)
    return net.conv(net.concat(halves), c2, 1)


def yolov8(width: float, depth: float, max_channels: int, task: str = "detect", size: int = 640) -> onnx.ModelProto:
    """YOLOv8 as rknn_model_zoo exports it: per level the box convolution (64 = 4 x 16 DFL bins), the class
    scores through Sigmoid and their ReduceSum + Clip; ``task`` ``seg`` adds mask coefficients and the
    prototype branch, ``obb`` (DOTA, 15 classes) the angle branch."""
    net = Net(3, size, size, "silu")
    classes = 15 if task == "obb" else 80
    ch = [min(c, max_channels) * width for c in (64, 128, 256, 512, 1024)]
    ch = [int(math.ceil(c / 8) * 8) for c in ch]

    def rep(n: int) -> int:
        return max(round(n * depth), 1)

    x = _c2f(net, net.conv(net.conv("input", ch[0], 3, 2), ch[1], 3, 2), ch[1], rep(3), True)
    p3 = _c2f(net, net.conv(x, ch[2], 3, 2), ch[2], rep(6), True)
    p4 = _c2f(net, net.conv(p3, ch[3], 3, 2), ch[3], rep(6), True)
    p5 = spp_block(net, _c2f(net, net.conv(p4, ch[4], 3, 2), ch[4], rep(3), True), ch[4])
    h4 = _c2f(net, net.concat([net.upsample(p5), p4]), ch[3], rep(3), False)
    o3 = _c2f(net, net.concat([net.upsample(h4), p3]), ch[2], rep(3), False)
    o4 = _c2f(net, net.concat([net.conv(o3, ch[2], 3, 2), h4]), ch[3], rep(3), False)
    o5 = _c2f(net, net.concat([net.conv(o4, ch[3], 3, 2), p5]), ch[4], rep(3), False)
    c2, c3 = max(16, ch[2] // 4, 64), max(ch[2], min(classes, 100))
    outputs = []
    for o in (o3, o4, o5):
        outputs.append(net.conv(net.conv(net.conv(o, c2, 3), c2, 3), 64, 1, act=None))
        cls = net.activation(net.conv(net.conv(net.conv(o, c3, 3), c3, 3), classes, 1, act=None), "sigmoid")
        axes = net.const("axes", np.array([1], np.int64))
        total = net.node("ReduceSum", [cls, axes], 1, keepdims=1)
        outputs += [cls, net.node("Clip", [total, net.const("lo", np.array(0, np.float32)),
                                           net.const("hi", np.array(1, np.float32))], 1)]
        if task in ("seg", "obb"):  # 32 mask coefficients or one angle per anchor
            extra, c4 = (32, max(ch[2] // 4, 32)) if task == "seg" else (1, max(ch[2] // 4, 1))
            outputs.append(net.conv(net.conv(net.conv(o, c4, 3), c4, 3), extra, 1, act=None))
    if task == "seg":  # Proto: 3x3, ConvTranspose 2x2 s2, 3x3, 1x1 to 32 prototypes at stride 4
        c = math.ceil(min(256, max_channels) * width / 8) * 8
        outputs.append(net.conv(net.conv(net.deconv(net.conv(o3, c, 3), c), c, 3), 32, 1))
    return net.model(outputs)


def _ssh(net: Net, x: str, out: int, act: str) -> str:
    c3 = net.conv(x, out // 2, 3, act=None)
    c5 = net.conv(x, out // 4, 3, act=act)
    c5b = net.conv(c5, out // 4, 3, act=None)
    c7 = net.conv(net.conv(c5, out // 4, 3, act=act), out // 4, 3, act=None)
    return net.activation(net.concat([c3, c5b, c7]), "relu")


def retinaface(backbone: str, size: int = 320) -> onnx.ModelProto:
    if backbone == "mobile0.25":
        net, act, out = Net(3, size, size, "leaky"), "leaky", 64
        x = net.conv("input", 8, 3, 2)
        stages = []
        blocks = ((16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), *[(128, 1)] * 5, (256, 2), (256, 1))
        for index, (c, s) in enumerate(blocks):
            x = net.conv(net.conv(x, net.channels[x], 3, s, group=net.channels[x]), c, 1)
            if index in (4, 10, 12):  # the ends of the stages at strides 8, 16 and 32
                stages.append(x)
    else:
        net, act, out = Net(3, size, size, "relu"), "relu", 256
        stages = resnet_stages(net, net.maxpool(net.conv("input", 64, 7, 2), 3, 2))[1:]
    lat = [net.conv(s, out, 1, act=act) for s in stages]
    lat[1] = net.conv(net.add(lat[1], net.upsample(lat[2])), out, 3, act=act)
    lat[0] = net.conv(net.add(lat[0], net.upsample(lat[1])), out, 3, act=act)
    heads = {"cls": [], "box": [], "ldm": []}
    for level in lat:
        feature = _ssh(net, level, out, act)
        for key, k in (("cls", 4), ("box", 8), ("ldm", 20)):
            y = net.node("Transpose", [net.conv(feature, k, 1, act=None)], k, perm=[0, 2, 3, 1])
            shape = net.const("shape", np.array([1, -1, k // 2], np.int64))
            heads[key].append(net.node("Reshape", [y, shape], k // 2))
    cls = net.node("Softmax", [net.node("Concat", heads["cls"], 2, axis=1)], 2, axis=-1)
    return net.model([net.node("Concat", heads["box"], 4, axis=1), cls, net.node("Concat", heads["ldm"], 10, axis=1)])




def _catalogue() -> dict:
    from chip_models_more import deeplabv3_mobilenet_v2, lprnet, ppocrv4_det, ppyoloe, yolo11, yolov6, yolov7, yolox

    return {
        "mobilenetv2-12": mobilenet_v2, "resnet50-v2-7": resnet50_v2,
        "mobilenet_v1": mobilenet_v1, "resnet50": resnet50_v1,
        "yolov5s_relu": lambda: yolov5(0.5, 0.33, "relu"), "yolov5n": lambda: yolov5(0.25, 0.33),
        "yolov5s": lambda: yolov5(0.5, 0.33), "yolov5m": lambda: yolov5(0.75, 0.67),
        "yolov5n-seg": lambda: yolov5(0.25, 0.33, seg=True), "yolov5s-seg": lambda: yolov5(0.5, 0.33, seg=True),
        "yolov5m-seg": lambda: yolov5(0.75, 0.67, seg=True),
        "yolov6n": lambda: yolov6(0.25, 0.33), "yolov6s": lambda: yolov6(0.5, 0.33),
        "yolov6m": lambda: yolov6(0.75, 0.6, csp=True),
        "yolov7-tiny": lambda: yolov7(True), "yolov7": lambda: yolov7(False),
        "yolov8n": lambda: yolov8(0.25, 0.33, 1024), "yolov8s": lambda: yolov8(0.5, 0.33, 1024),
        "yolov8m": lambda: yolov8(0.75, 0.67, 768),
        "yolov8n-seg": lambda: yolov8(0.25, 0.33, 1024, "seg"), "yolov8s-seg": lambda: yolov8(0.5, 0.33, 1024, "seg"),
        "yolov8m-seg": lambda: yolov8(0.75, 0.67, 768, "seg"), "yolov8n-obb": lambda: yolov8(0.25, 0.33, 1024, "obb"),
        "yolo11n": lambda: yolo11(0.25, 0.5, 1024), "yolo11s": lambda: yolo11(0.5, 0.5, 1024),
        "yolo11m": lambda: yolo11(1.0, 0.5, 512, True),
        "yolox_s": lambda: yolox(0.5, 0.33), "yolox_m": lambda: yolox(0.75, 0.67),
        "ppyoloe_s": lambda: ppyoloe(0.5, 0.33), "ppyoloe_m": lambda: ppyoloe(0.75, 0.67),
        "deeplab-v3-plus-mobilenet-v2": deeplabv3_mobilenet_v2,
        "RetinaFace_mobile320": lambda: retinaface("mobile0.25"),
        "RetinaFace_resnet50_320": lambda: retinaface("resnet50"),
        "lprnet": lprnet, "ppocrv4_det": ppocrv4_det,
    }


BUILDERS = _catalogue()  # published model name -> builder of its ONNX graph
