"""Conversion state of one Caffe net: blob names -> IR tensors, eager folding, weight blobs checked by shape."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rknn_caffe.net import CaffeLayer, expected
from rknn_core.errors import RknnError
from rknn_core.graph_builder import emit_node, fresh_names
from rknn_core.ir import Graph, Tensor
from rknn_core.plugins import Registry

log = logging.getLogger("rknn")


class Ctx:
    """Builds one Graph; a converter reads ``ctx.layer`` and writes its tops with ``ctx.top``."""

    def __init__(self, graph: Graph, registry: Registry, proto: str = "caffe"):
        self.graph = graph
        self.registry = registry
        self.proto = proto  # 'caffe' or 'lstm_caffe', as load_caffe was called
        self.blobs: dict[str, str] = {}  # Caffe blob name -> the IR tensor holding its current value
        self.dropped: dict[str, str] = {}  # blob name -> why inference has no such blob (a Data layer's label)
        self.final_writer: dict[str, int] = {}  # blob name -> index of the last layer that writes it
        self.layer: CaffeLayer | None = None
        self.index = -1
        self.values: dict[str, np.ndarray] = {}
        # when set, blob() asks it for every learned blob instead of the .caffemodel (invent_blobs)
        self.invent: Callable[[CaffeLayer, int, tuple[int, ...], str], np.ndarray] | None = None
        self.invented: dict[str, list[np.ndarray]] = {}

    # reading the layer --------------------------------------------------------------------------
    def bottom(self, k: int = 0) -> str:
        """The IR tensor of the layer's k-th bottom."""
        layer = self.layer
        if k >= len(layer.bottoms):
            raise RknnError(f"needs at least {k + 1} bottom(s), the layer has {len(layer.bottoms)}")
        name = layer.bottoms[k]
        if name in self.dropped:
            raise RknnError(f"bottom '{name}' is {self.dropped[name]}, which inference does not have")
        if name not in self.blobs:
            raise RknnError(f"bottom '{name}' is produced by no earlier layer and is not a net input")
        return self.blobs[name]

    def shape(self, k: int = 0) -> tuple[int, ...]:
        """The shape of bottom k."""
        return tuple(self.graph.tensor(self.bottom(k)).shape)

    def blob(self, k: int, shape: Sequence[int], what: str) -> np.ndarray:
        """The layer's k-th learned blob as an array of ``shape``; errors name both shapes."""
        blobs = self.layer.blobs
        shape = tuple(int(d) for d in shape)
        if self.invent is not None:
            made = self.invented.setdefault(self.layer.name, [])
            if len(made) <= k:
                made.append(np.asarray(self.invent(self.layer, k, shape, what), np.float32).reshape(shape))
            return made[k]
        if k >= len(blobs):
            raise RknnError(f"needs its {what} (blob {k}, shape {list(shape)}), but the .caffemodel has "
                            f"{len(blobs)} blob(s) for it" + ("" if blobs else " (is the layer name in the .caffemodel?)"))
        blob = blobs[k]
        if not expected(blob, shape):
            raise RknnError(f"the .caffemodel's {what} (blob {k}) has shape {list(blob.shape)}, the .prototxt "
                            f"implies {list(shape)}")
        if blob.data.size != int(np.prod(shape, dtype=np.int64)):
            raise RknnError(f"the .caffemodel's {what} (blob {k}) holds {blob.data.size} values for shape {list(shape)}")
        return blob.data.reshape(shape)

    # writing the graph ---------------------------------------------------------------------------
    def const(self, base: str, data: Any) -> str:
        return self.graph.add_const(base, np.asarray(data))

    def emit(self, op: str, inputs: Sequence[str], attrs: dict | None = None, outputs: Sequence[str] | None = None,
             n_out: int = 1) -> list[str]:
        """Append an IR node (folded at once when its inputs are constants); returns its output names."""
        if outputs is None:
            outputs = fresh_names(self.graph, f"{self.layer.name}/{op}" if self.layer else op, n_out)
        outputs = list(outputs)
        emit_node(self.graph, self.registry, self.values, op, inputs, attrs, outputs)
        return outputs

    def top_name(self, k: int = 0) -> str:
        """A fresh IR name for top k: the blob's own name when this layer writes its final value."""
        blob = self.layer.tops[k]
        if self.final_writer.get(blob) == self.index and blob not in self.graph.tensors:
            return blob
        return self.graph.unique_name(f"{blob}@{self.layer.name}")

    def top(self, k: int, op: str, inputs: Sequence[str], attrs: dict | None = None) -> str:
        """Emit the node computing top k and bind the blob to it."""
        name = self.emit(op, inputs, attrs, [self.top_name(k)])[0]
        self.bind(k, name)
        return name

    def tops(self, op: str, inputs: Sequence[str], attrs: dict | None = None) -> list[str]:
        """Emit one node computing every top (Slice, LSTM with exposed states ...) and bind them."""
        names = self.emit(op, inputs, attrs, [self.top_name(k) for k in range(len(self.layer.tops))])
        for k, name in enumerate(names):
            self.bind(k, name)
        return names

    def bind(self, k: int, ir_name: str) -> None:
        """Top k of the layer now holds IR tensor ``ir_name`` (an alias: Dropout, Split)."""
        self.blobs[self.layer.tops[k]] = ir_name

    def add_input(self, k: int, shape: Sequence[int]) -> None:
        """Top k of the layer is a net input of ``shape`` (NCHW for 4-D; a deploy batch becomes 1)."""
        shape = tuple(int(d) for d in shape)
        name = self.layer.tops[k]
        if not shape or min(shape) < 1:
            raise RknnError(f"input '{name}' has the invalid shape {list(shape)}")
        if len(shape) == 4 and shape[0] > 1:
            log.info("input '%s': the .prototxt's batch of %d is imported as 1 (build(rknn_batch_size=%d) runs "
                     "%d at a time)", name, shape[0], shape[0], shape[0])
            shape = (1, *shape[1:])
        if name in self.graph.tensors:
            raise RknnError(f"input '{name}' is defined twice")
        self.graph.add_tensor(Tensor(name, shape, "float32", layout="NCHW" if len(shape) == 4 else None))
        self.graph.inputs.append(name)
        self.blobs[name] = name

    def scalar(self, value: float) -> str:
        return self.const(f"{self.layer.name}/scalar", np.float32(value))
