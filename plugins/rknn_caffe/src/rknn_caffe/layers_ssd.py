"""Converters of the SSD layers: Normalize, PriorBox (a constant), DetectionOutput (CaffeDetectionOutput)."""

from __future__ import annotations

import numpy as np

from rknn_caffe.context import Ctx
from rknn_caffe.net import CaffeLayer
from rknn_caffe.priorbox import prior_boxes
from rknn_core.errors import RknnError


def normalize(ctx: Ctx, layer: CaffeLayer) -> None:
    """x / sqrt(sum of squares + eps) * scale; the sum runs over C, H, W (across_spatial) or over C."""
    p = layer.param.norm_param
    shape = ctx.shape(0)
    if len(shape) != 4:
        raise RknnError(f"Normalize needs a 4-D bottom, got shape {list(shape)}")
    x = ctx.bottom(0)
    axes = ctx.const(f"{layer.name}/axes", np.array([1, 2, 3] if p.across_spatial else [1], np.int64))
    sums = ctx.emit("ReduceSum", [ctx.emit("Mul", [x, x])[0], axes], {"keepdims": 1})[0]
    norm = ctx.emit("Sqrt", [ctx.emit("Add", [sums, ctx.scalar(p.eps)])[0]])[0]
    y = ctx.emit("Div", [x, norm])[0]
    scale = ctx.blob(0, (1,) if p.channel_shared else (shape[1],), "scale")
    scale = scale.reshape(() if p.channel_shared else (shape[1], 1, 1))
    ctx.top(0, "Mul", [y, ctx.const(f"{layer.name}/scale", scale)])


def prior_box(ctx: Ctx, layer: CaffeLayer) -> None:
    feature, image = ctx.shape(0), ctx.shape(1)
    if len(feature) != 4 or len(image) != 4:
        raise RknnError(f"PriorBox needs 4-D bottoms (feature map, image), got {list(feature)} and {list(image)}")
    boxes = prior_boxes(layer.param.prior_box_param, feature[2:], image[2:])
    ctx.bind(0, ctx.const(layer.tops[0], boxes))


def detection_output(ctx: Ctx, layer: CaffeLayer) -> None:
    p = layer.param.detection_output_param
    if not p.HasField("num_classes") or p.num_classes < 1:
        raise RknnError("detection_output_param needs num_classes")
    if len(layer.bottoms) != 3:
        raise RknnError(f"DetectionOutput needs 3 bottoms (loc, conf, priors), got {len(layer.bottoms)}")
    nms = p.nms_param
    attrs = {"num_classes": int(p.num_classes), "share_location": bool(p.share_location),
             "background_label_id": int(p.background_label_id), "code_type": int(p.code_type),
             "variance_encoded_in_target": bool(p.variance_encoded_in_target), "keep_top_k": int(p.keep_top_k),
             "nms_threshold": float(nms.nms_threshold), "top_k": int(nms.top_k) if nms.HasField("top_k") else -1,
             "eta": float(nms.eta)}
    if p.HasField("confidence_threshold"):
        attrs["confidence_threshold"] = float(p.confidence_threshold)
    ctx.top(0, "CaffeDetectionOutput", [ctx.bottom(0), ctx.bottom(1), ctx.bottom(2)], attrs)


CONVERTERS = {"Normalize": normalize, "PriorBox": prior_box, "DetectionOutput": detection_output}
