"""Converters of data movement and shape ops: sizes, views, permutes, concatenation, splits, slices."""

from __future__ import annotations

import math

import numpy as np

from rknn_core.errors import RknnError
from rknn_torch.context import SCALAR_TYPES, Context, Ref, norm_dim
from rknn_torch.fold import slice_list
from rknn_torch.script import TorchNode


def size(ctx: Context, node: TorchNode) -> None:
    shape = ctx.shape(node.inputs[0])
    if len(node.inputs) == 1:
        ctx.bind(node.outputs[0], list(shape))
    else:
        ctx.bind(node.outputs[0], shape[norm_dim(ctx.static(node.inputs[1], "the dimension"), len(shape))])


def dim(ctx: Context, node: TorchNode) -> None:
    ctx.bind(node.outputs[0], ctx.rank(node.inputs[0]))


def numel(ctx: Context, node: TorchNode) -> None:
    ctx.bind(node.outputs[0], math.prod(ctx.shape(node.inputs[0])))


def to_python(ctx: Context, node: TorchNode) -> None:
    """Bool / Int / Float / item of a tensor computed from the inputs: the model's control flow or sizes
    would depend on the data."""
    raise RknnError("a Python value is taken from a tensor computed from the model inputs (data-dependent control "
                    "flow or sizes), which a static graph cannot hold")


def same(ctx: Context, node: TorchNode) -> None:
    """contiguous, detach, clone ...: the value itself."""
    ctx.same(node, node.inputs[0])


def dropout(ctx: Context, node: TorchNode) -> None:
    if ctx.static(node.inputs[2], "the train flag"):
        raise RknnError("dropout in training mode is not supported; save the model after model.eval()")
    ctx.same(node, node.inputs[0])


def to(ctx: Context, node: TorchNode) -> None:
    """aten::to / type_as: a Cast when the dtype changes."""
    if node.kind == "aten::type_as":
        target = ctx.dtype(node.inputs[1])
    else:
        codes = [ctx.static(k, "the dtype") for k in node.inputs[1:3]]
        code = next((c for c in codes if isinstance(c, int) and not isinstance(c, bool) and c in SCALAR_TYPES), None)
        target = SCALAR_TYPES[code] if code is not None else ctx.dtype(node.inputs[0])
    if target == ctx.dtype(node.inputs[0]):
        ctx.same(node, node.inputs[0])
    else:
        ctx.result(node, "Cast", [ctx.tensor(node.inputs[0])], {"to": target})


def reshape_to(ctx: Context, node: TorchNode, shape: list[int]) -> None:
    """Reshape input 0 to ``shape`` (one -1 allowed), as a Reshape with a constant shape."""
    in_shape = ctx.shape(node.inputs[0])
    shape = [int(d) for d in shape]
    if shape.count(-1) == 1:
        known = math.prod(d for d in shape if d != -1)
        shape[shape.index(-1)] = math.prod(in_shape) // known if known else 0
    if math.prod(shape) != math.prod(in_shape) or any(d < 0 for d in shape):
        raise RknnError(f"cannot view a tensor of shape {list(in_shape)} as {shape}")
    if tuple(shape) == tuple(in_shape):
        return ctx.same(node, node.inputs[0])
    ctx.result(node, "Reshape", [ctx.tensor(node.inputs[0]), ctx.add_const("shape", np.asarray(shape, np.int64))])


def view(ctx: Context, node: TorchNode) -> None:
    """view / reshape (to a size list) and view_as / reshape_as (to another tensor's shape)."""
    if node.kind.endswith("_as"):
        return reshape_to(ctx, node, list(ctx.shape(node.inputs[1])))
    reshape_to(ctx, node, list(ctx.static(node.inputs[1], "the shape")))


def flatten(ctx: Context, node: TorchNode) -> None:
    shape = ctx.shape(node.inputs[0])
    if not shape:
        return reshape_to(ctx, node, [1])
    start = norm_dim(ctx.static(node.inputs[1], "start_dim"), len(shape))
    end = norm_dim(ctx.static(node.inputs[2], "end_dim"), len(shape))
    reshape_to(ctx, node, [*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:]])


def permute(ctx: Context, node: TorchNode) -> None:
    rank = ctx.rank(node.inputs[0])
    perm = [norm_dim(d, rank) for d in ctx.static(node.inputs[1], "the permutation")]
    ctx.result(node, "Transpose", [ctx.tensor(node.inputs[0])], {"perm": perm})


def transpose(ctx: Context, node: TorchNode) -> None:
    """transpose(x, a, b), and t(x) (2-D)."""
    rank = ctx.rank(node.inputs[0])
    if node.kind == "aten::t":
        a, b = (0, 1) if rank == 2 else (0, 0)
    else:
        a, b = (norm_dim(ctx.static(k, "the dimension"), rank) for k in node.inputs[1:3])
    if a == b:
        return ctx.same(node, node.inputs[0])
    perm = list(range(rank))
    perm[a], perm[b] = b, a
    ctx.result(node, "Transpose", [ctx.tensor(node.inputs[0])], {"perm": perm})


def cat(ctx: Context, node: TorchNode) -> None:
    items = ctx.value(node.inputs[0])
    if not isinstance(items, (list, tuple)) or not items:
        raise RknnError("cat needs a non-empty list of tensors")
    names = [ctx.as_tensor(v, f"{node.name}/{i}") for i, v in enumerate(items)]
    rank = len(ctx.graph.tensor(names[0]).shape)
    axis = norm_dim(ctx.static(node.inputs[1], "the dimension"), rank)
    if len(names) == 1:
        return ctx.bind(node.outputs[0], Ref(names[0]))
    ctx.result(node, "Concat", names, {"axis": axis})


def stack(ctx: Context, node: TorchNode) -> None:
    """stack: each tensor unsqueezed at the new dimension, then concatenated."""
    items = ctx.value(node.inputs[0])
    if not isinstance(items, (list, tuple)) or not items:
        raise RknnError("stack needs a non-empty list of tensors")
    names = [ctx.as_tensor(v, f"{node.name}/{i}") for i, v in enumerate(items)]
    axis = norm_dim(ctx.static(node.inputs[1], "the dimension"), len(ctx.graph.tensor(names[0]).shape) + 1)
    axes = ctx.add_const("axes", np.asarray([axis], np.int64))
    ctx.result(node, "Concat", [ctx.emit("Unsqueeze", [n, axes])[0] for n in names], {"axis": axis})


def _split_into(ctx: Context, node: TorchNode, sizes: list[int], axis: int) -> list[Ref]:
    x = ctx.tensor(node.inputs[0])
    outs = ctx.emit("Split", [x, ctx.add_const("split", np.asarray(sizes, np.int64))], {"axis": axis},
                    n_out=len(sizes))
    return [Ref(o) for o in outs]


def split(ctx: Context, node: TorchNode) -> None:
    """chunk, split (a size or a size list), split_with_sizes, unbind; the result is a list."""
    shape = ctx.shape(node.inputs[0])
    axis_key = node.inputs[1] if node.kind == "aten::unbind" else node.inputs[2]
    axis = norm_dim(ctx.static(axis_key, "the dimension"), len(shape))
    length = shape[axis]
    if node.kind == "aten::unbind":
        sizes = [1] * length
    else:
        arg = ctx.static(node.inputs[1], "the chunk count" if "chunk" in node.kind else "the split size")
        if isinstance(arg, (list, tuple)):
            sizes = [int(s) for s in arg]
        else:
            step = math.ceil(length / int(arg)) if "chunk" in node.kind else int(arg)
            sizes = [min(step, length - start) for start in range(0, length, max(step, 1))]
    if sum(sizes) != length:
        raise RknnError(f"split sizes {sizes} do not add up to the axis length {length}")
    parts = _split_into(ctx, node, sizes, axis) if len(sizes) > 1 else [Ref(ctx.tensor(node.inputs[0]))]
    if node.kind == "aten::unbind":
        axes = ctx.add_const("axes", np.asarray([axis], np.int64))
        parts = [Ref(ctx.emit("Squeeze", [p.name, axes])[0]) for p in parts]
    ctx.bind(node.outputs[0], parts)


def slice_(ctx: Context, node: TorchNode) -> None:
    """A tensor slice along one dimension; on a list (of tensors), the Python slice."""
    if isinstance(ctx.value(node.inputs[0]), list):
        bounds = [ctx.static(k, "a slice bound") for k in node.inputs[1:4]]
        return ctx.bind(node.outputs[0], slice_list(ctx.value(node.inputs[0]), *bounds))
    rank = ctx.rank(node.inputs[0])
    axis = norm_dim(ctx.static(node.inputs[1], "the dimension"), rank)
    start, end, step = (ctx.static(k, "a slice bound") for k in node.inputs[2:5])
    start = 0 if start is None else int(start)
    end = np.iinfo(np.int64).max if end is None else int(end)
    length = ctx.shape(node.inputs[0])[axis]
    if int(step) == 1 and start == 0 and end >= length:
        return ctx.same(node, node.inputs[0])
    consts = [ctx.add_const(n, np.asarray([v], np.int64)) for n, v in
              (("starts", start), ("ends", end), ("axes", axis), ("steps", int(step)))]
    ctx.result(node, "Slice", [ctx.tensor(node.inputs[0]), *consts])


def select(ctx: Context, node: TorchNode) -> None:
    shape = ctx.shape(node.inputs[0])
    axis = norm_dim(ctx.static(node.inputs[1], "the dimension"), len(shape))
    index = int(ctx.static(node.inputs[2], "the index"))
    if not -shape[axis] <= index < shape[axis]:
        raise RknnError(f"index {index} is out of range for dimension {axis} of size {shape[axis]}")
    ctx.result(node, "Gather", [ctx.tensor(node.inputs[0]), ctx.add_const("index", np.asarray(index, np.int64))],
               {"axis": axis})


def squeeze(ctx: Context, node: TorchNode) -> None:
    shape = ctx.shape(node.inputs[0])
    if len(node.inputs) == 1:
        dims = list(range(len(shape)))
    else:
        given = ctx.static(node.inputs[1], "the dimension")
        dims = [norm_dim(d, len(shape)) for d in (given if isinstance(given, (list, tuple)) else [given])]
    axes = [d for d in dims if shape[d] == 1]  # torch leaves other sizes alone
    if not axes:
        return ctx.same(node, node.inputs[0])
    ctx.result(node, "Squeeze", [ctx.tensor(node.inputs[0]), ctx.add_const("axes", np.asarray(axes, np.int64))])


def unsqueeze(ctx: Context, node: TorchNode) -> None:
    axis = norm_dim(ctx.static(node.inputs[1], "the dimension"), ctx.rank(node.inputs[0]) + 1)
    ctx.result(node, "Unsqueeze", [ctx.tensor(node.inputs[0]), ctx.add_const("axes", np.asarray([axis], np.int64))])


def expand(ctx: Context, node: TorchNode) -> None:
    """expand(x, sizes) (-1 keeps a size) and expand_as(x, other)."""
    shape = ctx.shape(node.inputs[0])
    if node.kind == "aten::expand_as":
        sizes = list(ctx.shape(node.inputs[1]))
    else:
        sizes = [int(s) for s in ctx.static(node.inputs[1], "the sizes")]
    lead = len(sizes) - len(shape)
    sizes = [shape[i - lead] if s == -1 else s for i, s in enumerate(sizes)]
    ctx.result(node, "Expand", [ctx.tensor(node.inputs[0]), ctx.add_const("shape", np.asarray(sizes, np.int64))])


def filled_like(ctx: Context, node: TorchNode) -> None:
    """zeros_like / ones_like / full_like: a constant of the input's (known) shape."""
    shape, dtype = ctx.shape(node.inputs[0]), ctx.dtype(node.inputs[0])
    fill = {"aten::zeros_like": 0, "aten::ones_like": 1}.get(node.kind)
    if fill is None:
        fill = ctx.static(node.inputs[1], "the fill value")
    code = ctx.static(node.inputs[2 if node.kind == "aten::full_like" else 1], "the dtype")
    ctx.bind(node.outputs[0], np.full(shape, fill, SCALAR_TYPES.get(code, dtype)))


CONVERTERS = {
    "aten::size": size, "aten::dim": dim, "aten::numel": numel,
    "aten::Bool": to_python, "aten::Int": to_python, "aten::Float": to_python, "aten::item": to_python,
    "aten::ScalarImplicit": to_python,
    "aten::contiguous": same, "aten::detach": same, "aten::clone": same, "aten::alias": same,
    "aten::dropout": dropout, "aten::feature_dropout": dropout, "aten::alpha_dropout": dropout,
    "aten::feature_alpha_dropout": dropout,
    "aten::to": to, "aten::type_as": to,
    "aten::view": view, "aten::reshape": view, "aten::view_as": view, "aten::reshape_as": view,
    "aten::flatten": flatten, "aten::permute": permute, "aten::transpose": transpose, "aten::t": transpose,
    "aten::cat": cat, "aten::concat": cat, "aten::stack": stack,
    "aten::chunk": split, "aten::unsafe_chunk": split, "aten::split": split, "aten::unsafe_split": split,
    "aten::split_with_sizes": split, "aten::unbind": split,
    "aten::slice": slice_, "aten::select": select, "aten::squeeze": squeeze, "aten::unsqueeze": unsqueeze,
    "aten::expand": expand, "aten::expand_as": expand,
    "aten::zeros_like": filled_like, "aten::ones_like": filled_like, "aten::full_like": filled_like,
}
