"""Results of the toolkit as JSON for the page: outputs with their top-5, the perf table, the
accuracy-analysis rows (read from the CSV the API writes)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

TOP = 5
SHOWN_VALUES = 64


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars/arrays, tuples and non-finite floats made JSON-safe."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def output(index: int, name: str, array: np.ndarray) -> dict:
    """One inference output: the top-5 for a classifier-like vector, the raw values otherwise."""
    array = np.asarray(array)
    flat = array.astype(np.float64).ravel()
    result = {"index": index, "name": name, "shape": list(array.shape), "dtype": str(array.dtype), "top": None,
              "values": jsonable(flat[:SHOWN_VALUES]), "size": int(flat.size),
              "min": jsonable(flat.min()) if flat.size else None, "max": jsonable(flat.max()) if flat.size else None}
    per_sample = array.shape[1:] if array.ndim > 1 else array.shape
    if array.size > 1 and sum(d > 1 for d in per_sample) == 1 and (array.ndim == 1 or array.shape[0] == 1):
        order = np.argsort(-flat, kind="stable")[:TOP]
        result["top"] = [[int(i), jsonable(flat[i])] for i in order]
    return result


def perf(result: dict) -> dict:
    """eval_perf's dict with its layers as a list (layer id kept)."""
    layers = [{"id": int(layer_id), **jsonable(layer)} for layer_id, layer in result.get("layers", {}).items()]
    return {**jsonable({k: v for k, v in result.items() if k != "layers"}), "layers": layers}


def accuracy(output_dir: Path) -> list[dict]:
    """The rows of ``error_analysis.csv`` that ``accuracy_analysis`` wrote into ``output_dir``."""
    path = output_dir / "error_analysis.csv"
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            rows.append({"id": int(row["id"]), "layer": row["layer"], "op": row["op"], "tensor": row["tensor"],
                         "shape": row["shape"], "quantized": row["quantized"] in ("1", "True", "true"),
                         **{key: _number(row[key]) for key in ("euclidean", "cosine_distance", "euclidean_isolated",
                                                               "cosine_distance_isolated")}})
    return rows


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
