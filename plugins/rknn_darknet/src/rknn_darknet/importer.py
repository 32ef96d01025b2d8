"""``load_darknet``: a .cfg and its .weights -> the toolkit's Graph (NCHW in and out).

Each layer section is converted by the converter registered for its type under the frontend
``darknet`` (``rknn_converters`` hook), so a plugin can teach the importer a new section type. The
model's outputs are the inputs of its ``[yolo]``/``[region]`` layers, or the last layer's output.
"""

from __future__ import annotations

import os

from rknn_core.errors import RknnError, first_few
from rknn_core.ir import Graph, Tensor
from rknn_core.plugins import Registry, default_registry
from rknn_darknet import __version__
from rknn_darknet.cfg import Section, read_cfg
from rknn_darknet.context import Ctx
from rknn_darknet.weights import WeightsFile

FRONTEND = "darknet"  # the frontend name converters register under
INPUT = "data"


def supported_layers(registry: Registry | None = None) -> list[str]:
    """The section types the installed converters cover."""
    return sorted((registry or default_registry()).converters(FRONTEND))


def load_darknet(model: str, weight: str, registry: Registry | None = None) -> Graph:
    """Import a darknet model: ``model`` is the .cfg, ``weight`` the .weights file."""
    registry = registry or default_registry()
    net, layers = read_cfg(os.fspath(model))
    weights = WeightsFile(os.fspath(weight))
    graph = build_graph(net, layers, weights, registry)
    weights.finish(net.file)
    graph.metadata.update(source="darknet", source_file=net.file, plugin=f"rknn-darknet {__version__}",
                          weights_version=f"{weights.major}.{weights.minor}.{weights.revision}")
    return graph


def build_graph(net: Section, layers: list[Section], weights, registry: Registry) -> Graph:
    """The graph of a parsed cfg, its parameters taken from ``weights`` in layer order."""
    converters = registry.converters(FRONTEND)
    unknown = [s for s in layers if s.type not in converters]
    if unknown:
        listed = first_few([s.where() for s in unknown], 6)
        raise RknnError(f"'{net.file}' uses layer types that rknn-darknet {__version__} and the installed plugins do "
                        f"not support: {listed}. Supported: {', '.join(sorted(converters))}; a plugin can add one "
                        f"(an rknn_converters hook returning Converter('{FRONTEND}', '{unknown[0].type}', ...))")
    graph = Graph(name=os.path.splitext(net.file)[0])
    shape = tuple(net.int(key) for key in ("channels", "height", "width"))
    if min(shape) < 1:
        raise net.error(f"channels, height and width must be positive, got {shape}")
    graph.add_tensor(Tensor(INPUT, (1, *shape), "float32", layout="NCHW"))
    graph.inputs.append(INPUT)
    ctx = Ctx(graph, registry, weights, INPUT)
    for section in layers:
        ctx.section = section
        try:
            ctx.outputs.append(converters[section.type](ctx, section))
        except RknnError as exc:
            message = str(exc)
            raise RknnError(message if message.startswith(section.where()) else f"{section.where()}: {message}") from None
        except Exception as exc:
            raise RknnError(f"{section.where()} could not be converted: {type(exc).__name__}: {exc}") from exc
    graph.outputs.extend(ctx.results or [ctx.outputs[-1]])
    if INPUT in graph.outputs:
        raise RknnError(f"'{net.file}': the model output is its input (no layer computes anything)")
    graph.remove_unused()
    return graph
