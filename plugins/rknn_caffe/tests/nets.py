"""Deploy .prototxt text of four well-known Caffe architectures, generated here from their published
structure (layer counts, channels, kernels, strides, prior boxes): MobileNet-SSD (VOC), SqueezeNet v1.1,
GoogLeNet and ResNet-50. Each uses another way to declare its input and another layout, as real files do.
"""

from __future__ import annotations

from prototxt_writer import Enum, Style, layer, net_text

MAX, AVE = Enum("MAX"), Enum("AVE")


def conv(name: str, bottom: str, num_output: int, kernel: int, stride: int = 1, pad: int = 0, group: int = 1,
         bias: bool = True, top: str | None = None, **extra) -> dict:
    """A Convolution layer; ``group``, ``stride``, ``pad`` and ``bias_term`` are written only when not the default."""
    param = {"num_output": num_output, "bias_term": None if bias else False, "pad": pad or None,
             "kernel_size": kernel, "group": group if group > 1 else None, "stride": stride if stride > 1 else None}
    return layer(name, "Convolution", bottom, top, **extra, convolution_param=param)


def relu(name: str, blob: str) -> dict:
    return layer(name, "ReLU", blob, blob)


def pool(name: str, bottom: str, kind: Enum, kernel: int | None, stride: int = 1, pad: int = 0) -> dict:
    """Pooling; ``kernel=None`` is global pooling."""
    param = {"pool": kind, "global_pooling": True} if kernel is None else \
        {"pool": kind, "kernel_size": kernel, "stride": stride, "pad": pad or None}
    return layer(name, "Pooling", bottom, pooling_param=param)


def batch_norm_scale(bn: str, scale: str, blob: str) -> list[dict]:
    """In-place BatchNorm (global statistics) and a Scale with a bias, as converted BN nets have them."""
    return [layer(bn, "BatchNorm", blob, blob, batch_norm_param={"use_global_stats": True}),
            layer(scale, "Scale", blob, blob, scale_param={"bias_term": True})]


def input_layer(*shape: int) -> dict:
    return layer("data", "Input", input_param={"shape": {"dim": list(shape)}})


# --- SqueezeNet v1.1: Input layer, every layer on one line ---------------------------------------------------

SQUEEZENET_FIRES = {2: (16, 64), 3: (16, 64), 4: (32, 128), 5: (32, 128), 6: (48, 192), 7: (48, 192),
                    8: (64, 256), 9: (64, 256)}  # fire module -> (squeeze 1x1, each expand) channels


def squeezenet_v1_1(classes: int = 1000) -> str:
    layers = [input_layer(1, 3, 227, 227), conv("conv1", "data", 64, 3, stride=2), relu("relu_conv1", "conv1"),
              pool("pool1", "conv1", MAX, 3, 2)]
    blob = "pool1"
    for fire, (squeeze, expand) in SQUEEZENET_FIRES.items():
        f = f"fire{fire}"
        layers += [conv(f"{f}/squeeze1x1", blob, squeeze, 1), relu(f"{f}/relu_squeeze1x1", f"{f}/squeeze1x1"),
                   conv(f"{f}/expand1x1", f"{f}/squeeze1x1", expand, 1),
                   relu(f"{f}/relu_expand1x1", f"{f}/expand1x1"),
                   conv(f"{f}/expand3x3", f"{f}/squeeze1x1", expand, 3, pad=1),
                   relu(f"{f}/relu_expand3x3", f"{f}/expand3x3"),
                   layer(f"{f}/concat", "Concat", [f"{f}/expand1x1", f"{f}/expand3x3"])]
        blob = f"{f}/concat"
        if fire in (3, 5):
            layers.append(pool(f"pool{fire}", blob, MAX, 3, 2))
            blob = f"pool{fire}"
    layers += [layer("drop9", "Dropout", blob, blob, dropout_param={"dropout_ratio": 0.5}),
               conv("conv10", blob, classes, 1), relu("relu_conv10", "conv10"), pool("pool10", "conv10", AVE, None),
               layer("prob", "Softmax", "pool10")]
    return net_text([("name", "SqueezeNet_v1.1")], layers, Style(compact=True))


# --- GoogLeNet: Input layer of batch 10, learning-rate and filler fields as in a trained net's file -------------

INCEPTIONS = {  # module -> (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection) channels
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}
TRAINING = {"param": [{"lr_mult": 1, "decay_mult": 1}, {"lr_mult": 2, "decay_mult": 0}]}
FILLERS = {"weight_filler": {"type": "xavier", "std": 0.03}, "bias_filler": {"type": "constant", "value": 0.2}}


def _gconv(name: str, bottom: str, num_output: int, kernel: int, stride: int = 1, pad: int = 0) -> list[dict]:
    """A GoogLeNet convolution and its ReLU (named ``<scope>/relu_<conv>``)."""
    made = conv(name, bottom, num_output, kernel, stride, pad, **TRAINING)
    made["convolution_param"].update(FILLERS)
    scope, _, leaf = name.rpartition("/")
    return [made, relu(f"{scope}/relu_{leaf}", name)]


def _lrn(name: str, bottom: str) -> dict:
    return layer(name, "LRN", bottom, lrn_param={"local_size": 5, "alpha": 0.0001, "beta": 0.75})


def googlenet(classes: int = 1000) -> str:
    layers = [input_layer(10, 3, 224, 224), *_gconv("conv1/7x7_s2", "data", 64, 7, 2, 3),
              pool("pool1/3x3_s2", "conv1/7x7_s2", MAX, 3, 2), _lrn("pool1/norm1", "pool1/3x3_s2"),
              *_gconv("conv2/3x3_reduce", "pool1/norm1", 64, 1), *_gconv("conv2/3x3", "conv2/3x3_reduce", 192, 3, 1, 1),
              _lrn("conv2/norm2", "conv2/3x3"), pool("pool2/3x3_s2", "conv2/norm2", MAX, 3, 2)]
    blob = "pool2/3x3_s2"
    for module, (c1, r3, c3, r5, c5, proj) in INCEPTIONS.items():
        m = f"inception_{module}"
        layers += [*_gconv(f"{m}/1x1", blob, c1, 1),
                   *_gconv(f"{m}/3x3_reduce", blob, r3, 1), *_gconv(f"{m}/3x3", f"{m}/3x3_reduce", c3, 3, 1, 1),
                   *_gconv(f"{m}/5x5_reduce", blob, r5, 1), *_gconv(f"{m}/5x5", f"{m}/5x5_reduce", c5, 5, 1, 2),
                   pool(f"{m}/pool", blob, MAX, 3, 1, 1), *_gconv(f"{m}/pool_proj", f"{m}/pool", proj, 1),
                   layer(f"{m}/output", "Concat", [f"{m}/1x1", f"{m}/3x3", f"{m}/5x5", f"{m}/pool_proj"])]
        blob = f"{m}/output"
        if module in ("3b", "4e"):
            name = f"pool{module[0]}/3x3_s2"
            layers.append(pool(name, blob, MAX, 3, 2))
            blob = name
    classifier = layer("loss3/classifier", "InnerProduct", "pool5/7x7_s1", **TRAINING,
                       inner_product_param={"num_output": classes, **FILLERS})
    classifier["inner_product_param"]["bias_filler"] = {"type": "constant", "value": 0}
    layers += [pool("pool5/7x7_s1", blob, AVE, 7, 1),
               layer("pool5/drop_7x7_s1", "Dropout", "pool5/7x7_s1", "pool5/7x7_s1",
                     dropout_param={"dropout_ratio": 0.4}),
               classifier, layer("prob", "Softmax", "loss3/classifier")]
    return net_text([("name", "GoogleNet")], layers, Style(indent="  "))


# --- ResNet-50: legacy input/input_dim header, bias-free convolutions with BatchNorm + Scale ------------------

RESNET50_STAGES = ((2, 3, 64), (3, 4, 128), (4, 6, 256), (5, 3, 512))  # stage, blocks, bottleneck channels


def _rconv(name: str, bottom: str, num_output: int, kernel: int, stride: int = 1, pad: int = 0,
           with_relu: bool = True) -> list[dict]:
    """Convolution ``res<x>`` + ``bn<x>`` + ``scale<x>`` (+ ``<x>_relu``), ResNet's naming."""
    suffix = name[3:] if name.startswith("res") else f"_{name}"
    made = [conv(name, bottom, num_output, kernel, stride, pad, bias=False),
            *batch_norm_scale(f"bn{suffix}", f"scale{suffix}", name)]
    return made + [relu(f"{name}_relu", name)] if with_relu else made


def resnet50(classes: int = 1000) -> str:
    layers = [*_rconv("conv1", "data", 64, 7, 2, 3), pool("pool1", "conv1", MAX, 3, 2)]
    blob = "pool1"
    for stage, blocks, width in RESNET50_STAGES:
        for b in range(blocks):
            r = f"res{stage}{chr(ord('a') + b)}"
            stride = 2 if b == 0 and stage > 2 else 1
            shortcut = blob
            if b == 0:
                layers += _rconv(f"{r}_branch1", blob, 4 * width, 1, stride, with_relu=False)
                shortcut = f"{r}_branch1"
            layers += [*_rconv(f"{r}_branch2a", blob, width, 1, stride),
                       *_rconv(f"{r}_branch2b", f"{r}_branch2a", width, 3, 1, 1),
                       *_rconv(f"{r}_branch2c", f"{r}_branch2b", 4 * width, 1, with_relu=False),
                       layer(r, "Eltwise", [shortcut, f"{r}_branch2c"]), relu(f"{r}_relu", r)]
            blob = r
    layers += [pool("pool5", blob, AVE, 7, 1),
               layer("fc1000", "InnerProduct", "pool5", inner_product_param={"num_output": classes}),
               layer("prob", "Softmax", "fc1000")]
    header = [("name", "ResNet-50"), ("input", "data"), ("input_dim", [1, 3, 224, 224])]
    return net_text(header, layers, Style(indent="\t"))


# --- MobileNet-SSD (VOC, 300x300): input + input_shape, depthwise convolutions, six SSD heads -----------------

MOBILENET = ((32, 1), (64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 1), (512, 1), (512, 1),
             (512, 1), (512, 2), (1024, 1), (1024, 1))  # conv<i>: (pointwise channels, stride of conv<i+1>/dw)
EXTRAS = {14: (256, 512), 15: (128, 256), 16: (128, 256), 17: (64, 128)}  # conv<i>_1 and conv<i>_2 channels
HEADS = {  # feature blob -> (min_size, max_size or None, aspect ratios)
    "conv11": (60, None, (2,)), "conv13": (105, 150, (2, 3)), "conv14_2": (150, 195, (2, 3)),
    "conv15_2": (195, 240, (2, 3)), "conv16_2": (240, 285, (2, 3)), "conv17_2": (285, 300, (2, 3)),
}
VOC_CLASSES = 21


def _mconv(name: str, bottom: str, num_output: int, kernel: int, stride: int = 1, group: int = 1) -> list[dict]:
    """MobileNet's convolution + ``/bn`` + ``/scale`` + ``/relu``."""
    return [conv(name, bottom, num_output, kernel, stride, kernel // 2, group, bias=False),
            *batch_norm_scale(f"{name}/bn", f"{name}/scale", name), relu(f"{name}/relu", name)]


def _ssd_head(blob: str, min_size: int, max_size: int | None, ratios: tuple[int, ...]) -> list[dict]:
    priors = 1 + (max_size is not None) + 2 * len(ratios)  # flipped ratios
    made = []
    for part, per_prior in (("loc", 4), ("conf", VOC_CLASSES)):
        head = f"{blob}_mbox_{part}"
        made += [conv(head, blob, priors * per_prior, 1),
                 layer(f"{head}_perm", "Permute", head, permute_param={"order": [0, 2, 3, 1]}),
                 layer(f"{head}_flat", "Flatten", f"{head}_perm", flatten_param={"axis": 1})]
    made.append(layer(f"{blob}_mbox_priorbox", "PriorBox", [blob, "data"], prior_box_param={
        "min_size": float(min_size), "max_size": None if max_size is None else float(max_size),
        "aspect_ratio": [float(r) for r in ratios], "flip": True, "clip": False,
        "variance": [0.1, 0.1, 0.2, 0.2], "offset": 0.5}))
    return made


def mobilenet_ssd() -> str:
    layers = _mconv("conv0", "data", 32, 3, 2)
    blob = "conv0"
    for i, (channels, _) in enumerate(MOBILENET[1:], start=1):
        in_channels, stride = MOBILENET[i - 1]
        layers += [*_mconv(f"conv{i}/dw", blob, in_channels, 3, stride, group=in_channels),
                   *_mconv(f"conv{i}", f"conv{i}/dw", channels, 1)]
        blob = f"conv{i}"
    for i, (reduce, out) in EXTRAS.items():
        layers += [*_mconv(f"conv{i}_1", blob, reduce, 1), *_mconv(f"conv{i}_2", f"conv{i}_1", out, 3, 2)]
        blob = f"conv{i}_2"
    for feature, (min_size, max_size, ratios) in HEADS.items():
        layers += _ssd_head(feature, min_size, max_size, ratios)
    layers += [layer(f"mbox_{part}", "Concat", [f"{f}_mbox_{part}_flat" for f in HEADS], concat_param={"axis": 1})
               for part in ("loc", "conf")]
    layers += [layer("mbox_priorbox", "Concat", [f"{f}_mbox_priorbox" for f in HEADS], concat_param={"axis": 2}),
               layer("mbox_conf_reshape", "Reshape", "mbox_conf",
                     reshape_param={"shape": {"dim": [0, -1, VOC_CLASSES]}}),
               layer("mbox_conf_softmax", "Softmax", "mbox_conf_reshape", softmax_param={"axis": 2}),
               layer("mbox_conf_flatten", "Flatten", "mbox_conf_softmax", flatten_param={"axis": 1}),
               layer("detection_out", "DetectionOutput", ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox"],
                     include={"phase": Enum("TEST")}, detection_output_param={
                         "num_classes": VOC_CLASSES, "share_location": True, "background_label_id": 0,
                         "nms_param": {"nms_threshold": 0.45, "top_k": 100}, "code_type": Enum("CENTER_SIZE"),
                         "keep_top_k": 100, "confidence_threshold": 0.25})]
    header = [("name", "MobileNet-SSD"), ("input", "data"), ("input_shape", {"dim": [1, 3, 300, 300]})]
    return net_text(header, layers, Style(indent="  "))


NETS = {"squeezenet_v1.1": squeezenet_v1_1, "googlenet": googlenet, "resnet50": resnet50,
        "mobilenet_ssd": mobilenet_ssd}
