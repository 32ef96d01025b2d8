"""Conversion state: TorchScript values -> Python values or IR tensors, with eager constant folding.

A TorchScript value is held as one of: a Python constant (``None``, bool, int, float, str), a list
or tuple of held values, a numpy array (a constant tensor not yet in the IR) or a :class:`Ref` (an
IR tensor, constant when its data is set). Sizes and shapes are Python ints, because the input sizes
are fixed at import: ``x.size(1) // 2`` is a number by the time ``view`` reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from rknn_core.errors import RknnError
from rknn_core.graph_builder import emit_node, fresh_names
from rknn_core.ir import Graph
from rknn_core.plugins import Registry
from rknn_torch.script import TorchNode

SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32",
                7: "float64", 11: "bool"}  # torch's ScalarType codes, as TorchScript graphs hold dtypes


@attrs.frozen
class Ref:
    """An IR tensor holding a TorchScript tensor value."""

    name: str


class Context:
    """Builds one Graph from converted TorchScript nodes."""

    def __init__(self, graph: Graph, registry: Registry):
        self.graph = graph
        self.registry = registry  # the ops emit() may use: the core's and every installed plugin's
        self.values: dict[str, Any] = {}  # TorchScript debug name -> held value
        self.scope = ""  # the node being converted (names new tensors)

    # TorchScript values -------------------------------------------------------------------
    def value(self, key: str) -> Any:
        """The held value of ``key`` as it is (Python constant, list, numpy array or Ref)."""
        try:
            return self.values[key]
        except KeyError:
            raise RknnError(f"value '%{key}' is not computed by the imported graph") from None

    def bind(self, key: str, value: Any) -> None:
        self.values[key] = value

    def is_tensor(self, key: str) -> bool:
        return isinstance(self.value(key), (Ref, np.ndarray))

    def tensor(self, key: str, dtype: str | None = None) -> str:
        """The IR tensor name of ``key``; a constant (a tensor, or a number cast to ``dtype``) is added once."""
        held = self.value(key)
        name = self.as_tensor(held, key, dtype)
        if isinstance(held, np.ndarray):
            self.values[key] = Ref(name)
        return name

    def as_tensor(self, held: Any, base: str, dtype: str | None = None) -> str:
        """The IR tensor name of a held value (a list element ...), adding a constant for a number or array."""
        if isinstance(held, Ref):
            return held.name
        if isinstance(held, np.ndarray):
            return self.graph.add_const(base, held)
        if isinstance(held, (bool, int, float)):
            return self.graph.add_const(base, np.asarray(held, dtype=dtype))
        raise RknnError(f"value '%{base}' ({type(held).__name__}) is used where a tensor is expected")

    def static(self, key: str, what: str) -> Any:
        """The Python value of ``key`` (constant tensors as numpy arrays); an error naming ``what`` when it
        is computed from the model inputs."""
        value = unref(self.graph, self.value(key))
        if not is_known(value):
            raise RknnError(f"{what} ('%{key}') must be known at import: it is computed from the model inputs")
        return value

    def shape(self, key: str) -> tuple[int, ...]:
        held = self.value(key)
        if isinstance(held, np.ndarray):
            return tuple(held.shape)
        shape = self.graph.tensor(self.tensor(key)).shape
        if shape is None:
            raise RknnError(f"tensor '%{key}' has an unknown shape")
        return tuple(shape)

    def rank(self, key: str) -> int:
        return len(self.shape(key))

    def dtype(self, key: str) -> str:
        held = self.value(key)
        return str(held.dtype) if isinstance(held, np.ndarray) else self.graph.tensor(self.tensor(key)).dtype

    # IR construction ----------------------------------------------------------------------
    def add_const(self, base: str, data: Any) -> str:
        return self.graph.add_const(f"{self.scope}/{base}" if self.scope else base, np.asarray(data))

    def emit(self, op: str, inputs: Sequence[str], attrs: dict | None = None, n_out: int = 1,
             out: Sequence[str] | None = None) -> list[str]:
        """Append an IR node (folded at once when its inputs are constants); returns its outputs."""
        outs = list(out) if out else fresh_names(self.graph, f"{self.scope}/{op}", n_out)
        emit_node(self.graph, self.registry, None, op, inputs, attrs, outs)
        return outs

    def result(self, node: TorchNode, op: str, inputs: Sequence[str], attrs: dict | None = None) -> str:
        """Emit the IR node computing the TorchScript node's (first) output and bind it."""
        name = self.emit(op, inputs, attrs, out=[self.graph.unique_name(node.outputs[0])])[0]
        self.bind(node.outputs[0], Ref(name))
        return name

    def same(self, node: TorchNode, key: str) -> None:
        """The node's output is its input ``key`` unchanged (contiguous, dropout in eval mode ...)."""
        self.bind(node.outputs[0], self.value(key))


def ints(value: Any, count: int, what: str) -> list[int]:
    """A size list of ``count`` entries; one entry (or a number) applies to every axis."""
    values = [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    if len(values) == 1:
        values = values * count
    if len(values) != count:
        raise RknnError(f"{what} {values} must have {count} entries")
    return values


def norm_dim(dim: int, rank: int) -> int:
    """A dimension index in ``[0, rank)``; torch's negative indices count from the end."""
    if not -rank <= int(dim) < rank:
        raise RknnError(f"dimension {dim} is out of range for a rank-{rank} tensor")
    return int(dim) % rank


def unref(graph: Graph, value: Any) -> Any:
    """``value`` with constant IR tensors replaced by their data (lists and tuples too)."""
    if isinstance(value, Ref):
        data = graph.tensor(value.name).data
        return value if data is None else data
    if isinstance(value, (list, tuple)):
        return type(value)(unref(graph, v) for v in value)
    return value


def is_known(value: Any) -> bool:
    """True when ``value`` (after :func:`unref`) holds no tensor computed from the model inputs."""
    if isinstance(value, Ref):
        return False
    if isinstance(value, (list, tuple)):
        return all(is_known(v) for v in value)
    return True
