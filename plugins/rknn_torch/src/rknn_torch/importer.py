"""``load_pytorch``: a TorchScript .pt file -> the toolkit's Graph.

The inlined TorchScript graph of the module's ``forward`` is walked node by node with the input sizes
fixed: nodes whose inputs are all known (sizes, shape arithmetic, constants) are evaluated at once,
control flow on known conditions is resolved (``prim::If``) or unrolled (``prim::Loop``), TorchScript's
own nodes (module attributes, lists, dicts: ``own_nodes``) are handled here, and every other node is
converted by the converter registered for its kind (``aten::conv2d``) through the ``rknn_converters`` hook.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import Graph, Tensor
from rknn_core.plugins import Registry, default_registry
from rknn_torch import __version__
from rknn_torch.context import Context, Ref, is_known, unref
from rknn_torch.fold import NOT_FOLDED, python_fold, torch_fold
from rknn_torch.own_nodes import OWN_NODES
from rknn_torch.script import TorchNode, describe, load_graph, torch_module

FRONTEND = "pytorch"  # the frontend name converters register under
MAX_UNROLL = 10_000  # loop iterations unrolled at most
# TorchScript node kinds the importer handles itself
OWN_OPS = ("prim::If", "prim::Loop", *OWN_NODES)


def supported_ops(registry: Registry | None = None) -> list[str]:
    """The TorchScript node kinds the importer and the installed converters cover (nodes on known
    values, such as shape arithmetic, are evaluated whatever their kind)."""
    return sorted({*(registry or default_registry()).converters(FRONTEND), *OWN_OPS})


class _Located(RknnError):
    """An error that already names its node."""


class _Walk:
    """Walks TorchScript blocks, binding every value in the context."""

    def __init__(self, ctx: Context, converters: dict, where: str):
        self.ctx, self.converters, self.where = ctx, converters, where
        self.torch = torch_module()
        self.torch_dir = os.path.dirname(os.path.abspath(self.torch.__file__))

    def block(self, block: Any) -> list[Any]:
        """Run the block's nodes; returns the values it returns."""
        for node in block.nodes():
            self.node(node)
        return [self.ctx.value(v.debugName()) for v in block.outputs()]

    def node(self, node: Any) -> None:
        tnode = describe(node, self.torch_dir)
        self.ctx.scope = tnode.name
        try:
            self._run(node, tnode)
        except _Located:
            raise  # from a node inside this one's blocks, which it names
        except RknnError as exc:
            raise _Located(f"{self._at(tnode)}: {exc}") from None
        except Exception as exc:
            raise _Located(f"{self._at(tnode)} could not be converted: {type(exc).__name__}: {exc}") from exc

    def _at(self, tnode: TorchNode) -> str:
        source = f", {tnode.source}" if tnode.source else ""
        named = f"node '%{tnode.name}'" if tnode.outputs else "node"
        return f"{named} ({tnode.kind}{source}) in {self.where} [rknn-torch {__version__}]"

    def _run(self, node: Any, tnode: TorchNode) -> None:
        ctx, kind = self.ctx, tnode.kind
        if kind == "prim::If":
            branch = list(node.blocks())[0 if self._flag(tnode.inputs[0]) else 1]
            return self._bind_all(tnode.outputs, self.block(branch))
        if kind == "prim::Loop":
            return self._loop(node, tnode)
        if kind in OWN_NODES:
            return OWN_NODES[kind](ctx, node, tnode)
        args = [unref(ctx.graph, ctx.value(k)) for k in tnode.inputs]
        if kind not in NOT_FOLDED and is_known(args):
            folded, result = python_fold(tnode, args)
            results = [result] if folded else torch_fold(self.torch, tnode, node.schema(), args)
            return self._bind_all(tnode.outputs, results)
        self._convert(tnode)

    def _convert(self, tnode: TorchNode) -> None:
        kind = tnode.kind
        in_place = kind.endswith("_") and not kind.endswith("__") and kind not in self.converters
        convert = self.converters.get(kind[:-1] if in_place else kind)
        if convert is None:
            raise RknnError(f"op '{kind}' is not supported by rknn-torch {__version__} or the installed plugins: "
                            f"install a plugin that converts it (an rknn_converters hook returning "
                            f"Converter('{FRONTEND}', '{kind}', ...))")
        convert(self.ctx, attrs.evolve(tnode, kind=kind[:-1]) if in_place else tnode)
        missing = [o for o in tnode.outputs if o not in self.ctx.values]
        if missing:
            raise RknnError(f"the converter of {kind} bound no value to output(s) {missing}")
        if in_place:  # later nodes read the mutated input under its own name
            self.ctx.bind(tnode.inputs[0], self.ctx.value(tnode.outputs[0]))

    def _bind_all(self, keys: Sequence[str], values: Sequence[Any]) -> None:
        for key, value in zip(keys, values):
            self.ctx.bind(key, value)

    def _flag(self, key: str) -> bool:
        value = self.ctx.static(key, "the condition")
        return bool(value.item() if isinstance(value, np.ndarray) else value)

    def _loop(self, node: Any, tnode: TorchNode) -> None:
        trips = self.ctx.static(tnode.inputs[0], "the loop's trip count")
        go = self._flag(tnode.inputs[1])
        carried = [self.ctx.value(k) for k in tnode.inputs[2:]]
        body = next(node.blocks())
        params = [v.debugName() for v in body.inputs()]
        i = 0
        while go and i < trips:
            if i == MAX_UNROLL:
                raise RknnError(f"the loop runs more than {MAX_UNROLL} times; it is not unrolled")
            self._bind_all(params, [i, *carried])
            go_value, *carried = self.block(body)
            go_value = unref(self.ctx.graph, go_value)
            if not is_known(go_value):
                raise RknnError("the loop's condition depends on the model inputs; only loops with known trip "
                                "counts are imported")
            go, i = bool(go_value), i + 1
        self._bind_all(tnode.outputs, carried)


def load_pytorch(model: str, input_size_list: Sequence, registry: Registry | None = None) -> Graph:
    """Import a TorchScript model with its inputs of the given sizes (each without the batch axis, which
    is 1); NCHW in and out. Ops convert with the registry's converters (the installed plugins' by default)."""
    registry = registry or default_registry()
    path = os.fspath(model)
    where = f"'{os.path.basename(path)}'"
    script, module = load_graph(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    graph = Graph(name=stem)
    graph.metadata.update(source="pytorch", source_file=os.path.basename(path), plugin=f"rknn-torch {__version__}")
    ctx = Context(graph, registry)
    walk = _Walk(ctx, registry.converters(FRONTEND), where)
    _add_inputs(ctx, walk.torch, module, list(script.inputs()), input_size_list, where)
    returned = walk.block(script)
    _set_outputs(ctx, returned, where)
    graph.toposort()
    graph.remove_unused()
    return graph


def _add_inputs(ctx: Context, torch: Any, module: Any, values: list, sizes: Any, where: str) -> None:
    ctx.bind(values[0].debugName(), module)  # self: the graph reads the module's attributes from it
    values = values[1:]
    if not isinstance(sizes, (list, tuple)) or len(sizes) != len(values):
        raise RknnError(f"load_pytorch input_size_list must hold one size per input of {where} ({len(values)}: "
                        f"{', '.join(_input_name(v) for v in values)}), got {sizes!r}")
    for value, size in zip(values, sizes):
        if not isinstance(value.type(), torch._C.TensorType):
            raise RknnError(f"input '{value.debugName()}' of {where} is a {value.type()}, not a tensor")
        if not isinstance(size, (list, tuple)) or not size or not all(isinstance(d, (int, np.integer)) and d > 0
                                                                      for d in size):
            raise RknnError(f"input_size_list entry {size!r} for input '{value.debugName()}' must be a list of "
                            f"positive sizes without the batch axis, e.g. [3, 224, 224]")
        shape = (1, *(int(d) for d in size))
        name = ctx.graph.unique_name(_input_name(value))
        ctx.graph.add_tensor(Tensor(name, shape, "float32", layout="NCHW" if len(shape) == 4 else None))
        ctx.graph.inputs.append(name)
        ctx.bind(value.debugName(), Ref(name))


def _input_name(value: Any) -> str:
    """The forward argument's name (TorchScript's debug name without its ``.1`` suffix)."""
    return value.debugName().split(".")[0] or "input"


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return _flatten(list(value.values()))
    if isinstance(value, (list, tuple)):
        return [item for v in value for item in _flatten(v)]
    return [] if value is None else [value]


def _set_outputs(ctx: Context, returned: list[Any], where: str) -> None:
    graph = ctx.graph
    for value in _flatten(returned):
        if not isinstance(value, Ref) or graph.tensor(value.name).is_const:
            raise RknnError(f"an output of {where} is a constant (it does not depend on the inputs)")
        name = value.name
        if name in graph.inputs or name in graph.outputs:
            name = ctx.emit("Identity", [name], out=[graph.unique_name(f"{name}_output")])[0]
        graph.outputs.append(name)
    if not graph.outputs:
        raise RknnError(f"{where} returns no tensor")
