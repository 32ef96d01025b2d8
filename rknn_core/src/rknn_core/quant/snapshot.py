"""The snapshot folder ``accuracy_analysis`` writes.

``output_dir/``

- ``fp32/``, ``qnt/`` and (with ``calc_qnt_error``) ``individual_qnt/``: per tensor ``{stem}.npy``
  (exact float32 values, shape kept) and ``{stem}.txt`` (the values flattened, one per line, as the
  vendor's snapshots). ``{stem}`` is ``{id:04d}_{tensor}`` (``input_{tensor}`` for graph inputs),
  the tensor name made file-safe.
- ``index.json``: per tensor its layer id, layer name, op, tensor name, shape, quantization
  parameters, file names and (with ``calc_qnt_error``) its errors.
- ``error_analysis.csv`` and ``error_analysis.png`` (with ``calc_qnt_error``).

Everything is written into a hidden staging folder inside ``output_dir`` first and then moved into
place entry by entry with renames, so a failed analysis leaves the previous snapshot as it was and
no file is ever seen half-written. Entries of an earlier snapshot that this one does not produce
(``individual_qnt/``, the CSV and PNG after ``calc_qnt_error=False``) are removed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.quant.analysis import INPUT_ID, LayerError, TensorRecord
from rknn_core.quant.plot import cosine_plot

FOLDERS = {"fp32": lambda r: r.fp32, "qnt": lambda r: r.qnt, "individual_qnt": lambda r: r.individual}
CSV_NAME, PNG_NAME, INDEX_NAME = "error_analysis.csv", "error_analysis.png", "index.json"
OWNED = (*FOLDERS, INDEX_NAME, CSV_NAME, PNG_NAME)
CSV_FIELDS = ["id", "layer", "op", "tensor", "shape", "quantized", "euclidean", "cosine_distance",
              "euclidean_isolated", "cosine_distance_isolated"]


def file_stems(records: list[TensorRecord]) -> list[str]:
    """A unique file-safe stem per record."""
    stems, seen = [], set()
    for r in records:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", r.tensor).strip("._")[:80] or "tensor"
        stem = f"input_{safe}" if r.layer_id == INPUT_ID else f"{r.layer_id:04d}_{safe}"
        base, k = stem, 1
        while stem in seen:
            stem, k = f"{base}_{k}", k + 1
        seen.add(stem)
        stems.append(stem)
    return stems


def _quant_record(r: TensorRecord) -> dict | None:
    q = r.quant
    if q is None:
        return None
    return {"qtype": q.qtype, "scheme": q.scheme, "scale": list(q.scale), "zero_point": list(q.zero_point),
            "axis": q.axis}


def _error_record(e: LayerError) -> dict:
    return {"euclidean": e.euclidean, "cosine_distance": e.cosine,
            "euclidean_isolated": _json_float(e.euclidean_isolated),
            "cosine_distance_isolated": _json_float(e.cosine_isolated)}


def _json_float(value: float) -> float | None:
    return None if not np.isfinite(value) else value


def csv_text(rows: list[LayerError]) -> str:
    """The error table as CSV (full float precision; ``id`` is -1 for graph inputs)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for e in rows:
        writer.writerow([e.layer_id, e.layer, e.op, e.tensor, "x".join(map(str, e.shape)), int(e.quantized),
                         repr(e.euclidean), repr(e.cosine), repr(e.euclidean_isolated), repr(e.cosine_isolated)])
    return out.getvalue()


def _write_tensor(folder: str, stem: str, value: np.ndarray) -> dict[str, str]:
    value = np.ascontiguousarray(value, dtype=np.float32)
    np.save(os.path.join(folder, stem + ".npy"), value, allow_pickle=False)
    with open(os.path.join(folder, stem + ".txt"), "w") as f:
        if value.size:
            value.reshape(-1).tofile(f, sep="\n", format="%.9g")
            f.write("\n")
    return {"npy": f"{os.path.basename(folder)}/{stem}.npy", "txt": f"{os.path.basename(folder)}/{stem}.txt"}


def _stage(stage: str, records: list[TensorRecord], rows: list[LayerError] | None, meta: dict) -> list[str]:
    """Write the whole snapshot into ``stage``; returns the entries written."""
    folders = [name for name in FOLDERS if name != "individual_qnt" or rows is not None]
    for name in folders:
        os.mkdir(os.path.join(stage, name))
    entries = []
    for index, (r, stem) in enumerate(zip(records, file_stems(records))):
        files = {name: _write_tensor(os.path.join(stage, name), stem, FOLDERS[name](r))
                 for name in folders if FOLDERS[name](r) is not None}
        entry = {"id": r.layer_id, "layer": r.layer, "op": r.op, "tensor": r.tensor, "shape": list(r.shape),
                 "quantized": r.quantized, "quantization": _quant_record(r), "files": files}
        if rows is not None:
            entry["errors"] = _error_record(rows[index])
        entries.append(entry)
    index = {"format": "rknn-accuracy-analysis", "version": 1, **meta, "tensors": entries}
    with open(os.path.join(stage, INDEX_NAME), "w", encoding="utf-8") as f:
        json.dump(index, f, indent=1)
    written = [*folders, INDEX_NAME]
    if rows is not None:
        with open(os.path.join(stage, CSV_NAME), "w", encoding="utf-8", newline="") as f:
            f.write(csv_text(rows))
        labels = ["in" if e.layer_id == INPUT_ID else str(e.layer_id) for e in rows]
        png = cosine_plot(labels, [e.cosine for e in rows], [e.cosine_isolated for e in rows])
        with open(os.path.join(stage, PNG_NAME), "wb") as f:
            f.write(png)
        written += [CSV_NAME, PNG_NAME]
    return written


def _commit(stage: str, output_dir: str, written: list[str]) -> None:
    """Move the staged entries into ``output_dir`` (an old folder is renamed away first, then
    deleted), and remove owned entries of an earlier snapshot that this one does not have."""
    trash = os.path.join(stage, ".old")
    os.mkdir(trash)
    for name in OWNED:
        target = os.path.join(output_dir, name)
        if os.path.isdir(target) and not os.path.islink(target):
            os.replace(target, os.path.join(trash, name))
        elif name not in written and os.path.lexists(target):
            os.remove(target)
        if name in written:
            os.replace(os.path.join(stage, name), target)


def write_snapshot(output_dir: str, records: list[TensorRecord], rows: list[LayerError] | None,
                   meta: dict) -> list[str]:
    """Write the snapshot of ``records`` (and the error table ``rows``, if computed) into
    ``output_dir``; returns the paths of its top-level entries."""
    output_dir = os.fspath(output_dir)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise RknnError(f"accuracy_analysis output_dir '{output_dir}' exists and is not a folder")
    try:
        os.makedirs(output_dir, exist_ok=True)
        stage = tempfile.mkdtemp(prefix=".snapshot-", dir=output_dir)
    except OSError as exc:
        raise RknnError(f"accuracy_analysis cannot write into '{output_dir}': {exc.strerror or exc}") from None
    try:
        written = _stage(stage, records, rows, meta)
        _commit(stage, output_dir, written)
    except OSError as exc:
        raise RknnError(f"accuracy_analysis cannot write the snapshot into '{output_dir}': "
                        f"{exc.strerror or exc}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return [os.path.join(output_dir, name) for name in written]
