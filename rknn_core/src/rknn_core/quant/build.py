"""``build(do_quantization=True)``: calibration samples -> tensor ranges -> quantized graph."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import numpy as np

from rknn_core.config import Config
from rknn_core.errors import RknnError
from rknn_core.model import RknnModel
from rknn_core.plugins import Registry
from rknn_core.quant.calibrate import RangeObserver, observe
from rknn_core.quant.dataset import Dataset, calibration_plan, iter_samples, read_dataset
from rknn_core.quant.quantize_graph import quantize_graph
from rknn_core.runtime.inputs import prepare_inputs

log = logging.getLogger("rknn")


def sample_feeds(model: RknnModel, dataset: Dataset, cfg: Config) -> Iterator[dict[str, np.ndarray]]:
    """Executor feeds for every calibration sample: HWC images/arrays as ``inference`` takes them."""
    from tqdm import tqdm

    total = sum(len(b) for b in calibration_plan(dataset, cfg.batch_size, cfg.epochs))
    progress = tqdm(total=total, desc="calibration", unit="sample", file=sys.stderr,
                    disable=not sys.stderr.isatty(), leave=False)
    try:
        for number, arrays in iter_samples(dataset, cfg.batch_size, cfg.epochs):
            data_type = "uint8" if all(a.dtype == np.uint8 for a in arrays) else "float32"
            try:
                yield prepare_inputs(model, arrays, data_type=data_type, data_format="nhwc")
            except RknnError as exc:
                raise RknnError(f"dataset '{dataset.path}' line {number}: {exc}") from None
            progress.update(1)
    finally:
        progress.close()


def quantize_model(model: RknnModel, registry: Registry, cfg: Config, dataset_path: str | None) -> None:
    """Calibrate ``model``'s float graph on the dataset and quantize it in place."""
    quantizer = registry.table("quantizers").get(cfg.quantized_dtype)
    if quantizer is None:
        raise RknnError(f"no quantizer for quantized_dtype '{cfg.quantized_dtype}' is installed")
    graph = model.graph
    dataset = read_dataset(dataset_path, len(graph.inputs))
    observer = RangeObserver()
    count = observe(graph, registry, sample_feeds(model, dataset, cfg), observer)
    log.info("calibration: %d samples from '%s'", count, dataset.path)
    float_nodes = quantize_graph(graph, registry, observer.ranges(), cfg.quantized_dtype)
    model.quantized_dtype = cfg.quantized_dtype
    if float_nodes:
        log.warning("%d node(s) run in float: %s", len(float_nodes), ", ".join(float_nodes[:10]))
