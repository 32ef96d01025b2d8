"""Layers without weights on one input: pools, upsample, reorg, softmax, dropout and cost."""

from __future__ import annotations

import numpy as np

from rknn_darknet.cfg import Section
from rknn_darknet.context import Ctx


def maxpool(ctx: Ctx, s: Section) -> str:
    """Darknet's rule: ``padding`` (default ``size - 1``) is split ``padding // 2`` before and the
    rest after, out = (in + padding - size) / stride + 1, so ``size=2 stride=1`` keeps the size."""
    for key, neutral in (("maxpool_depth", 0), ("antialiasing", 0), ("stride_x", s.int("stride", 1)),
                         ("stride_y", s.int("stride", 1))):
        s.refuse(key, neutral)
    x = ctx.input()
    stride = s.int("stride", 1)
    size = s.int("size", stride)
    padding = s.int("padding", size - 1)
    if min(size, stride) < 1 or padding < 0:
        raise s.error(f"size={size} and stride={stride} must be positive and padding={padding} not negative")
    height, width = ctx.shape(x)[2:]
    if min(height, width) + padding < size:
        raise s.error(f"the {size}x{size} window does not fit the {height}x{width} input with padding {padding}")
    begin, end = padding // 2, padding - padding // 2
    return ctx.emit("MaxPool", [x], kernel_shape=[size, size], strides=[stride, stride],
                    pads=[begin, begin, end, end])


def avgpool(ctx: Ctx, s: Section) -> str:
    """Darknet's avgpool averages each whole channel."""
    return ctx.emit("GlobalAveragePool", [ctx.input()])


def upsample(ctx: Ctx, s: Section) -> str:
    """Nearest-neighbour upsampling by ``stride``, times ``scale``."""
    stride, scale = s.int("stride", 2), s.float("scale", 1.0)
    if stride < 1:
        raise s.error(f"stride={stride} (downsampling) is not supported; only positive strides", "stride")
    y = ctx.emit("Resize", [ctx.input(), "", ctx.const("scales", np.asarray([1, 1, stride, stride], np.float32))],
                 mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    return y if scale == 1.0 else ctx.emit("Mul", [y, ctx.const("scale", np.asarray(scale, np.float32))])


def reorg(ctx: Ctx, s: Section) -> str:
    """Darknet's (YOLOv2) reorg, which is not a plain space-to-depth: the C x H x W input is read as
    C/s² x Hs x Ws and written as C x H x W, then seen as Cs² x H/s x W/s."""
    s.refuse("reverse", 0)
    stride = s.int("stride", 2)
    x = ctx.input()
    _, channels, height, width = ctx.shape(x)
    if stride < 1 or channels % (stride * stride) or height % stride or width % stride:
        raise s.error(f"stride={stride} must divide the {height}x{width} input and its square the {channels} "
                      f"channels", "stride")
    parts = ctx.reshape(x, (1, channels // stride ** 2, height, stride, width, stride))
    moved = ctx.emit("Transpose", [parts], perm=[0, 3, 5, 1, 2, 4])
    return ctx.reshape(moved, (1, channels * stride ** 2, height // stride, width // stride))


def softmax(ctx: Ctx, s: Section) -> str:
    """Softmax (of the input divided by ``temperature``) over all values of each of ``groups`` equal
    parts of the flattened input."""
    s.refuse("spatial", 0)
    x = ctx.input()
    temperature = s.float("temperature", 1.0)
    if temperature <= 0:
        raise s.error(f"temperature={temperature} must be positive", "temperature")
    if temperature != 1.0:
        x = ctx.emit("Mul", [x, ctx.const("inverse_temperature", np.asarray(1 / temperature, np.float32))])
    shape = ctx.shape(x)
    groups = s.int("groups", 1)
    total = int(np.prod(shape))
    if groups < 1 or total % groups:
        raise s.error(f"groups={groups} must divide the {total} input values", "groups")
    if groups == 1 and total == shape[1]:
        return ctx.emit("Softmax", [x], axis=1)
    grouped = ctx.emit("Softmax", [ctx.reshape(x, (1, groups, total // groups))], axis=2)
    return ctx.reshape(grouped, shape)


def identity(ctx: Ctx, s: Section) -> str:
    """``[dropout]`` and ``[cost]``: nothing at inference."""
    return ctx.input()
