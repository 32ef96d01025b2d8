"""The intermediate representation: a Graph of Nodes over named Tensors."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import attrs
import numpy as np

from rknn_core.errors import RknnError


def _floats(value) -> tuple[float, ...]:
    return tuple(float(v) for v in np.atleast_1d(np.asarray(value, dtype=np.float64)))


def _ints(value) -> tuple[int, ...]:
    return tuple(int(v) for v in np.atleast_1d(np.asarray(value, dtype=np.int64)))


@attrs.define
class QuantParams:
    """Quantization of one tensor: ``real = (q - zero_point) * scale``.

    ``qtype`` is ``u8``, ``i8``, ``i16`` or ``i32``. ``scale``/``zero_point`` hold one entry (per
    tensor) or one per channel along ``axis`` (per-channel weights of imported TFLite models).
    ``scheme`` is ``asymmetric_affine`` or ``dynamic_fixed_point`` (then ``zero_point`` is 0 and
    ``scale`` is ``2 ** -fl``).
    """

    qtype: str
    scale: tuple[float, ...] = attrs.field(converter=_floats)
    zero_point: tuple[int, ...] = attrs.field(default=(0,), converter=_ints)
    axis: int | None = None
    scheme: str = "asymmetric_affine"
    min_value: float | None = None
    max_value: float | None = None
    method: str = "layer"

    @property
    def per_channel(self) -> bool:
        return self.axis is not None


@attrs.define
class TensorInfo:
    """What shape inference knows of a tensor: shape, dtype and, for constants, the data."""

    shape: tuple[int, ...]
    dtype: str = "float32"
    data: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize


@attrs.define
class Tensor:
    """A named value: a graph input, an intermediate result or a constant (``data`` set)."""

    name: str
    shape: tuple[int, ...] | None = None
    dtype: str = "float32"
    data: np.ndarray | None = None
    layout: str | None = None
    quant: QuantParams | None = None

    @property
    def is_const(self) -> bool:
        return self.data is not None

    def info(self) -> TensorInfo:
        if self.shape is None:
            raise RknnError(f"tensor '{self.name}' has no known shape")
        return TensorInfo(tuple(self.shape), self.dtype, self.data)


@attrs.define
class Node:
    """One op application. An empty input name marks an absent optional input."""

    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = attrs.field(factory=dict)


@attrs.define
class Graph:
    """Nodes in topological order over a tensor table, with graph inputs and outputs."""

    name: str = "graph"
    nodes: list[Node] = attrs.field(factory=list)
    tensors: dict[str, Tensor] = attrs.field(factory=dict)
    inputs: list[str] = attrs.field(factory=list)
    outputs: list[str] = attrs.field(factory=list)
    metadata: dict[str, Any] = attrs.field(factory=dict)

    def tensor(self, name: str) -> Tensor:
        try:
            return self.tensors[name]
        except KeyError:
            raise RknnError(f"tensor '{name}' is not defined in graph '{self.name}'") from None

    def add_tensor(self, tensor: Tensor) -> Tensor:
        self.tensors[tensor.name] = tensor
        return tensor

    def add_const(self, name: str, data: np.ndarray) -> str:
        """Add a constant tensor under a unique name derived from ``name``; returns that name."""
        name = self.unique_name(name)
        data = np.asarray(data)
        self.tensors[name] = Tensor(name, tuple(data.shape), str(data.dtype), data)
        return name

    def unique_name(self, base: str) -> str:
        name, i = base, 1
        while name in self.tensors:
            name, i = f"{base}_{i}", i + 1
        return name

    def producers(self) -> dict[str, Node]:
        return {out: node for node in self.nodes for out in node.outputs}

    def consumers(self) -> dict[str, list[Node]]:
        users: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    users.setdefault(name, []).append(node)
        return users

    def const_data(self, name: str) -> np.ndarray | None:
        return self.tensors[name].data if name else None

    def iter_const(self) -> Iterator[Tensor]:
        return (t for t in self.tensors.values() if t.is_const)

    def toposort(self) -> None:
        """Order nodes so each comes after the producers of its inputs; refuses cycles."""
        available = set(self.inputs) | {t.name for t in self.iter_const()}
        pending, ordered = list(self.nodes), []
        while pending:
            ready = [n for n in pending if all(not i or i in available for i in n.inputs)]
            if not ready:
                missing = sorted({i for n in pending for i in n.inputs if i and i not in available})
                raise RknnError(
                    f"graph '{self.name}' has a cycle or undefined inputs at node "
                    f"'{pending[0].name}' ({pending[0].op}); unresolved tensors: {', '.join(missing[:5])}"
                )
            ready_ids = {id(n) for n in ready}
            pending = [n for n in pending if id(n) not in ready_ids]
            for node in ready:
                ordered.append(node)
                available.update(node.outputs)
        self.nodes = ordered

    def remove_unused(self) -> None:
        """Drop nodes that do not contribute to an output, and tensors no one references."""
        needed = set(self.outputs)
        kept = []
        for node in reversed(self.nodes):
            if any(o in needed for o in node.outputs):
                kept.append(node)
                needed.update(i for i in node.inputs if i)
        self.nodes = kept[::-1]
        referenced = needed | set(self.inputs)
        self.tensors = {k: v for k, v in self.tensors.items() if k in referenced}

    def clone(self) -> Graph:
        """A deep copy sharing constant arrays (they are never mutated in place)."""
        new = Graph(self.name, copy.deepcopy(self.nodes), {}, list(self.inputs), list(self.outputs),
                    copy.deepcopy(self.metadata))
        for name, t in self.tensors.items():
            new.tensors[name] = Tensor(t.name, t.shape, t.dtype, t.data, t.layout, copy.deepcopy(t.quant))
        return new
