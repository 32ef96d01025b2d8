"""``load_tensorflow``: a frozen GraphDef .pb -> the toolkit's Graph, cut at the given nodes."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from rknn_core.cut import input_shape
from rknn_core.errors import RknnError, first_few
from rknn_core.ir import Graph, Tensor
from rknn_core.plugins import Registry, default_registry
from rknn_tf import __version__, ops_nn
from rknn_tf.context import TF, Context
from rknn_tf.graphdef import attrs_of, np_dtype, read_graphdef, shape_of, split_input, tensor_key, tensor_to_numpy
from rknn_tf.select import dilated_patterns, select_nodes
from rknn_tf.tfnode import TfNode

log = logging.getLogger("rknn")
FRONTEND = "tensorflow"  # the frontend name converters register under
IGNORED = {"NoOp"}
# handled by the importer itself: constants, placeholders, the dilated-convolution pattern
OWN_OPS = ("Const", "Placeholder", "SpaceToBatchND", "BatchToSpaceND", *IGNORED)


def supported_ops(registry: Registry | None = None) -> list[str]:
    """The TensorFlow op types the importer and the installed converters cover."""
    return sorted({*(registry or default_registry()).converters(FRONTEND), *OWN_OPS})


def _names(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not value or not all(isinstance(v, str) and v for v in value):
        raise RknnError(f"load_tensorflow {what} must be a non-empty list of node names, got {value!r}")
    return [v.split(":0")[0] if v.endswith(":0") else v for v in value]


def read_predef(path: str | None) -> dict[str, np.ndarray]:
    """Placeholder values from an .npz (``#`` in a name stands for ``/``)."""
    if path is None:
        return {}
    if not os.path.isfile(path):
        raise RknnError(f"predef_file '{path}' does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k.replace("#", "/"): np.asarray(data[k]) for k in data.files}
    except Exception as exc:
        raise RknnError(f"predef_file '{path}' is not a readable .npz file: {type(exc).__name__}: {exc}") from None


def _mean_std(values: Any, count: int, what: str) -> list[list[float]] | None:
    """One list of per-channel values per input (a single number applies to every channel)."""
    if values is None:
        return None
    if not isinstance(values, (list, tuple)) or len(values) != count:
        raise RknnError(f"load_tensorflow {what} must hold one entry per input ({count}), got {values!r}")
    try:
        return [[float(v) for v in np.atleast_1d(np.asarray(entry, dtype=np.float64))] for entry in values]
    except (TypeError, ValueError):
        raise RknnError(f"load_tensorflow {what} must hold numbers, got {values!r}") from None


def load_tensorflow(tf_pb: str, inputs: Sequence[str], input_size_list: Sequence, outputs: Sequence[str],
                    predef_file: str | None = None, mean_values: Any = None, std_values: Any = None,
                    registry: Registry | None = None) -> Graph:
    """Import the part of a frozen GraphDef between ``inputs`` and ``outputs``; NHWC in and out. Ops convert
    with the registry's converters (the installed plugins' by default)."""
    registry = registry or default_registry()
    converters = registry.converters(FRONTEND)
    inputs, outputs = _names(inputs, "inputs"), _names(outputs, "outputs")
    if not isinstance(input_size_list, (list, tuple)) or len(input_size_list) != len(inputs):
        raise RknnError(f"load_tensorflow input_size_list must hold one size per input ({len(inputs)}), "
                        f"got {input_size_list!r}")
    means, stds = _mean_std(mean_values, len(inputs), "mean_values"), _mean_std(std_values, len(inputs), "std_values")
    gd = read_graphdef(tf_pb)
    predef = read_predef(predef_file)
    by_name = {n.name: n for n in gd.node}
    where = f"'{os.path.basename(os.fspath(tf_pb))}'"
    selected = select_nodes(by_name, inputs, outputs, predef, where)
    graph = Graph(name=os.path.splitext(os.path.basename(os.fspath(tf_pb)))[0])
    graph.metadata.update(source="tensorflow", source_file=os.path.basename(os.fspath(tf_pb)),
                          plugin=f"rknn-tf {__version__}")
    if means or stds:
        graph.metadata["input_mean_std"] = {
            name: {"mean": means[i] if means else [0.0], "std": stds[i] if stds else [1.0]} for i, name in enumerate(inputs)}
    ctx = Context(graph, registry)
    ctx.nodes = {n.name: TfNode(n.name, n.op, [tensor_key(i) for i in n.input if not i.startswith("^")],
                                {} if n.op == "Const" else attrs_of(n)) for n in selected}
    for tnode in ctx.nodes.values():
        for key in tnode.inputs:
            ctx.consumers[key] = ctx.consumers.get(key, 0) + 1
    ctx.outputs = {tensor_key(o) for o in outputs}
    _check_ops(selected, inputs, where, {*converters, *OWN_OPS})
    skip, alias, fused = dilated_patterns(ctx)
    for i, name in enumerate(inputs):
        _add_input(ctx, by_name.get(split_input(name)[0]), tensor_key(name), input_size_list[i], where)
    cut = {split_input(n)[0] for n in inputs}
    for ndef in selected:
        tnode = ctx.nodes[ndef.name]
        if ndef.name in cut or ndef.name in skip or ndef.op in IGNORED:
            continue
        ctx.scope = ndef.name
        try:
            if ndef.name in alias:
                ctx.bind(ndef.name, *ctx.held[tnode.inputs[0]])
            elif ndef.op == "Const":
                ctx.bind(ndef.name, ctx.add_const(ndef.name, tensor_to_numpy(ndef.attr["value"].tensor, ndef.name)))
            elif ndef.op in ("Placeholder", "PlaceholderWithDefault") and ndef.name in predef:
                dtype = np_dtype(ndef.attr["dtype"].type, ndef.name)
                ctx.bind(ndef.name, ctx.add_const(ndef.name, predef[ndef.name].astype(dtype)))
            else:
                (ops_nn.dilated_conv if ndef.name in fused else converters[ndef.op])(ctx, tnode)
        except RknnError as exc:
            raise RknnError(f"node '{ndef.name}' ({ndef.op}) in {where}: {exc}") from None
        except Exception as exc:
            raise RknnError(f"node '{ndef.name}' ({ndef.op}) in {where} could not be converted: "
                            f"{type(exc).__name__}: {exc}") from exc
    _set_outputs(ctx, outputs, where)
    graph.toposort()
    graph.remove_unused()
    return graph


def _check_ops(selected, inputs: list[str], where: str, supported: set[str]) -> None:
    cut = {split_input(n)[0] for n in inputs}
    bad = [n for n in selected if n.name not in cut and n.op not in supported]
    if bad:
        listed = first_few([f"'{n.op}' at node '{n.name}'" for n in bad])
        raise RknnError(f"{where} uses TensorFlow op(s) that rknn-tf {__version__} and the installed plugins do not "
                        f"support: {listed}. Cut the graph before/after them with inputs/outputs, or install a "
                        f"plugin that converts them (an rknn_converters hook returning "
                        f"Converter('{FRONTEND}', '{bad[0].op}', ...))")


def _add_input(ctx: Context, ndef, key: str, size: Sequence[int], where: str) -> None:
    declared = None
    dtype = np.dtype(np.float32)
    if ndef is not None:
        if "shape" in ndef.attr and ndef.op.startswith("Placeholder"):
            declared = shape_of(ndef.attr["shape"].shape)
        for attr in ("dtype", "T"):
            if attr in ndef.attr and ndef.attr[attr].WhichOneof("value") == "type":
                dtype = np_dtype(ndef.attr[attr].type, ndef.name)
                break
    if not isinstance(size, (list, tuple)) or not size:
        raise RknnError(f"input_size_list entry {size!r} for input '{key}' must be a list of sizes")
    if declared is None or not declared:
        declared = (-1, *size)  # the vendor's sizes leave out the batch axis
    shape = input_shape(size, declared, key)
    if len(shape) == len(declared) and any(d > 0 and d != s for d, s in zip(declared, shape)):
        log.warning("input '%s' of %s is declared %s; importing it as %s", key, where, list(declared), list(shape))
    tensor = Tensor(key, shape, str(dtype), layout="NHWC" if len(shape) == 4 else None)
    ctx.graph.add_tensor(tensor)
    ctx.graph.inputs.append(key)
    ctx.bind(key, key, TF)


def _set_outputs(ctx: Context, outputs: list[str], where: str) -> None:
    graph = ctx.graph
    for name in outputs:
        key = tensor_key(name)
        ir = ctx.get(key, TF)
        if graph.tensors[ir].is_const:
            raise RknnError(f"output '{name}' of {where} is a constant (it does not depend on the inputs)")
        if ir in graph.inputs:
            raise RknnError(f"output '{name}' of {where} is one of the inputs")
        if ir != name:
            ir = ctx.emit("Identity", [ir], out=name if name not in graph.tensors else graph.unique_name(name),
                          scope=name)[0]
        graph.outputs.append(ir)
