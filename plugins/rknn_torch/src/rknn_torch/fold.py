"""Evaluating a node whose inputs are all known at import (sizes, shape arithmetic, constant tensors):
Python's own operators for numbers and lists, torch's op for anything else, so the result is exactly
what torch computes."""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from rknn_core.errors import RknnError
from rknn_torch.context import SCALAR_TYPES
from rknn_torch.script import TorchNode

NOT_FOLDED = {  # never evaluated at import: random, side effects, or handled by the importer itself
    "aten::rand", "aten::randn", "aten::rand_like", "aten::randn_like", "aten::randint", "aten::bernoulli",
    "aten::dropout", "aten::feature_dropout", "aten::alpha_dropout", "aten::warn", "prim::RaiseException",
}

_NUMBERS = (bool, int, float)
_BINARY = {
    "aten::add": operator.add, "aten::sub": operator.sub, "aten::mul": operator.mul,
    "aten::div": operator.truediv, "aten::floordiv": operator.floordiv, "aten::remainder": operator.mod,
    "aten::pow": operator.pow, "aten::eq": operator.eq, "aten::ne": operator.ne, "aten::lt": operator.lt,
    "aten::le": operator.le, "aten::gt": operator.gt, "aten::ge": operator.ge, "aten::__and__": operator.and_,
    "aten::__or__": operator.or_, "aten::min": min, "aten::max": max,
}
_UNARY = {
    "aten::Int": int, "aten::Float": float, "aten::Bool": bool, "aten::ScalarImplicit": lambda v: v,
    "aten::neg": operator.neg, "aten::__not__": operator.not_, "aten::floor": math.floor, "aten::ceil": math.ceil,
    "aten::sqrt": math.sqrt, "aten::abs": abs,
}


def slice_list(items: list, start: int | None, end: int | None, step: int) -> list:
    """``items[start:end:step]`` of a TorchScript list (aten::slice.t)."""
    return items[start:end:step]


def _number(value: Any) -> Any:
    """A one-element array as a Python number (``Int(tensor)`` and friends)."""
    return value.item() if isinstance(value, np.ndarray) and value.size == 1 else value


def python_fold(node: TorchNode, args: list[Any]) -> tuple[bool, Any]:
    """(True, result) when Python's own operators give the node's result, else (False, None)."""
    kind = node.kind
    if kind == "aten::tensor":  # (data, dtype, device, requires_grad): a literal such as torch.tensor([1.0, 2.0])
        data = np.asarray(args[0])
        dtype = SCALAR_TYPES.get(args[1]) or ("float32" if data.dtype.kind == "f" else str(data.dtype))
        return True, data.astype(dtype)
    if kind == "aten::slice" and isinstance(args[0], list):
        return True, slice_list(*args)
    if kind in ("aten::Int", "aten::Float", "aten::Bool", "aten::ScalarImplicit") and len(args) == 1:
        return True, _UNARY[kind](_number(args[0]))
    if kind in _UNARY and len(args) == 1 and isinstance(args[0], _NUMBERS):
        return True, _UNARY[kind](args[0])
    if kind in _BINARY and len(args) == 2 and all(isinstance(a, _NUMBERS) for a in args):
        return True, _BINARY[kind](*args)
    return False, None


def torch_fold(torch: Any, node: TorchNode, schema: str, args: list[Any]) -> list[Any]:
    """Run the node's own torch op on known arguments; tensors come back as numpy arrays."""
    if schema == "(no schema)":
        raise RknnError(f"{node.kind} has no schema torch can run")
    parsed = torch._C.parse_schema(schema)
    namespace, name = parsed.name.split("::", 1)
    packet = getattr(getattr(torch.ops, namespace), name)
    op = getattr(packet, parsed.overload_name or "default")
    positional, keywords = [], {}
    for spec, arg in zip(parsed.arguments, args):
        arg = _to_torch(torch, arg)
        if spec.kwarg_only:
            keywords[spec.name] = arg
        else:
            positional.append(arg)
    with torch.no_grad():
        out = op(*positional, **keywords)
    outs = list(out) if isinstance(out, tuple) and len(node.outputs) > 1 else [out]
    return [_from_torch(torch, o) for o in outs]


def _to_torch(torch: Any, value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, list):
        return [_to_torch(torch, v) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_torch(torch, v) for v in value)
    return value


def _from_torch(torch: Any, value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        try:
            return value.detach().cpu().numpy().copy()
        except (TypeError, RuntimeError) as exc:
            raise RknnError(f"a constant tensor of dtype {value.dtype} has no numpy form: {exc}") from None
    if isinstance(value, list):
        return [_from_torch(torch, v) for v in value]
    if isinstance(value, tuple):
        return tuple(_from_torch(torch, v) for v in value)
    return value
