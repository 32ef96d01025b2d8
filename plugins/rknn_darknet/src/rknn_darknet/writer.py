"""Write a genuine darknet .weights file with invented values for a .cfg (tests, benchmarks).

The values come from ``RandomWeights`` in the order the importer reads them, so the file has the
layout darknet and OpenCV read: header, then each layer's biases, batch-norm arrays and weights.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from rknn_core.plugins import Registry, default_registry
from rknn_darknet.cfg import read_cfg
from rknn_darknet.importer import build_graph
from rknn_darknet.weights import FLOAT, RandomWeights, header_size


def write_weights(cfg: str, path: str, seed: int = 0, version: tuple[int, int, int] = (0, 2, 0), seen: int = 0,
                  registry: Registry | None = None) -> int:
    """Write ``path`` for the model ``cfg`` with fixed random values (``seed``); returns its size in bytes.
    ``version`` (major, minor, revision) decides whether ``seen`` is stored as int64 or int32."""
    net, layers = read_cfg(os.fspath(cfg))
    source = RandomWeights(seed)
    build_graph(net, layers, source, registry or default_registry())
    major, minor, revision = version
    with open(path, "wb") as fh:
        fh.write(struct.pack("<3i", major, minor, revision))
        fh.write(struct.pack("<q" if header_size(major, minor) == 20 else "<i", seen))
        for array in source.arrays:
            fh.write(np.ascontiguousarray(array, FLOAT).tobytes())
    return os.path.getsize(path)
