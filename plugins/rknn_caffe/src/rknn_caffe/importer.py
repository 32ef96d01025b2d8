"""``load_caffe``: a .prototxt (+ .caffemodel) -> the toolkit's Graph, NCHW in and out as in Caffe."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import numpy as np

from rknn_caffe import __version__
from rknn_caffe.context import Ctx
from rknn_caffe.layers_io import net_inputs
from rknn_caffe.net import CaffeLayer, attach_blobs, net_layers
from rknn_caffe.prototxt import read_prototxt
from rknn_caffe.weights import read_caffemodel
from rknn_core.errors import RknnError, first_few
from rknn_core.ir import Graph
from rknn_core.plugins import Registry, default_registry

log = logging.getLogger("rknn")
FRONTEND = "caffe"  # the frontend name converters register under
PROTOS = ("caffe", "lstm_caffe")


def skipped(kind: str) -> bool:
    """Training-only layers an inference net leaves out: losses, accuracy, silence."""
    return kind.endswith("Loss") or kind in ("Accuracy", "Silence")


def supported_layers(registry: Registry | None = None) -> list[str]:
    """The Caffe layer types the installed converters cover."""
    return sorted((registry or default_registry()).converters(FRONTEND))


def load_caffe(model: str, proto: str = "caffe", blobs: str | None = None, registry: Registry | None = None) -> Graph:
    """Import a Caffe net with the registry's converters (the installed plugins' by default); errors name
    the file, the layer, its line and the problem."""
    return _import(model, proto, blobs, registry or default_registry())[0]


def invent_blobs(model: str, make: Callable[[CaffeLayer, int, tuple[int, ...], str], np.ndarray],
                 proto: str = "caffe", registry: Registry | None = None) -> dict[str, list[np.ndarray]]:
    """Learned blobs for every layer of ``model`` that needs some, each made by ``make(layer, index, shape,
    what)`` with the shape the .prototxt implies (layer name -> arrays): weights for ``write_caffemodel``."""
    return _import(model, proto, None, registry or default_registry(), make)[1].invented


def _import(model: str, proto: str, blobs: str | None, registry: Registry, invent=None) -> tuple[Graph, Ctx]:
    if proto not in PROTOS:
        raise RknnError(f"load_caffe proto must be 'caffe' or 'lstm_caffe', got {proto!r}")
    net, sources = read_prototxt(model)
    layers = [layer for layer in net_layers(net, sources) if not skipped(layer.type)]
    path = os.path.basename(os.fspath(model))
    converters = registry.converters(FRONTEND)
    _check_types(layers, converters, path)
    if blobs is not None:
        attach_blobs(layers, read_caffemodel(blobs))
    graph = Graph(name=net.name or os.path.splitext(path)[0])
    graph.metadata.update(source="caffe", source_file=path, plugin=f"rknn-caffe {__version__}", caffe_proto=proto)
    ctx = Ctx(graph, registry, proto)
    ctx.invent = invent
    for i, layer in enumerate(layers):
        for top in layer.tops:
            ctx.final_writer[top] = i
    try:
        net_inputs(net, ctx)
    except RknnError as exc:
        raise RknnError(f"'{path}': {exc}") from None
    for i, layer in enumerate(layers):
        ctx.layer, ctx.index = layer, i
        _convert(ctx, layer, converters[layer.type], path, blobs)
    ctx.layer = None
    _set_outputs(ctx, layers, path)
    if not graph.inputs:
        raise RknnError(f"'{path}' declares no input (an Input layer, a data layer or 'input' fields)")
    graph.remove_unused()
    log.debug("load_caffe: %d Caffe layers -> %d nodes", len(layers), len(graph.nodes))
    return graph, ctx


def _check_types(layers: list[CaffeLayer], converters: dict, path: str) -> None:
    bad = [layer for layer in layers if layer.type not in converters]
    if bad:
        listed = first_few([f"'{layer.type}' (layer '{layer.name}', line {layer.line})" for layer in bad])
        raise RknnError(f"'{path}' uses Caffe layer type(s) that rknn-caffe {__version__} and the installed plugins "
                        f"do not support: {listed}. A plugin adds one with an rknn_converters hook returning "
                        f"Converter('{FRONTEND}', '{bad[0].type}', ...)")


def _convert(ctx: Ctx, layer: CaffeLayer, convert, path: str, blobs: str | None) -> None:
    try:
        if len(set(layer.tops)) != len(layer.tops):
            raise RknnError(f"the tops {layer.tops} repeat a name")
        convert(ctx, layer)
        missing = [top for top in layer.tops if top not in ctx.blobs and top not in ctx.dropped]
        if missing:
            raise RknnError(f"the converter did not produce top(s) {missing}")
    except RknnError as exc:
        hint = " (load_caffe was given no blobs file)" if blobs is None and "caffemodel" in str(exc) else ""
        raise RknnError(f"{layer.where(path)}: {exc}{hint}") from None
    except Exception as exc:
        raise RknnError(f"{layer.where(path)} could not be converted: {type(exc).__name__}: {exc}") from exc


def _set_outputs(ctx: Ctx, layers: list[CaffeLayer], path: str) -> None:
    """The net's outputs, as Caffe finds them: blobs some layer produces that no later layer consumes."""
    open_blobs: dict[str, None] = {}
    for layer in layers:
        for bottom in layer.bottoms:
            open_blobs.pop(bottom, None)
        for top in layer.tops:
            if top not in ctx.dropped:
                open_blobs[top] = None
    graph = ctx.graph
    for blob in open_blobs:
        ir = ctx.blobs[blob]
        if blob in graph.inputs:  # an input no layer reads
            continue
        if graph.tensors[ir].is_const:
            log.warning("'%s': output '%s' is a constant (it does not depend on the inputs); it is left out", path, blob)
            continue
        if ir != blob:
            name = blob if blob not in graph.tensors else graph.unique_name(blob)
            ir = ctx.emit("Identity", [ir], outputs=[name])[0]
        graph.outputs.append(ir)
    if not graph.outputs:
        raise RknnError(f"'{path}' has no output: every blob is consumed or constant")
