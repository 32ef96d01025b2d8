"""TorchScript's own nodes, which the importer handles itself: constants, module attributes, and the
lists, tuples and dicts that TorchScript code builds and edits (held as Python objects, so an edit
through one name is seen through every other, as in TorchScript).

Each handler is ``handler(ctx, node, tnode)`` with the ``torch._C.Node`` and its :class:`TorchNode`.
``prim::If`` and ``prim::Loop`` are the importer's walk itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rknn_core.errors import RknnError
from rknn_torch.context import SCALAR_TYPES, Context, Ref, unref
from rknn_torch.script import TorchNode, torch_module


def _numpy(value: Any) -> Any:
    """A torch tensor as a numpy array; anything else as it is."""
    if isinstance(value, torch_module().Tensor):
        return value.detach().cpu().numpy().copy()
    return value


def constant(ctx: Context, node: Any, tnode: TorchNode) -> None:
    ctx.bind(tnode.outputs[0], _numpy(node.output().toIValue()))


def get_attr(ctx: Context, node: Any, tnode: TorchNode) -> None:
    """A module attribute: a submodule, a parameter or buffer (as a constant), a flag (``training``)."""
    ctx.bind(tnode.outputs[0], _numpy(getattr(ctx.value(tnode.inputs[0]), node.s("name"))))


def list_construct(ctx: Context, node: Any, tnode: TorchNode) -> None:
    ctx.bind(tnode.outputs[0], [ctx.value(k) for k in tnode.inputs])


def tuple_construct(ctx: Context, node: Any, tnode: TorchNode) -> None:
    ctx.bind(tnode.outputs[0], tuple(ctx.value(k) for k in tnode.inputs))


def dict_construct(ctx: Context, node: Any, tnode: TorchNode) -> None:
    values = [ctx.value(k) for k in tnode.inputs]
    ctx.bind(tnode.outputs[0], dict(zip(values[::2], values[1::2])))


def unpack(ctx: Context, node: Any, tnode: TorchNode) -> None:
    items = ctx.value(tnode.inputs[0])
    if isinstance(items, Ref) or not isinstance(unref(ctx.graph, items), (list, tuple)):
        raise RknnError(f"'%{tnode.inputs[0]}' is not a list")
    if len(items) != len(tnode.outputs):
        raise RknnError(f"unpacks {len(tnode.outputs)} values from a list of {len(items)}")
    for key, value in zip(tnode.outputs, items):
        ctx.bind(key, value)


def get_item(ctx: Context, node: Any, tnode: TorchNode) -> None:
    """``items[i]`` of a list or tuple, ``d[key]`` of a dict (prim::TupleIndex, aten::__getitem__)."""
    items = ctx.value(tnode.inputs[0])
    key = ctx.static(tnode.inputs[1], "the index")
    if not isinstance(items, (list, tuple, dict)):
        raise RknnError("indexing is supported on lists and dicts (tensor indexing is aten::select / aten::slice)")
    ctx.bind(tnode.outputs[0], items[key if isinstance(items, dict) else int(key)])


def set_item(ctx: Context, node: Any, tnode: TorchNode) -> None:
    """``d[key] = value`` on a dict (or list)."""
    ctx.value(tnode.inputs[0])[ctx.static(tnode.inputs[1], "the key")] = ctx.value(tnode.inputs[2])


def append(ctx: Context, node: Any, tnode: TorchNode) -> None:
    items = ctx.value(tnode.inputs[0])
    items.append(ctx.value(tnode.inputs[1]))
    ctx.bind(tnode.outputs[0], items)


def insert(ctx: Context, node: Any, tnode: TorchNode) -> None:
    ctx.value(tnode.inputs[0]).insert(int(ctx.static(tnode.inputs[1], "the index")), ctx.value(tnode.inputs[2]))


def copy_list(ctx: Context, node: Any, tnode: TorchNode) -> None:
    """``list(items)``: a copy (appending to it leaves the original alone)."""
    ctx.bind(tnode.outputs[0], list(ctx.value(tnode.inputs[0])))


def make_dict(ctx: Context, node: Any, tnode: TorchNode) -> None:
    """A dict from (key, value) pairs (an OrderedDict of feature maps), or an empty one."""
    pairs = ctx.value(tnode.inputs[0]) if tnode.inputs else []
    ctx.bind(tnode.outputs[0], dict(pairs.items() if isinstance(pairs, dict) else pairs))


def dict_view(ctx: Context, node: Any, tnode: TorchNode) -> None:
    """keys / values / items of a dict, as a list."""
    d = ctx.value(tnode.inputs[0])
    view = {"aten::keys": d.keys, "aten::values": d.values, "aten::items": d.items}[tnode.kind]
    ctx.bind(tnode.outputs[0], list(view()))


def contains(ctx: Context, node: Any, tnode: TorchNode) -> None:
    ctx.bind(tnode.outputs[0], ctx.static(tnode.inputs[1], "the key") in ctx.value(tnode.inputs[0]))


def length(ctx: Context, node: Any, tnode: TorchNode) -> None:
    """len() of a list, tuple or dict; of a tensor, its first size."""
    items = ctx.value(tnode.inputs[0])
    ctx.bind(tnode.outputs[0], len(items) if isinstance(items, (list, tuple, dict)) else ctx.shape(tnode.inputs[0])[0])


def is_none(ctx: Context, node: Any, tnode: TorchNode) -> None:
    """``x is None`` / ``x is not None`` (an Optional argument or attribute)."""
    left, right = (ctx.value(k) for k in tnode.inputs[:2])
    found = (left is None and right is None) or left is right
    ctx.bind(tnode.outputs[0], found if tnode.kind == "aten::__is__" else not found)


def format_text(ctx: Context, node: Any, tnode: TorchNode) -> None:
    """The message of an exception or warning: its format string as it is."""
    ctx.bind(tnode.outputs[0], str(ctx.value(tnode.inputs[0])))


def num_to_tensor(ctx: Context, node: Any, tnode: TorchNode) -> None:
    number = ctx.static(tnode.inputs[0], "the number")
    ctx.bind(tnode.outputs[0], np.asarray(number, dtype=np.int64 if isinstance(number, int) else np.float64))


def raise_exception(ctx: Context, node: Any, tnode: TorchNode) -> None:
    message = ctx.value(tnode.inputs[0]) if tnode.inputs else ""
    raise RknnError(f"the model raises an exception for these input sizes: {message}")


def uninitialized(ctx: Context, node: Any, tnode: TorchNode) -> None:
    ctx.bind(tnode.outputs[0], None)


def unchecked_cast(ctx: Context, node: Any, tnode: TorchNode) -> None:
    ctx.same(tnode, tnode.inputs[0])


def device(ctx: Context, node: Any, tnode: TorchNode) -> None:
    ctx.bind(tnode.outputs[0], "cpu")


def dtype(ctx: Context, node: Any, tnode: TorchNode) -> None:
    """A tensor's dtype as TorchScript holds it: torch's ScalarType code."""
    name = ctx.dtype(tnode.inputs[0])
    ctx.bind(tnode.outputs[0], next(code for code, held in SCALAR_TYPES.items() if held == name))


def ignored(ctx: Context, node: Any, tnode: TorchNode) -> None:
    """Warnings and prints the model emits while running are not part of the computation."""


OWN_NODES = {
    "prim::Constant": constant, "prim::GetAttr": get_attr,
    "prim::ListConstruct": list_construct, "prim::TupleConstruct": tuple_construct,
    "prim::DictConstruct": dict_construct, "prim::ListUnpack": unpack, "prim::TupleUnpack": unpack,
    "prim::TupleIndex": get_item, "aten::__getitem__": get_item, "aten::_set_item": set_item,
    "aten::append": append, "aten::insert": insert, "aten::list": copy_list, "aten::dict": make_dict,
    "aten::keys": dict_view, "aten::values": dict_view, "aten::items": dict_view,
    "aten::__contains__": contains, "aten::len": length, "aten::__is__": is_none, "aten::__isnot__": is_none,
    "aten::format": format_text,
    "prim::NumToTensor": num_to_tensor, "prim::RaiseException": raise_exception,
    "prim::Uninitialized": uninitialized, "prim::unchecked_cast": unchecked_cast,
    "prim::device": device, "prim::dtype": dtype, "aten::warn": ignored, "prim::Print": ignored,
}
