"""Converters of MXNet's data-movement ops: Concat, Flatten, Reshape, transpose, Crop, UpSampling, slice_axis,
slice, and the ops that are the identity at inference (Dropout, _copy, BlockGrad)."""

from __future__ import annotations

import numpy as np

from rknn_core.errors import RknnError
from rknn_mxnet import attr_values as av
from rknn_mxnet.context import Ctx
from rknn_mxnet.symbol import MxNode


def _axis(axis: int, rank: int, what: str) -> int:
    if not -rank <= axis < rank:
        raise RknnError(f"{what} {axis} is out of range for an input of rank {rank}")
    return axis % rank


def concat(ctx: Ctx, node: MxNode) -> None:
    axis = _axis(av.integer(node.attrs, "dim", 1), len(ctx.shape(0)), "dim")
    ctx.result("Concat", [ctx.inp(k) for k in range(ctx.n_inputs)], {"axis": axis})


def flatten(ctx: Ctx, node: MxNode) -> None:
    """(d0, d1, ...) -> (d0, d1 * ...)."""
    shape = ctx.shape(0)
    new = (shape[0] if shape else 1, int(np.prod(shape[1:], dtype=np.int64)))
    ctx.result("Reshape", [ctx.inp(0), ctx.ints("shape", new)])


def reshape_shape(shape: tuple[int, ...], spec: tuple[int, ...], reverse: bool = False) -> tuple[int, ...]:
    """MXNet's Reshape codes: 0 copies an input axis, -1 is inferred, -2 copies every remaining axis, -3 merges
    two axes, -4 splits one into the next two values (one may be -1); ``reverse`` matches from the right."""
    dims, codes = list(shape), list(spec)
    if reverse:
        dims.reverse()
        codes.reverse()
    out: list[int] = []
    src, inferred, i = 0, -1, 0

    def take(count: int, code: int) -> list[int]:
        nonlocal src
        if src + count > len(dims):
            raise RknnError(f"shape {list(spec)}: code {code} needs input axis {src + count - 1}, but the input "
                            f"{list(shape)} has {len(dims)} axes")
        src += count
        return dims[src - count:src]

    while i < len(codes):
        code = codes[i]
        if code == 0:
            out += take(1, code)
        elif code == -1:
            if inferred >= 0:
                raise RknnError(f"shape {list(spec)} has more than one -1")
            inferred = len(out)
            out.append(1)
            src += 1
        elif code == -2:
            out += dims[src:]
            src = len(dims)
        elif code == -3:
            a, b = take(2, code)
            out.append(a * b)
        elif code == -4:
            if i + 2 >= len(codes):
                raise RknnError(f"shape {list(spec)}: -4 must be followed by two sizes")
            (whole,), first, second = take(1, code), codes[i + 1], codes[i + 2]
            if first == -1 and second == -1 or first in (0, -2, -3, -4) or second in (0, -2, -3, -4):
                raise RknnError(f"shape {list(spec)}: the two sizes after -4 must be positive (one may be -1)")
            first = whole // second if first == -1 else first
            second = whole // first if second == -1 else second
            if first * second != whole:
                raise RknnError(f"shape {list(spec)}: -4 splits axis {src - 1} of size {whole} into {first} x "
                                f"{second}, which does not fit")
            out += [first, second]
            i += 2
        elif code > 0:
            out.append(code)
            src += 1
        else:
            raise RknnError(f"shape {list(spec)} has the invalid code {code}")
        i += 1
    total = int(np.prod(shape, dtype=np.int64))
    if inferred >= 0:
        known = int(np.prod(out, dtype=np.int64))
        if known == 0 or total % known:
            raise RknnError(f"shape {list(spec)} cannot hold the input's {total} values (input {list(shape)})")
        out[inferred] = total // known
    if reverse:
        out.reverse()
    if int(np.prod(out, dtype=np.int64)) != total:
        raise RknnError(f"shape {list(spec)} gives {out}, which does not hold the input's {total} values "
                        f"(input {list(shape)})")
    return tuple(out)


def legacy_target_shape(shape: tuple[int, ...], target: tuple[int, ...], keep_highest: bool) -> tuple[int, ...]:
    """The deprecated ``target_shape`` of Reshape: one 0 is inferred; ``keep_highest`` keeps axis 0."""
    out = list(target)
    if keep_highest:
        out[0] = shape[0]
    zeros = [i for i in range(1 if keep_highest else 0, len(out)) if out[i] == 0]
    if len(zeros) == 1:
        out[zeros[0]] = 1
        out[zeros[0]] = int(np.prod(shape, dtype=np.int64)) // int(np.prod(out, dtype=np.int64))
    if int(np.prod(out, dtype=np.int64)) != int(np.prod(shape, dtype=np.int64)):
        raise RknnError(f"target_shape {list(target)} gives {out}, which does not hold the input {list(shape)}")
    return tuple(out)


def reshape(ctx: Ctx, node: MxNode) -> None:
    a = node.attrs
    spec = av.ints(a, "shape", ())
    if spec:
        new = reshape_shape(ctx.shape(0), spec, av.boolean(a, "reverse", False))
    elif av.ints(a, "target_shape", ()):
        new = legacy_target_shape(ctx.shape(0), av.ints(a, "target_shape"), av.boolean(a, "keep_highest", False))
    else:
        raise RknnError("needs the attribute 'shape'")
    ctx.result("Reshape", [ctx.inp(0), ctx.ints("shape", new)])


def transpose(ctx: Ctx, node: MxNode) -> None:
    rank = len(ctx.shape(0))
    axes = av.ints(node.attrs, "axes", ())
    perm = [_axis(x, rank, "axes entry") for x in axes] if axes else list(range(rank))[::-1]
    if sorted(perm) != list(range(rank)):
        raise RknnError(f"axes {list(axes)} is not a permutation of the input's {rank} axes")
    ctx.result("Transpose", [ctx.inp(0)], {"perm": perm})


def _slice(ctx: Ctx, starts: list[int], ends: list[int], axes: list[int], steps: list[int] | None = None) -> None:
    inputs = [ctx.inp(0), ctx.ints("starts", starts), ctx.ints("ends", ends), ctx.ints("axes", axes)]
    ctx.result("Slice", inputs + ([ctx.ints("steps", steps)] if steps else []))


def crop(ctx: Ctx, node: MxNode) -> None:
    """To ``h_w`` (one input) or to the spatial size of the second input, at ``offset`` or centred."""
    a = node.attrs
    shape = ctx.shape(0)
    if len(shape) != 4:
        raise RknnError(f"Crop needs a 4-D (N, C, H, W) input, got shape {list(shape)}")
    if ctx.n_inputs > 1:
        like = ctx.shape(1)
        if len(like) < 2:
            raise RknnError(f"the second input (crop_like) has shape {list(like)}; it needs H and W")
        size = like[-2:] if len(like) != 4 else like[2:]
    else:
        size = av.ints(a, "h_w", (0, 0))
    if av.boolean(a, "center_crop", False):
        offset = tuple((d - s) // 2 for d, s in zip(shape[2:], size))
    else:
        offset = av.ints(a, "offset", (0, 0))
    if len(size) != 2 or len(offset) != 2 or any(o < 0 or s < 1 or o + s > d
                                                 for o, s, d in zip(offset, size, shape[2:])):
        raise RknnError(f"a crop of size {list(size)} at offset {list(offset)} does not fit the input's "
                        f"{list(shape[2:])}")
    _slice(ctx, list(offset), [o + s for o, s in zip(offset, size)], [2, 3])


def slice_axis(ctx: Ctx, node: MxNode) -> None:
    a = node.attrs
    shape = ctx.shape(0)
    axis = _axis(av.integer(a, "axis"), len(shape), "axis")
    dim = shape[axis]
    begin, end = av.integer(a, "begin"), av.opt_integer(a, "end")
    begin = begin + dim if begin < 0 else begin
    end = dim if end is None else end + dim if end < 0 else end
    if not 0 <= begin < end <= dim:
        raise RknnError(f"begin {av.integer(a, 'begin')} and end {a.get('end')} do not select a non-empty range of "
                        f"axis {axis} (size {dim})")
    _slice(ctx, [begin], [end], [axis])


def slice_(ctx: Ctx, node: MxNode) -> None:
    """``slice``: begin/end/step tuples over the leading axes, ``None`` for the defaults (as Python slices)."""
    a = node.attrs
    shape = ctx.shape(0)
    begin, end = av.opt_ints(a, "begin"), av.opt_ints(a, "end")
    step = av.opt_ints(a, "step", ()) or (None,) * len(begin)
    if not len(begin) == len(end) == len(step) or len(begin) > len(shape):
        raise RknnError(f"begin {list(begin)}, end {list(end)} and step {list(step)} must have one entry per "
                        f"sliced axis (at most {len(shape)})")
    starts, ends, steps = [], [], []
    for axis, (b, e, s) in enumerate(zip(begin, end, step)):
        if s == 0:
            raise RknnError(f"step {list(step)} has a 0")
        start, stop, stride = slice(b, e, s).indices(shape[axis])
        if len(range(start, stop, stride)) == 0:
            raise RknnError(f"begin {b}, end {e}, step {s} select nothing of axis {axis} (size {shape[axis]})")
        starts.append(start)
        ends.append(stop if stop >= 0 else -shape[axis] - 1)  # a negative step running past index 0
        steps.append(stride)
    _slice(ctx, starts, ends, list(range(len(starts))), steps)


def upsampling(ctx: Ctx, node: MxNode) -> None:
    """nearest: every input repeated to ``scale`` x the first one's size, then concatenated (or summed, by
    ``multi_input_mode``); bilinear: MXNet's fixed-kernel Deconvolution with the learned weight input."""
    a = node.attrs
    scale = av.integer(a, "scale")
    if scale < 1:
        raise RknnError(f"scale {scale} must be a positive integer")
    kind = av.choice(a, "sample_type", ("nearest", "bilinear"), "nearest")
    if kind == "bilinear":
        _bilinear(ctx, node, scale)
        return
    height, width = ctx.shape(0)[2:] if len(ctx.shape(0)) == 4 else (0, 0)
    outs = []
    for k in range(ctx.n_inputs):
        shape = ctx.shape(k)
        if len(shape) != 4 or (height * scale) % shape[2] or (width * scale) % shape[3]:
            raise RknnError(f"input {k} of shape {list(shape)} cannot be scaled to {scale} x the first input's "
                            f"size {[height, width]}")
        factor = [1.0, 1.0, height * scale / shape[2], width * scale / shape[3]]
        outs.append(ctx.emit("Resize", [ctx.inp(k), "", ctx.const("scales", np.array(factor, np.float32))],
                             {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                              "nearest_mode": "floor"})[0])
    if len(outs) == 1:
        ctx.bind(0, outs[0])
    elif av.choice(a, "multi_input_mode", ("concat", "sum"), "concat") == "concat":
        ctx.result("Concat", outs, {"axis": 1})
    else:
        ctx.result("Sum", outs)


def _bilinear(ctx: Ctx, node: MxNode, scale: int) -> None:
    shape = ctx.shape(0)
    if len(shape) != 4 or ctx.n_inputs != 2:
        raise RknnError(f"bilinear UpSampling needs a 4-D input and a weight input, got shape {list(shape)} and "
                        f"{ctx.n_inputs} input(s)")
    channels = av.integer(node.attrs, "num_filter", shape[1])
    if channels != shape[1]:
        raise RknnError(f"num_filter {channels} must equal the input's {shape[1]} channels")
    kernel, pad = 2 * scale - scale % 2, -(-(scale - 1) // 2)
    weight = ctx.param(1, (channels, 1, kernel, kernel), "weight")
    ctx.result("ConvTranspose", [ctx.inp(0), ctx.const("weight", weight)],
               {"kernel_shape": [kernel, kernel], "strides": [scale, scale], "pads": [pad] * 4, "group": channels})


def identity(ctx: Ctx, node: MxNode) -> None:
    """Dropout (in training mode: off at inference), _copy, BlockGrad: the output is the input."""
    if node.op == "Dropout" and av.choice(node.attrs, "mode", ("training", "always"), "training") == "always" \
            and av.number(node.attrs, "p", 0.5) > 0:
        raise RknnError("Dropout with mode 'always' drops values at inference too; it is not supported")
    ctx.bind(0, ctx.inp(0))


CONVERTERS = {
    "Concat": concat, "concat": concat, "Flatten": flatten, "flatten": flatten, "Reshape": reshape, "reshape": reshape,
    "transpose": transpose, "Crop": crop, "slice_axis": slice_axis, "slice": slice_, "crop": slice_,
    "UpSampling": upsampling, "Dropout": identity, "_copy": identity, "identity": identity, "BlockGrad": identity,
    "stop_gradient": identity,
}
