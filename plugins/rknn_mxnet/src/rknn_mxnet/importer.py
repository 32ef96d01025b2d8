"""``load_mxnet``: a symbol .json + .params -> the toolkit's Graph, NCHW in and out as in MXNet."""

from __future__ import annotations

import logging
import os

import numpy as np

from rknn_core.errors import RknnError, first_few
from rknn_core.ir import Graph, Tensor
from rknn_core.plugins import Registry, default_registry
from rknn_mxnet import __version__
from rknn_mxnet.context import Ctx
from rknn_mxnet.params import read_params, split_params
from rknn_mxnet.symbol import MxNode, MxSymbol, read_symbol

log = logging.getLogger("rknn")
FRONTEND = "mxnet"  # the frontend name converters register under
PLUGIN = f"rknn-mxnet {__version__}"
# loss layers whose label input is a training-time variable, not a model input
LABEL_INPUT = {"SoftmaxOutput": 1, "Softmax": 1, "LinearRegressionOutput": 1, "LogisticRegressionOutput": 1,
               "MAERegressionOutput": 1, "SVMOutput": 1}
PARAM_SUFFIXES = ("_weight", "_bias", "_gamma", "_beta", "_moving_mean", "_moving_var", "_running_mean",
                  "_running_var", "_alpha")


def supported_ops(registry: Registry | None = None) -> list[str]:
    """The MXNet op names the installed converters cover."""
    return sorted((registry or default_registry()).converters(FRONTEND))


def load_mxnet(symbol: str, params: str, input_size_list: list[list[int]], registry: Registry | None = None) -> Graph:
    """Import an MXNet model with the registry's converters (the installed plugins' by default).

    ``input_size_list`` has one entry per model input (the symbol's variables that are not in the .params
    file, in the symbol's order), without the batch axis: ``[3, 224, 224]`` becomes (1, 3, 224, 224). Errors
    name the file, the node, its op and the plugin version.
    """
    registry = registry or default_registry()
    path = os.path.basename(os.fspath(symbol))
    sym = read_symbol(symbol)
    try:
        weights = split_params(read_params(params))
    except RknnError as exc:
        raise RknnError(f"{exc} ({PLUGIN})") from None
    used = _reachable(sym)
    converters = registry.converters(FRONTEND)
    _check_ops(sym, used, converters, path)
    graph = Graph(name=os.path.splitext(path)[0].removesuffix("-symbol"))
    graph.metadata.update(source="mxnet", source_file=path, plugin=PLUGIN)
    if sym.version is not None:
        graph.metadata["mxnet_version"] = sym.version
    ctx = Ctx(graph, registry, sym, weights)
    _variables(ctx, sym, used, weights, input_size_list, path)
    for node in sym.nodes:
        if node.index in used and not node.is_variable:
            _convert(ctx, node, converters[node.op], path)
    ctx.node = None
    _set_outputs(ctx, sym, path)
    graph.remove_unused()
    log.debug("load_mxnet: %d MXNet nodes -> %d IR nodes", len(used), len(graph.nodes))
    return graph


def _reachable(sym: MxSymbol) -> set[int]:
    """The nodes the heads depend on (a symbol file may hold training-only branches)."""
    seen: set[int] = set()
    stack = [node for node, _ in sym.heads]
    while stack:
        index = stack.pop()
        if index not in seen:
            seen.add(index)
            stack.extend(src for src, _ in sym.nodes[index].inputs)
    return seen


def _check_ops(sym: MxSymbol, used: set[int], converters: dict, path: str) -> None:
    bad = [n for n in sym.nodes if n.index in used and not n.is_variable and n.op not in converters]
    if bad:
        listed = first_few([f"'{n.op}' at node '{n.name}'" for n in bad])
        raise RknnError(f"'{path}' uses MXNet op(s) that {PLUGIN} and the installed plugins do not convert: "
                        f"{listed}. A plugin adds one with an rknn_converters hook returning "
                        f"Converter('{FRONTEND}', '{bad[0].op}', ...)")


def _labels(sym: MxSymbol, used: set[int]) -> set[int]:
    """Variables read only as the label input of a loss layer."""
    readers: dict[int, list[tuple[MxNode, int]]] = {}
    for node in sym.nodes:
        if node.index in used:
            for k, (src, _) in enumerate(node.inputs):
                readers.setdefault(src, []).append((node, k))
    return {src for src, uses in readers.items()
            if all(LABEL_INPUT.get(node.op) == k for node, k in uses)}


def _variables(ctx: Ctx, sym: MxSymbol, used: set[int], weights: dict[str, np.ndarray], sizes: list[list[int]],
               path: str) -> None:
    """Learned parameters become constants, the other variables (but labels) the graph inputs, in order."""
    labels = _labels(sym, used)
    inputs = []
    for node in sym.nodes:
        if not node.is_variable or node.index not in used or node.index in labels:
            continue
        if node.name in weights:
            data = weights[node.name]
            data = data.astype(np.float32) if data.dtype.kind == "f" else data
            ctx.entries[(node.index, 0)] = ctx.graph.add_const(node.name, data)
        elif node.name.endswith(PARAM_SUFFIXES):
            raise RknnError(f"{node.where(path)}: the parameter '{node.name}' is not in the .params file (it holds "
                            f"{len(weights)} arrays; is it the .params file of this symbol?) ({PLUGIN})")
        else:
            inputs.append(node)
    if len(inputs) != len(sizes):
        names = ", ".join(f"'{n.name}'" for n in inputs) or "none"
        raise RknnError(f"'{path}' has {len(inputs)} input(s) ({names}: the variables that are not in the .params "
                        f"file) but input_size_list gives {len(sizes)} size(s) ({PLUGIN})")
    for node, size in zip(inputs, sizes):
        shape = _input_shape(node, size)
        ctx.graph.add_tensor(Tensor(node.name, shape, "float32", layout="NCHW" if len(shape) == 4 else None))
        ctx.graph.inputs.append(node.name)
        ctx.entries[(node.index, 0)] = node.name


def _input_shape(node: MxNode, size: list[int]) -> tuple[int, ...]:
    """``size`` with batch 1 prepended, unless the variable declares a ``__shape__`` of ``size``'s rank."""
    declared = node.annotations.get("__shape__", "")
    rank = len([d for d in declared.strip("()[] ").split(",") if d.strip()]) if declared else -1
    return tuple(size) if rank == len(size) else (1, *size)


def _convert(ctx: Ctx, node: MxNode, convert, path: str) -> None:
    ctx.node = node
    try:
        convert(ctx, node)
        if (node.index, 0) not in ctx.entries:
            raise RknnError("the converter produced no output")
    except RknnError as exc:
        raise RknnError(f"{node.where(path)}: {exc} ({PLUGIN})") from None
    except Exception as exc:
        raise RknnError(f"{node.where(path)} could not be converted: {type(exc).__name__}: {exc} ({PLUGIN})") from exc


def _set_outputs(ctx: Ctx, sym: MxSymbol, path: str) -> None:
    """The heads, each named after its node (an Identity where the node's value is another tensor)."""
    graph = ctx.graph
    for index, output in sym.heads:
        node = sym.nodes[index]
        ir = ctx.entries.get((index, output))
        if ir is None:
            raise RknnError(f"{node.where(path)}: output {output}, a head of the symbol, is not produced ({PLUGIN})")
        if graph.tensors[ir].is_const:
            raise RknnError(f"{node.where(path)}: the head is a constant (it does not depend on the inputs) "
                            f"({PLUGIN})")
        if ir in graph.inputs or ir in graph.outputs or ir not in (node.name, f"{node.name}:{output}"):
            ctx.node = node
            ir = ctx.emit("Identity", [ir], outputs=[graph.unique_name(f"{node.name}_output")])[0]
        graph.outputs.append(ir)
