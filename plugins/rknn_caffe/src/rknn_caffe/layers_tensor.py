"""Converters of Caffe's data-movement layers: Concat, Slice, Split, Flatten, Reshape, Permute, Crop,
Eltwise, Dropout, and the resizing layers of the forks (Upsample, Interp)."""

from __future__ import annotations

import numpy as np

from rknn_caffe.context import Ctx
from rknn_caffe.net import CaffeLayer
from rknn_core.errors import RknnError


def _axis(axis: int, rank: int, what: str) -> int:
    a = axis + rank if axis < 0 else axis
    if not 0 <= a < rank:
        raise RknnError(f"{what} {axis} is out of range for a rank-{rank} bottom")
    return a


def _ints(ctx: Ctx, base: str, values) -> str:
    return ctx.const(f"{ctx.layer.name}/{base}", np.array(list(values), np.int64))


def concat(ctx: Ctx, layer: CaffeLayer) -> None:
    p = layer.param.concat_param
    axis = p.concat_dim if p.HasField("concat_dim") and not p.HasField("axis") else p.axis
    axis = _axis(axis, len(ctx.shape(0)), "concat_param axis")
    ctx.top(0, "Concat", [ctx.bottom(k) for k in range(len(layer.bottoms))], {"axis": axis})


def slice_(ctx: Ctx, layer: CaffeLayer) -> None:
    p = layer.param.slice_param
    shape = ctx.shape(0)
    axis = _axis(p.slice_dim if p.HasField("slice_dim") and not p.HasField("axis") else p.axis, len(shape),
                 "slice_param axis")
    dim, count = shape[axis], len(layer.tops)
    points = list(p.slice_point)
    if points:
        if len(points) != count - 1 or points != sorted(points) or points[0] <= 0 or points[-1] >= dim:
            raise RknnError(f"slice_point {points} must be {count - 1} increasing points inside (0, {dim}) for "
                            f"{count} tops")
        sizes = np.diff([0, *points, dim])
    else:
        if dim % count:
            raise RknnError(f"axis {axis} of size {dim} does not split evenly into {count} tops")
        sizes = [dim // count] * count
    if count == 1:
        ctx.top(0, "Identity", [ctx.bottom(0)])
        return
    ctx.tops("Split", [ctx.bottom(0), _ints(ctx, "split", sizes)], {"axis": axis})


def alias(ctx: Ctx, layer: CaffeLayer) -> None:
    """Split and Dropout (inference): every top is the bottom."""
    for k in range(len(layer.tops)):
        ctx.bind(k, ctx.bottom(0))


def flatten(ctx: Ctx, layer: CaffeLayer) -> None:
    p = layer.param.flatten_param
    shape = ctx.shape(0)
    start, end = _axis(p.axis, len(shape), "flatten_param axis"), _axis(p.end_axis, len(shape), "flatten_param end_axis")
    if end < start:
        raise RknnError(f"flatten_param end_axis {p.end_axis} comes before axis {p.axis}")
    new = (*shape[:start], int(np.prod(shape[start:end + 1], dtype=np.int64)), *shape[end + 1:])
    ctx.top(0, "Reshape", [ctx.bottom(0), _ints(ctx, "shape", new)])


def reshape_shape(shape: tuple[int, ...], dims: list[int], axis: int, num_axes: int) -> tuple[int, ...]:
    """Caffe's Reshape: 0 copies the bottom's axis, one -1 is inferred; ``axis``/``num_axes`` choose the span."""
    rank = len(shape)
    start = axis + rank + 1 if axis < 0 else axis
    end = rank if num_axes == -1 else start + num_axes
    if not 0 <= start <= end <= rank:
        raise RknnError(f"reshape_param axis {axis} / num_axes {num_axes} do not fit a bottom of shape {list(shape)}")
    if dims.count(-1) > 1:
        raise RknnError(f"reshape_param shape {dims} has more than one -1")
    new = []
    for i, d in enumerate(dims):
        if d == 0:
            if start + i >= rank:
                raise RknnError(f"reshape_param shape {dims}: dim {i} is 0 but the bottom has no axis {start + i}")
            new.append(shape[start + i])
        elif d < -1:
            raise RknnError(f"reshape_param shape {dims} has the invalid size {d}")
        else:
            new.append(d)
    out = [*shape[:start], *new, *shape[end:]]
    total = int(np.prod(shape, dtype=np.int64))
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1], dtype=np.int64))
        if known == 0 or total % known:
            raise RknnError(f"reshape_param shape {dims} cannot hold the bottom's {total} values {list(shape)}")
        out[out.index(-1)] = total // known
    if int(np.prod(out, dtype=np.int64)) != total:
        raise RknnError(f"reshape_param shape {dims} gives {out}, which does not hold the bottom's {total} values "
                        f"{list(shape)}")
    return tuple(out)


def reshape(ctx: Ctx, layer: CaffeLayer) -> None:
    p = layer.param.reshape_param
    new = reshape_shape(ctx.shape(0), list(p.shape.dim), p.axis, p.num_axes)
    ctx.top(0, "Reshape", [ctx.bottom(0), _ints(ctx, "shape", new)])


def permute(ctx: Ctx, layer: CaffeLayer) -> None:
    rank = len(ctx.shape(0))
    order = [int(a) for a in layer.param.permute_param.order]
    if len(set(order)) != len(order) or any(not 0 <= a < rank for a in order):
        raise RknnError(f"permute_param order {order} is not a list of distinct axes of a rank-{rank} bottom")
    order += [a for a in range(rank) if a not in order]  # Caffe keeps the unnamed axes in their order
    ctx.top(0, "Transpose", [ctx.bottom(0)], {"perm": order})


def crop(ctx: Ctx, layer: CaffeLayer) -> None:
    p = layer.param.crop_param
    shape, ref = ctx.shape(0), ctx.shape(1)
    if len(shape) != len(ref):
        raise RknnError(f"the bottoms have ranks {len(shape)} and {len(ref)}; Crop needs equal ranks")
    axis = _axis(p.axis, len(shape), "crop_param axis")
    offsets = list(p.offset)
    n = len(shape) - axis
    if len(offsets) not in (0, 1, n):
        raise RknnError(f"crop_param gives {len(offsets)} offsets; it takes 0, 1 or {n} (one per cropped axis)")
    offsets = [0] * n if not offsets else offsets * n if len(offsets) == 1 else offsets
    axes = list(range(axis, len(shape)))
    for a, off in zip(axes, offsets):
        if off + ref[a] > shape[a]:
            raise RknnError(f"axis {a}: offset {off} + size {ref[a]} exceeds the bottom's size {shape[a]}")
    ends = [off + ref[a] for a, off in zip(axes, offsets)]
    ctx.top(0, "Slice", [ctx.bottom(0), _ints(ctx, "starts", offsets), _ints(ctx, "ends", ends), _ints(ctx, "axes", axes)])


def eltwise(ctx: Ctx, layer: CaffeLayer) -> None:
    p = layer.param.eltwise_param
    n = len(layer.bottoms)
    if n < 2:
        raise RknnError(f"Eltwise needs at least 2 bottoms, got {n}")
    xs = [ctx.bottom(k) for k in range(n)]
    coeffs = list(p.coeff)
    if coeffs and (p.operation != p.SUM or len(coeffs) != n):
        raise RknnError(f"eltwise_param coeff {coeffs} needs operation SUM and one coefficient per bottom ({n})")
    if p.operation == p.MAX:
        ctx.top(0, "Max", xs)
        return
    op = "Mul" if p.operation == p.PROD else "Add"
    if coeffs:
        xs = [x if c == 1.0 else ctx.emit("Mul", [x, ctx.scalar(c)])[0] for x, c in zip(xs, coeffs)]
    y = xs[0]
    for i, x in enumerate(xs[1:], 2):
        y = ctx.top(0, op, [y, x]) if i == n else ctx.emit(op, [y, x])[0]


def upsample(ctx: Ctx, layer: CaffeLayer) -> None:
    """Nearest-neighbour upsampling by an integer factor (the YOLO ports' Upsample with one bottom)."""
    p = layer.param.upsample_param
    shape = ctx.shape(0)
    if len(layer.bottoms) != 1:
        raise RknnError("Upsample with a second bottom (SegNet's max-unpooling with a mask) is not supported")
    if len(shape) != 4:
        raise RknnError(f"Upsample needs a 4-D bottom, got shape {list(shape)}")
    if p.HasField("upsample_h") or p.HasField("upsample_w"):
        size = [p.upsample_h or shape[2] * p.scale, p.upsample_w or shape[3] * p.scale]
    else:
        size = [shape[2] * (p.scale_h or p.scale), shape[3] * (p.scale_w or p.scale)]
    if size[0] % shape[2] or size[1] % shape[3]:
        raise RknnError(f"output size {size} is not an integer multiple of the bottom's {list(shape[2:])}")
    scales = ctx.const(f"{layer.name}/scales", np.array([1, 1, size[0] / shape[2], size[1] / shape[3]], np.float32))
    ctx.top(0, "Resize", [ctx.bottom(0), "", scales], {"mode": "nearest", "coordinate_transformation_mode":
                                                        "asymmetric", "nearest_mode": "floor"})


def interp(ctx: Ctx, layer: CaffeLayer) -> None:
    """Bilinear resize with aligned corners (PSPNet/DeepLab's Interp): size from height/width, a zoom or a
    shrink factor, or the second bottom."""
    p = layer.param.interp_param
    shape = ctx.shape(0)
    if len(shape) != 4:
        raise RknnError(f"Interp needs a 4-D bottom, got shape {list(shape)}")
    if p.pad_beg or p.pad_end:
        raise RknnError("interp_param pad_beg/pad_end are not supported")
    h, w = shape[2:]
    if len(layer.bottoms) > 1:
        size = list(ctx.shape(1)[2:])
    elif p.height and p.width:
        size = [p.height, p.width]
    elif p.shrink_factor != 1 or p.zoom_factor != 1:
        if p.shrink_factor < 1 or p.zoom_factor < 1:
            raise RknnError("interp_param shrink_factor and zoom_factor must be at least 1")
        h, w = (h - 1) // p.shrink_factor + 1, (w - 1) // p.shrink_factor + 1
        size = [h + (h - 1) * (p.zoom_factor - 1), w + (w - 1) * (p.zoom_factor - 1)]
    else:
        raise RknnError("interp_param needs height and width, a zoom_factor, a shrink_factor or a second bottom")
    sizes = _ints(ctx, "sizes", [*shape[:2], *size])
    ctx.top(0, "Resize", [ctx.bottom(0), "", "", sizes], {"mode": "linear",
                                                           "coordinate_transformation_mode": "align_corners"})


CONVERTERS = {
    "Concat": concat, "Slice": slice_, "Split": alias, "Dropout": alias, "Flatten": flatten, "Reshape": reshape,
    "Permute": permute, "Crop": crop, "Eltwise": eltwise, "Upsample": upsample, "Interp": interp,
}
