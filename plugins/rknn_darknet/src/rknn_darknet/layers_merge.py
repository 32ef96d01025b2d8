"""Layers that read earlier layers: route, shortcut, scale_channels, sam; and the detection heads.

``[yolo]`` and ``[region]`` output their input, the raw feature map (as the vendor's toolkit does):
decoding boxes is left to the application.
"""

from __future__ import annotations

import numpy as np

from rknn_darknet.cfg import Section
from rknn_darknet.context import Ctx
from rknn_darknet.layers_conv import activate

SHORTCUT_EPSILON = 1e-4  # darknet adds it to the sum of normalized shortcut weights


def _size(ctx: Ctx, name: str) -> str:
    return "x".join(str(d) for d in ctx.shape(name)[1:])


def route(ctx: Ctx, s: Section) -> str:
    """Concatenate layers along channels; with ``groups``, take part ``group_id`` of each one's channels."""
    groups, group_id = s.int("groups", 1), s.int("group_id", 0)
    if groups < 1 or not 0 <= group_id < groups:
        raise s.error(f"group_id={group_id} must be within 0..groups-1 (groups={groups})", "group_id")
    indices = s.ints("layers")
    if not indices:
        raise s.error("'layers=' names no layer", "layers")
    parts = []
    for index in indices:
        x = ctx.layer(index, "layers")
        channels = ctx.shape(x)[1]
        if channels % groups:
            raise s.error(f"groups={groups} does not divide the {channels} channels of layer {index}", "groups")
        if groups > 1:
            part = channels // groups
            consts = [ctx.const(what, np.asarray([v], np.int64))
                      for what, v in (("starts", group_id * part), ("ends", (group_id + 1) * part), ("axes", 1))]
            x = ctx.emit("Slice", [x, *consts])
        parts.append(x)
    sizes = {ctx.shape(p)[2:] for p in parts}
    if len(sizes) > 1:
        raise s.error(f"cannot concatenate maps of different sizes: {', '.join(_size(ctx, p) for p in parts)}",
                      "layers")
    return parts[0] if len(parts) == 1 else ctx.emit("Concat", parts, axis=1)


def _fit(ctx: Ctx, s: Section, x: str, shape: tuple[int, ...]) -> str:
    """``x`` made to add onto a map of ``shape`` as darknet does: a larger map is sampled with the size
    ratio as stride (ResNet's downsampling shortcuts); channels are cut, or zero-padded, to ``shape``'s."""
    have = ctx.shape(x)
    stride = have[2] // shape[2]
    if have[2:] != shape[2:]:
        if stride < 2 or have[2:] != (shape[2] * stride, shape[3] * stride):
            raise s.error(f"adds a {_size(ctx, x)} map to a {'x'.join(map(str, shape[1:]))} one: the sizes must "
                          f"match, or be a whole multiple of it", "from")
    channels = min(have[1], shape[1])
    if have[2:] != shape[2:] or have[1] > shape[1]:
        consts = [ctx.const(what, np.asarray(v, np.int64)) for what, v in
                  (("starts", [0, 0, 0]), ("ends", [channels, have[2], have[3]]), ("axes", [1, 2, 3]),
                   ("steps", [1, stride, stride]))]
        x = ctx.emit("Slice", [x, *consts])
    if channels < shape[1]:
        x = ctx.emit("Pad", [x, ctx.const("pads", np.asarray([0, 0, 0, 0, 0, shape[1] - channels, 0, 0], np.int64))])
    return x


def _shortcut_weights(ctx: Ctx, s: Section, count: int, channels: int) -> np.ndarray | None:
    """The (normalized) weight of each summed input, per input or per input and channel; None if unweighted."""
    kind = s.str("weights_type", "none")
    if kind == "none":
        return None
    if kind not in ("per_feature", "per_channel"):
        raise s.error(f"weights_type={kind} is not supported (none, per_feature, per_channel)", "weights_type")
    shape = (count, 1) if kind == "per_feature" else (count, channels)
    w = ctx.take(shape, "shortcut weights").astype(np.float64)
    norm = s.str("weights_normalization", "none")
    if norm == "relu":
        w = np.maximum(w, 0) / (SHORTCUT_EPSILON + np.maximum(w, 0).sum(axis=0))
    elif norm == "softmax":
        e = np.exp(w - w.max(axis=0))
        w = e / (SHORTCUT_EPSILON + e.sum(axis=0))
    elif norm != "none":
        raise s.error(f"weights_normalization={norm} is not supported (none, relu, softmax)", "weights_normalization")
    return np.broadcast_to(w, (count, channels)).astype(np.float32)


def shortcut(ctx: Ctx, s: Section) -> str:
    """The previous layer plus the ``from`` layers (fitted to the previous layer's shape by ``_fit``),
    each weighted by the file's shortcut weights, or the previous one by ``alpha`` and the others by
    ``beta`` (darknet's unweighted form), then the activation."""
    x = ctx.input()
    shape = ctx.shape(x)
    sources = [x] + [ctx.layer(i, "from") for i in s.ints("from")]
    weights = _shortcut_weights(ctx, s, len(sources), shape[1])
    if weights is None:
        alpha, beta = s.float("alpha", 1.0), s.float("beta", 1.0)
        weights = np.asarray([alpha] + [beta] * (len(sources) - 1), np.float32).reshape(-1, 1)
    total = None
    for i, source in enumerate(sources):
        term = _fit(ctx, s, source, shape)
        if np.any(weights[i] != 1.0):
            factor = weights[i].reshape(1, -1, 1, 1) if weights.shape[1] > 1 else weights[i].reshape(())
            term = ctx.emit("Mul", [term, ctx.const("weight", factor)])
        total = term if total is None else ctx.emit("Add", [total, term])
    return activate(ctx, total, s, "linear")


def scale_channels(ctx: Ctx, s: Section) -> str:
    """Each channel of the ``from`` layer times the previous layer's value for it (C x 1 x 1)."""
    s.refuse("scale_wh", 0)
    x, source = ctx.input(), ctx.layer(s.int("from"), "from")
    if ctx.shape(x)[1:] != (ctx.shape(source)[1], 1, 1):
        raise s.error(f"scales a {_size(ctx, source)} map by a {_size(ctx, x)} one: it needs one value per "
                      f"channel ({ctx.shape(source)[1]}x1x1)", "from")
    return activate(ctx, ctx.emit("Mul", [source, x]), s, "linear")


def sam(ctx: Ctx, s: Section) -> str:
    """Spatial attention: the ``from`` layer times the previous layer, value by value."""
    x, source = ctx.input(), ctx.layer(s.int("from"), "from")
    if ctx.shape(x) != ctx.shape(source):
        raise s.error(f"multiplies a {_size(ctx, source)} map by a {_size(ctx, x)} one: the shapes must match",
                      "from")
    return activate(ctx, ctx.emit("Mul", [source, x]), s, "linear")


def detection(ctx: Ctx, s: Section) -> str:
    """``[yolo]``/``[region]``: the raw feature map becomes a model output. Its channels must hold
    every anchor's box, objectness and class scores."""
    x = ctx.input()
    classes = s.int("classes", 20)
    if s.type == "yolo":
        anchors = len(s.ints("mask")) if s.has("mask") else s.int("num", 1)
        expected = anchors * (classes + 5)
    else:
        anchors = s.int("num", 1)
        expected = anchors * (classes + s.int("coords", 4) + 1)
    if ctx.shape(x)[1] != expected:
        raise s.error(f"its input has {ctx.shape(x)[1]} channels, but {anchors} anchors with {classes} classes need "
                      f"{expected}")
    ctx.mark_output(x)
    return x
