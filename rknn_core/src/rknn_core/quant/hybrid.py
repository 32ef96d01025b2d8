"""Hybrid quantization: step 1 writes the optimized float model and its quantization config, step 2
rebuilds the model from those files honouring the user's edits.

Files of step 1, written atomically (temporary file in the same folder, then rename):

- ``{model}.json``: the optimized float graph (nodes with ``id``/name/op/attrs/inputs/outputs,
  tensors with shape/dtype/layout and, for constants, ``data`` = offset/nbytes/dtype/shape into the
  .data file), inputs/outputs, the preprocessing mapping, the build config, the quantized dtype and
  the size and SHA-256 of the .data file it belongs with.
- ``{model}.data``: the float constants, raw little-endian C-order arrays, each starting at a
  64-byte-aligned offset (the data section of the .rknn format).
- ``{model}.quantization.cfg``: see :mod:`rknn_core.quant.hybrid_cfg`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os

import attrs

from rknn_core import fileformat
from rknn_core.atomic import write_atomic
from rknn_core.config import Config
from rknn_core.errors import RknnError
from rknn_core.ir import Graph
from rknn_core.model import RknnModel
from rknn_core.plugins import Registry
from rknn_core.quant import build
from rknn_core.quant.dataset import read_dataset
from rknn_core.quant.equalize import equalize
from rknn_core.quant.hybrid_cfg import check_derived, parse_cfg, render_cfg
from rknn_core.quant.quantize_graph import quantize_graph
from rknn_core.shape_inference import op_for

log = logging.getLogger("rknn")
FORMAT = "rknn-hybrid-model"
VERSION = 1


def calibrate(model: RknnModel, registry: Registry, cfg: Config, dataset_path: str | None) -> dict[str, tuple[float, float]]:
    """Ranges of every float tensor of ``model``'s float graph over the dataset, by ``cfg.quantized_algorithm``
    (the same calibration as ``build``)."""
    dataset = read_dataset(dataset_path, len(model.graph.inputs))
    return build.calibrate(model, registry, cfg, dataset)


# step 1 -----------------------------------------------------------------------------------------
def model_files(model: RknnModel, stem: str, quantized_dtype: str) -> tuple[bytes, bytes]:
    """The ``.json`` and ``.data`` contents of a float model."""
    meta, chunks = fileformat.describe(model)
    for i, node in enumerate(meta["graph"]["nodes"]):
        node["id"] = i
    data_bytes = b"".join(chunks)
    record = {"format": FORMAT, "version": VERSION, "source": stem, "quantized_dtype": quantized_dtype,
              "data_file": f"{stem}.data", "data_nbytes": len(data_bytes),
              "data_sha256": hashlib.sha256(data_bytes).hexdigest(), "model": meta}
    return json.dumps(record, indent=1).encode("utf-8"), data_bytes


def step1(model: RknnModel, registry: Registry, cfg: Config, dataset: str | None, stem: str,
          folder: str = ".") -> list[str]:
    """Calibrate the optimized float ``model`` and write its .json, .data and .quantization.cfg.

    With ``config(cross_layer_equalization=True)`` the written float model is the equalized one.
    """
    if cfg.cross_layer_equalization:
        equalize(model.graph)
    ranges = calibrate(model, registry, cfg, dataset)
    quantized = model.graph.clone()
    quantize_graph(quantized, registry, ranges, cfg.quantized_dtype)
    json_bytes, data_bytes = model_files(model, stem, cfg.quantized_dtype)
    paths = [os.path.join(folder, f"{stem}{ext}") for ext in (".data", ".json", ".quantization.cfg")]
    for path, content in zip(paths, (data_bytes, json_bytes, render_cfg(quantized, registry).encode("utf-8"))):
        write_atomic(path, [content])
    log.info("hybrid_quantization_step1: wrote %s", ", ".join(paths))
    return paths


# step 2 -----------------------------------------------------------------------------------------
def _read(path: str, what: str) -> bytes:
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise RknnError(f"{what} '{path}' does not exist; hybrid_quantization_step1 writes it")
    with open(path, "rb") as f:
        return f.read()


def read_model(model_input: str, data_input: str, registry: Registry) -> tuple[RknnModel, dict]:
    """The float model of step 1's .json and .data (checked to belong together) and the json record."""
    text = _read(model_input, "model_input")
    try:
        record = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RknnError(f"model_input '{model_input}' is not a model structure file of hybrid_quantization_step1 "
                        f"(invalid JSON: {exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise RknnError(f"model_input '{model_input}' is not a model structure file of hybrid_quantization_step1")
    if record.get("version", 0) > VERSION:
        raise RknnError(f"model_input '{model_input}' has version {record['version']}, newer than this toolkit's {VERSION}")
    if not os.path.isfile(data_input):
        raise RknnError(f"data_input '{data_input}' does not exist; hybrid_quantization_step1 writes it")
    with open(data_input, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    digest = hashlib.sha256(buffer).hexdigest()
    if size != record.get("data_nbytes") or digest != record.get("data_sha256"):
        raise RknnError(f"data_input '{data_input}' does not belong to '{model_input}' (size or checksum differs); "
                        f"use the pair written by the same hybrid_quantization_step1")
    try:
        model = fileformat.model_from_description(record["model"], buffer, 0)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RknnError(f"model_input '{model_input}' has a malformed model description "
                        f"({type(exc).__name__}: {exc})") from None
    for node in model.graph.nodes:  # every op must be installed
        op_for(node, registry)
    return model, record


def step2(registry: Registry, session_cfg: Config, model_input: str, data_input: str, cfg_path: str,
          dataset: str | None, pre_compile: bool = False) -> tuple[RknnModel, Graph]:
    """The hybrid-quantized model built from step 1's files and the edited cfg; also its float graph.

    The scheme and calibration algorithm are step 1's; calibration uses the session's
    ``batch_size``/``epochs``. (Bias correction is not applied: biases follow the edited cfg.)
    """
    model, record = read_model(model_input, data_input, registry)
    quantized_dtype = record["quantized_dtype"]
    if pre_compile and len(model.graph.inputs) > 1:
        raise RknnError("hybrid_quantization_step2 pre_compile=True is not allowed for models with several inputs")
    text = _read(cfg_path, "model_quantization_cfg")
    try:
        text_str = text.decode("utf-8")
    except UnicodeDecodeError:
        raise RknnError(f"model_quantization_cfg '{cfg_path}' is not a text file") from None
    edits = parse_cfg(text_str, str(cfg_path), model.graph, registry, quantized_dtype)
    float_graph = model.graph.clone()
    recorded = record["model"].get("extra", {}).get("config", {})
    cfg = attrs.evolve(session_cfg, quantized_dtype=quantized_dtype,
                       quantized_algorithm=recorded.get("quantized_algorithm", session_cfg.quantized_algorithm))
    ranges = calibrate(model, registry, cfg, dataset)
    stay_float = quantize_graph(model.graph, registry, ranges, quantized_dtype,
                                float_nodes=edits.float_nodes, given=edits.given)
    for warning in check_derived(model.graph, edits, str(cfg_path)):
        log.warning("%s", warning)
    model.quantized_dtype = quantized_dtype
    model.pre_compile = bool(pre_compile)
    log.info("hybrid_quantization_step2: %d layer(s) in float: %s", len(stay_float), ", ".join(stay_float) or "none")
    return model, float_graph
