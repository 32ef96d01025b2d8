"""Converters of data-movement and shape ops (they work in the TF layout unless noted)."""

from __future__ import annotations

import numpy as np

from rknn_core.errors import RknnError
from rknn_tf.context import NCHW, NCHW_AXIS, TF, Context
from rknn_tf.graphdef import np_dtype
from rknn_tf.ops_math import keeps_order, norm_axes
from rknn_tf.tfnode import TfNode

BIG = 2**62  # "to the end of the axis" for Slice


def _ints(ctx: Context, key: str, what: str) -> list[int]:
    return [int(v) for v in np.asarray(ctx.need_const(key, what)).reshape(-1)]


def _axes_const(ctx: Context, node: TfNode, axes) -> str:
    return ctx.add_const(f"{node.name}/axes", np.asarray(axes, np.int64))


def concat(ctx: Context, node: TfNode) -> None:
    if node.op == "Concat":
        axis_key, keys = node.inputs[0], node.inputs[1:]
    else:
        axis_key, keys = node.inputs[-1], node.inputs[:-1]
    rank = ctx.rank(keys[0])
    axis = norm_axes(ctx.need_const(axis_key, "the concat axis"), rank)[0]
    variable = [k for k in keys if ctx.const(k) is None]
    nchw = rank == 4 and any(ctx.layout(k) == NCHW for k in variable)
    layout = NCHW if nchw else TF
    ctx.result(node.name, "Concat", [ctx.get(k, layout) for k in keys],
               {"axis": NCHW_AXIS[axis] if nchw else axis}, layout)


def pack(ctx: Context, node: TfNode) -> None:
    rank = ctx.rank(node.inputs[0]) + 1
    axis = int(node.attr("axis", 0)) % rank
    axes = _axes_const(ctx, node, [axis])
    parts = [ctx.emit("Unsqueeze", [ctx.get(k), axes])[0] for k in node.inputs]
    ctx.result(node.name, "Concat", parts, {"axis": axis})


def unpack(ctx: Context, node: TfNode) -> None:
    key = node.inputs[0]
    axis = int(node.attr("axis", 0)) % ctx.rank(key)
    num = int(node.attr("num"))
    parts = ctx.emit("Split", [ctx.get(key)], {"axis": axis, "num_outputs": num}, n_out=num)
    axes = _axes_const(ctx, node, [axis])
    for i, part in enumerate(parts):
        ctx.result(node.name, "Squeeze", [part, axes], index=i)


def split(ctx: Context, node: TfNode) -> None:
    if node.op == "Split":
        axis_key, key, sizes = node.inputs[0], node.inputs[1], None
        num = int(node.attr("num_split"))
    else:
        key, axis_key = node.inputs[0], node.inputs[2]
        sizes = _ints(ctx, node.inputs[1], "the split sizes")
        num = len(sizes)
    axis = norm_axes(ctx.need_const(axis_key, "the split axis"), ctx.rank(key))[0]
    dim = ctx.shape(key)[axis]
    if sizes is None:
        if dim % num:
            raise RknnError(f"cannot split an axis of size {dim} into {num} equal parts")
        sizes = [dim // num] * num
    if -1 in sizes:
        sizes[sizes.index(-1)] = dim - (sum(sizes) + 1)
    layout = NCHW if ctx.layout(key) == NCHW and ctx.rank(key) == 4 else TF
    ir_axis = NCHW_AXIS[axis] if layout == NCHW else axis
    split_sizes = ctx.add_const(f"{node.name}/split", np.asarray(sizes, np.int64))
    outs = [ctx.out(node.name, i, layout) for i in range(num)]
    ctx.emit("Split", [ctx.get(key, layout), split_sizes], {"axis": ir_axis}, out=outs)
    for i, out in enumerate(outs):
        ctx.bind(node.name if i == 0 else f"{node.name}:{i}", out, layout)


def _pixel(shape) -> bool:
    """A 4-D shape with H = W = 1: its NHWC and NCHW forms have the same memory order."""
    return len(shape) == 4 and shape[1] == 1 and shape[2] == 1


def reshape(ctx: Context, node: TfNode) -> None:
    key = node.inputs[0]
    target = _ints(ctx, node.inputs[1], "the target shape")
    x = ctx.get(key, NCHW) if ctx.layout(key) == NCHW and _pixel(ctx.shape(key)) else ctx.get(key)
    if -1 in target and target.count(-1) == 1:
        known = int(np.prod([d for d in target if d != -1]))
        target[target.index(-1)] = int(np.prod(ctx.shape(key))) // max(known, 1)
    if _pixel(target):  # [N, 1, 1, C] is held as [N, C, 1, 1] for the convolution that usually follows
        shape = ctx.add_const(f"{node.name}/shape", np.asarray([target[0], target[3], 1, 1], np.int64))
        ctx.result(node.name, "Reshape", [x, shape], {"allowzero": 1}, NCHW)
        return
    shape = ctx.add_const(f"{node.name}/shape", np.asarray(target, np.int64))
    ctx.result(node.name, "Reshape", [x, shape], {"allowzero": 1})


def squeeze(ctx: Context, node: TfNode) -> None:
    key = node.inputs[0]
    shape = ctx.shape(key)
    dims = node.attr("squeeze_dims", []) or [i for i, d in enumerate(shape) if d == 1]
    axes = norm_axes(dims, len(shape))
    nchw = ctx.layout(key) == NCHW and keeps_order(4, axes)
    ir_axes = [NCHW_AXIS[a] for a in axes] if nchw else axes
    ctx.result(node.name, "Squeeze", [ctx.get(key, NCHW if nchw else TF), _axes_const(ctx, node, ir_axes)])


def expand_dims(ctx: Context, node: TfNode) -> None:
    key = node.inputs[0]
    axis = _ints(ctx, node.inputs[1], "the axis")[0]
    axis = axis % (ctx.rank(key) + 1)
    ctx.result(node.name, "Unsqueeze", [ctx.get(key), _axes_const(ctx, node, [axis])])


def pad(ctx: Context, node: TfNode) -> None:
    key = node.inputs[0]
    paddings = np.asarray(ctx.need_const(node.inputs[1], "the paddings"), np.int64).reshape(-1, 2)
    layout = NCHW if ctx.layout(key) == NCHW else TF
    if layout == NCHW:
        paddings = paddings[[0, 3, 1, 2]]
    pads = ctx.add_const(f"{node.name}/pads", np.concatenate([paddings[:, 0], paddings[:, 1]]))
    inputs, attrs = [ctx.get(key, layout), pads], {"mode": "constant"}
    if node.op == "PadV2":
        value = np.asarray(ctx.need_const(node.inputs[2], "the pad value")).reshape(())
        inputs.append(ctx.add_const(f"{node.name}/value", value.astype(ctx.tensor(key).dtype)))
    elif node.op == "MirrorPad":
        mode = node.attr("mode", "REFLECT")
        if mode != "REFLECT":
            raise RknnError(f"MirrorPad mode '{mode}' is not supported (REFLECT is)")
        attrs["mode"] = "reflect"
    ctx.result(node.name, "Pad", inputs, attrs, layout)


def _slice(ctx: Context, node: TfNode, key: str, starts, ends, steps) -> str:
    rank = len(starts)
    axes = [a for a in range(rank) if (starts[a], ends[a], steps[a]) != (0, BIG, 1)]
    x = ctx.get(key)
    if not axes:
        return x
    args = [ctx.add_const(f"{node.name}/{n}", np.asarray([v[a] for a in axes], np.int64))
            for n, v in (("starts", starts), ("ends", ends))]
    args += [_axes_const(ctx, node, axes), ctx.add_const(f"{node.name}/steps", np.asarray([steps[a] for a in axes], np.int64))]
    return ctx.emit("Slice", [x, *args])[0]


def strided_slice(ctx: Context, node: TfNode) -> None:
    """StridedSlice with every mask: one Slice, then a Reshape for shrunk and new axes."""
    key = node.inputs[0]
    shape = ctx.shape(key)
    begin, end, strides = (_ints(ctx, k, w) for k, w in zip(node.inputs[1:4], ("begin", "end", "strides")))
    masks = {m: int(node.attr(f"{m}_mask", 0)) for m in ("begin", "end", "ellipsis", "new_axis", "shrink_axis")}
    n = len(begin)
    consumed = sum(1 for i in range(n) if not (masks["new_axis"] >> i) & 1 and not (masks["ellipsis"] >> i) & 1)
    rank = len(shape)
    starts, ends, steps = [0] * rank, [BIG] * rank, [1] * rank
    final: list[int] = []
    dim = 0
    for i in range(n):
        bit = 1 << i
        if masks["ellipsis"] & bit:
            span = rank - consumed
            final.extend(shape[dim:dim + span])
            dim += span
            continue
        if masks["new_axis"] & bit:
            final.append(1)
            continue
        size, s = shape[dim], strides[i]
        if s == 0:
            raise RknnError("StridedSlice stride 0 is invalid")
        if masks["shrink_axis"] & bit:
            b = begin[i] + size if begin[i] < 0 else begin[i]
            if not 0 <= b < size:
                raise RknnError(f"StridedSlice index {begin[i]} is out of range for an axis of size {size}")
            starts[dim], ends[dim] = b, b + 1
        else:
            sl = slice(None if masks["begin"] & bit else begin[i], None if masks["end"] & bit else end[i], s)
            start, stop, _ = sl.indices(size)
            starts[dim], ends[dim], steps[dim] = start, (stop if stop >= 0 else -BIG), s
            final.append(len(range(size)[sl]))
        dim += 1
    final.extend(shape[dim:])
    sliced = _slice(ctx, node, key, starts, ends, steps)
    target = ctx.add_const(f"{node.name}/shape", np.asarray(final, np.int64))
    ctx.result(node.name, "Reshape", [sliced, target], {"allowzero": 1})


def slice_(ctx: Context, node: TfNode) -> None:
    key = node.inputs[0]
    begin, size = _ints(ctx, node.inputs[1], "begin"), _ints(ctx, node.inputs[2], "size")
    ends = [BIG if s == -1 else b + s for b, s in zip(begin, size)]
    out = _slice(ctx, node, key, begin, ends, [1] * len(begin))
    ctx.result(node.name, "Identity", [out])


def transpose(ctx: Context, node: TfNode) -> None:
    perm = _ints(ctx, node.inputs[1], "the permutation")
    ctx.result(node.name, "Transpose", [ctx.get(node.inputs[0])], {"perm": perm})


def gather(ctx: Context, node: TfNode) -> None:
    if int(node.attr("batch_dims", 0)) != 0:
        raise RknnError("GatherV2 with batch_dims != 0 is not supported")
    params = node.inputs[0]
    axis = 0 if node.op == "Gather" else _ints(ctx, node.inputs[2], "the axis")[0] % ctx.rank(params)
    idx_data = ctx.const(node.inputs[1])
    idx = ctx.get(node.inputs[1]) if idx_data is None else ctx.add_const(f"{node.name}/indices", idx_data.astype(np.int64))
    ctx.result(node.name, "Gather", [ctx.get(params), idx], {"axis": axis})


def shape(ctx: Context, node: TfNode) -> None:
    dtype = np_dtype(node.attr("out_type", 3), node.name)
    dims = ctx.shape(node.inputs[0])
    value = {"Shape": np.asarray(dims), "Size": np.asarray(int(np.prod(dims))), "Rank": np.asarray(len(dims))}[node.op]
    ctx.bind(node.name, ctx.add_const(node.name, value.astype(dtype if node.op != "Rank" else np.int32)))


def fill(ctx: Context, node: TfNode) -> None:
    dims = _ints(ctx, node.inputs[0], "the dimensions")
    value = ctx.need_const(node.inputs[1], "the fill value")
    ctx.bind(node.name, ctx.add_const(node.name, np.full(dims, value, dtype=value.dtype)))


def tile(ctx: Context, node: TfNode) -> None:
    reps = ctx.add_const(f"{node.name}/repeats", np.asarray(_ints(ctx, node.inputs[1], "the multiples"), np.int64))
    ctx.result(node.name, "Tile", [ctx.get(node.inputs[0]), reps])


def broadcast_to(ctx: Context, node: TfNode) -> None:
    dims = ctx.add_const(f"{node.name}/shape", np.asarray(_ints(ctx, node.inputs[1], "the shape"), np.int64))
    ctx.result(node.name, "Expand", [ctx.get(node.inputs[0]), dims])


def range_(ctx: Context, node: TfNode) -> None:
    start, limit, delta = (ctx.need_const(k, "a Range bound") for k in node.inputs[:3])
    dtype = np_dtype(node.attr("Tidx", 3), node.name)
    ctx.bind(node.name, ctx.add_const(node.name, np.arange(start, limit, delta).astype(dtype)))


def identity(ctx: Context, node: TfNode) -> None:
    for i, key in enumerate(node.inputs if node.op == "IdentityN" else node.inputs[:1]):
        ctx.bind(node.name if i == 0 else f"{node.name}:{i}", *ctx.held[key])


CONVERTERS = {
    "ConcatV2": concat, "Concat": concat, "Pack": pack, "Unpack": unpack, "Split": split, "SplitV": split,
    "Reshape": reshape, "Squeeze": squeeze, "ExpandDims": expand_dims,
    "Pad": pad, "PadV2": pad, "MirrorPad": pad,
    "StridedSlice": strided_slice, "Slice": slice_, "Transpose": transpose, "GatherV2": gather, "Gather": gather,
    "Shape": shape, "Size": shape, "Rank": shape, "Fill": fill, "Tile": tile, "BroadcastTo": broadcast_to,
    "Range": range_,
    **{op: identity for op in ("Identity", "IdentityN", "StopGradient", "Snapshot", "PreventGradient",
                                "PlaceholderWithDefault", "CheckNumerics", "EnsureShape")},
}
