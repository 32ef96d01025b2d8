"""Expand a sparse TFLite constant (``SparsityParameters``: DENSE / CSR levels, optional blocks) to dense."""

from __future__ import annotations

import numpy as np
import tflite

from rknn_core.errors import RknnError

_VECTORS = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}


def _vector(kind: int, table) -> np.ndarray:
    if kind not in _VECTORS or table is None:
        raise RknnError(f"sparse tensor index vector of type {kind} is not supported")
    vec = _VECTORS[kind]()
    vec.Init(table.Bytes, table.Pos)
    return vec.ValuesAsNumpy().astype(np.int64) if vec.ValuesLength() else np.zeros(0, np.int64)


def densify(values: np.ndarray, sparsity: tflite.SparsityParameters, shape: tuple[int, ...]) -> np.ndarray:
    """The dense array of ``shape`` whose non-zeros ``values`` the sparsity metadata places."""
    order = [int(v) for v in sparsity.TraversalOrderAsNumpy()]
    block_map = [int(v) for v in sparsity.BlockMapAsNumpy()] if sparsity.BlockMapLength() else []
    rank, levels = len(shape), len(order)
    pos = np.zeros(1, np.int64)
    idx = np.zeros((1, levels), np.int64)
    sizes = [0] * levels
    for j in range(levels):
        meta = sparsity.DimMetadata(j)
        dim = order[j]
        if meta.Format() == tflite.DimensionType.DENSE:
            d = int(meta.DenseSize())
            sizes[dim] = d
            pos = (pos[:, None] * d + np.arange(d)).reshape(-1)
            idx = np.repeat(idx, d, axis=0)
            idx[:, dim] = np.tile(np.arange(d), len(idx) // max(d, 1))
        else:
            seg = _vector(meta.ArraySegmentsType(), meta.ArraySegments())
            ind = _vector(meta.ArrayIndicesType(), meta.ArrayIndices())
            counts = seg[pos + 1] - seg[pos]
            starts = np.repeat(seg[pos], counts)
            offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
            new_pos = starts + offsets
            idx = np.repeat(idx, counts, axis=0)
            idx[:, dim] = ind[new_pos]
            pos = new_pos
    coords = idx[:, :rank].copy()
    for k, original in enumerate(block_map):  # block dims follow the original ones
        block = sizes[rank + k]
        coords[:, original] = coords[:, original] * block + idx[:, rank + k]
    if len(pos) != values.size:
        raise RknnError(f"sparse constant has {values.size} values, its metadata addresses {len(pos)}")
    dense = np.zeros(shape, dtype=values.dtype)
    dense[tuple(coords.T)] = values[pos]
    return dense
