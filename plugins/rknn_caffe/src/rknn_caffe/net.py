"""The layers of a Caffe net in one form for both layer formats, with their source lines and blobs."""

from __future__ import annotations

from typing import Any

import attrs

from rknn_caffe.proto import caffe_pb2 as pb
from rknn_caffe.prototxt import LayerSource
from rknn_caffe.weights import Blob, WeightLayer
from rknn_core.errors import RknnError

# legacy V1 layer types -> the type names of the current format
V1_TYPES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL", "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution", "DATA": "Data",
    "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout", "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise", "EXP": "Exp", "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output", "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData", "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss", "MVN": "MVN",
    "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence", "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice", "TANH": "TanH",
    "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}


@attrs.define
class CaffeLayer:
    """One layer: ``param`` is its LayerParameter (or V1LayerParameter; the ``*_param`` fields share names),
    ``blobs`` its learned blobs from the .caffemodel, ``line``/``text`` where the .prototxt defines it."""

    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    param: Any
    line: int = 0
    text: str = ""
    blobs: list[Blob] = attrs.field(factory=list)

    def where(self, path: str) -> str:
        at = f" at line {self.line}" if self.line else ""
        return f"layer '{self.name}' ({self.type}){at} of '{path}'"


def net_layers(net: pb.NetParameter, sources: dict[str, list[LayerSource]]) -> list[CaffeLayer]:
    """The layers a TEST-phase (inference) net runs, in file order."""
    if net.layer and net.layers:
        raise RknnError("the .prototxt mixes the current 'layer' and the legacy 'layers' formats; use one")
    if net.layers:
        kinds = [V1_TYPES.get(pb.V1LayerParameter.LayerType.Name(p.type), pb.V1LayerParameter.LayerType.Name(p.type))
                 for p in net.layers]
        params, places = net.layers, sources["layers"]
    else:
        kinds = [p.type for p in net.layer]
        params, places = net.layer, sources["layer"]
    layers = []
    for param, kind, place in zip(params, kinds, places):
        if _in_test_phase(param):
            layers.append(CaffeLayer(param.name, kind, list(param.bottom), list(param.top), param, place.line,
                                     place.text))
    return layers


def _in_test_phase(param) -> bool:
    """Caffe's NetStateRule check for the TEST phase (level 0, no stages)."""
    if getattr(param, "phase", pb.TEST) == pb.TRAIN and param.HasField("phase"):
        return False
    if param.include:
        return any(_meets(rule) for rule in param.include)
    return not any(_meets(rule) for rule in param.exclude)


def _meets(rule: pb.NetStateRule) -> bool:
    if rule.HasField("phase") and rule.phase != pb.TEST:
        return False
    if rule.HasField("min_level") and rule.min_level > 0:
        return False
    if rule.HasField("max_level") and rule.max_level < 0:
        return False
    return not rule.stage


def attach_blobs(layers: list[CaffeLayer], weights: dict[str, WeightLayer]) -> None:
    """Give each layer the blobs the .caffemodel stores under its name."""
    for layer in layers:
        if layer.name in weights:
            layer.blobs = weights[layer.name].blobs


def expected(blob: Blob, shape: tuple[int, ...]) -> bool:
    """Caffe's ShapeEquals: a legacy 4-D blob matches a shape padded with leading 1s to 4 axes."""
    if not blob.legacy:
        return tuple(blob.shape) == tuple(shape)
    return len(shape) <= 4 and tuple(blob.shape) == (1,) * (4 - len(shape)) + tuple(shape)

