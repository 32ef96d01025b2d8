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


def _fit_channels(ctx: Ctx, x: str, channels: int) -> str:
    """``x`` cut to, or zero-padded to, ``channels`` channels (darknet adds the overlapping ones)."""
    have = ctx.shape(x)[1]
    if have > channels:
        consts = [ctx.const(what, np.asarray([v], np.int64)) for what, v in (("starts", 0), ("ends", channels),
                                                                            ("axes", 1))]
        return ctx.emit("Slice", [x, *consts])
    if have < channels:
        return ctx.emit("Pad", [x, ctx.const("pads", np.asarray([0, 0, 0, 0, 0, channels - have, 0, 0], np.int64))])
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
    """The previous layer plus the ``from`` layers (channels cut or zero-padded to the previous
    layer's), each optionally weighted, then the activation."""
    s.refuse("beta", 0)
    x = ctx.input()
    shape = ctx.shape(x)
    sources = [x] + [ctx.layer(i, "from") for i in s.ints("from")]
    for other in sources[1:]:
        if ctx.shape(other)[2:] != shape[2:]:
            raise s.error(f"adds a {_size(ctx, other)} map to a {_size(ctx, x)} one: the sizes must match", "from")
    weights = _shortcut_weights(ctx, s, len(sources), shape[1])
    alpha = s.float("alpha", 1.0)  # OpenCV's name for a weight on the previous layer
    total = None
    for i, source in enumerate(sources):
        term = _fit_channels(ctx, source, shape[1])
        if weights is not None:
            term = ctx.emit("Mul", [term, ctx.const("weight", weights[i].reshape(1, -1, 1, 1))])
        elif i == 0 and alpha != 1.0:
            term = ctx.emit("Mul", [term, ctx.const("alpha", np.asarray(alpha, np.float32))])
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
    """``[yolo]``/``[region]``: the raw feature map becomes a model output."""
    x = ctx.input()
    ctx.mark_output(x)
    return x
