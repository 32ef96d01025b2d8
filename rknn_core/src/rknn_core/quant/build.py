"""``build(do_quantization=True)``: calibration samples -> tensor ranges -> quantized graph.

Steps: read and check the dataset (every line, shapes included, before any work); optional
cross-layer equalization of the float graph (``config(cross_layer_equalization=True)``); a min/max
pass over the calibration plan; for ``quantized_algorithm`` ``kl_divergence``/``mmse`` a histogram
pass and a range search per activation; quantization; optional empirical bias correction
(``config(bias_correction=True)``).
"""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Iterator

import numpy as np

from rknn_core.config import Config
from rknn_core.errors import RknnError
from rknn_core.ir import Graph
from rknn_core.model import RknnModel
from rknn_core.plugins import Registry
from rknn_core.quant.bias_correction import MAX_SAMPLES, correct_bias
from rknn_core.quant.calibrate import HistogramObserver, RangeObserver, observe
from rknn_core.quant.dataset import Dataset, calibration_plan, check_samples, iter_samples, read_dataset
from rknn_core.quant.equalize import SaturationObserver, equalize, relu6_outputs
from rknn_core.quant.quantize_graph import quantize_graph
from rknn_core.quant.schemes import find_quantizer
from rknn_core.runtime.inputs import prepare_inputs

log = logging.getLogger("rknn")


def input_channels(model: RknnModel) -> tuple[int | None, ...]:
    """Channels of each 4-D model input (by its layout), which decides how images are decoded."""
    result = []
    for name in model.graph.inputs:
        tensor = model.graph.tensor(name)
        shape = tuple(tensor.shape or ())
        result.append((shape[3] if tensor.layout == "NHWC" else shape[1]) if len(shape) == 4 else None)
    return tuple(result)


def _feed(model: RknnModel, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    """One dataset line as executor feeds: a single sample, also for a model built with rknn_batch_size > 1
    (the simulator runs the batch-1 graph on each sample of a batch)."""
    data_type = "uint8" if all(a.dtype == np.uint8 for a in arrays) else "float32"
    return prepare_inputs(model, arrays, data_type=data_type, data_format="nhwc", batch=1)


def sample_feeds(model: RknnModel, dataset: Dataset, cfg: Config, desc: str = "calibration") -> Iterator[dict[str, np.ndarray]]:
    """Executor feeds for every calibration sample: HWC images/arrays as ``inference`` takes them."""
    from tqdm import tqdm

    total = sum(len(b) for b in calibration_plan(dataset, cfg.batch_size, cfg.epochs))
    progress = tqdm(total=total, desc=desc, unit="sample", file=sys.stderr,
                    disable=not sys.stderr.isatty(), leave=False)
    try:
        for number, arrays in iter_samples(dataset, cfg.batch_size, cfg.epochs, input_channels(model)):
            try:
                yield _feed(model, arrays)
            except RknnError as exc:
                raise RknnError(f"dataset '{dataset.path}' line {number}: {exc}") from None
            progress.update(1)
    finally:
        progress.close()


def searched_tensors(graph: Graph) -> list[str]:
    """Tensors whose range KL/MMSE may clip: node outputs that are not graph outputs. Graph inputs
    keep min/max (image data is already 8-bit: min/max is exact), and so do graph outputs
    (clipping logits or scores would make the top classes tie)."""
    outputs = set(graph.outputs)
    return [o for node in graph.nodes for o in node.outputs if o and o not in outputs]


def calibrate(model: RknnModel, registry: Registry, cfg: Config, dataset: Dataset) -> dict[str, tuple[float, float]]:
    """Each activation's quantization range by ``cfg.quantized_algorithm``."""
    graph = model.graph
    observer = RangeObserver()
    count = observe(graph, registry, sample_feeds(model, dataset, cfg), observer)
    log.info("calibration: %d samples from '%s'", count, dataset.path)
    if cfg.quantized_algorithm == "normal":
        return observer.ranges()
    histograms = HistogramObserver(observer.ranges())
    observe(graph, registry, sample_feeds(model, dataset, cfg, "histograms"), histograms)
    quantizer = find_quantizer(registry, cfg.quantized_dtype)
    ranges = histograms.searched_ranges(cfg.quantized_algorithm, quantizer, searched_tensors(graph))
    clipped = sum(ranges[n] != histograms.ranges()[n] for n in ranges)
    log.info("calibration (%s): %d of %d tensor ranges clipped", cfg.quantized_algorithm, clipped, len(ranges))
    return ranges


def quantized_tensor(graph: Graph) -> str | None:
    """The first tensor that carries quantization parameters (the source model is already quantized),
    or None for a float model."""
    return next((t.name for t in graph.tensors.values() if t.quant is not None), None)


def quantize_model(model: RknnModel, registry: Registry, cfg: Config, dataset_path: str | None) -> Graph:
    """Calibrate ``model``'s float graph on the dataset and quantize it in place; returns the float
    graph exactly as quantized (after equalization), the reference of accuracy_analysis."""
    find_quantizer(registry, cfg.quantized_dtype)  # before any work: the scheme must be installed
    graph = model.graph
    dataset = read_dataset(dataset_path, len(graph.inputs))
    check_samples(dataset, lambda arrays: _feed(model, arrays), input_channels(model))
    if cfg.cross_layer_equalization:
        saturation = None
        clipped = relu6_outputs(graph)
        if clipped:
            observer = SaturationObserver(clipped)
            observe(graph, registry, sample_feeds(model, dataset, cfg, "relu6 check"), observer)
            saturation = observer.fractions()
        equalize(graph, saturation)
    ranges = calibrate(model, registry, cfg, dataset)
    float_graph = graph.clone()
    float_nodes = quantize_graph(graph, registry, ranges, cfg.quantized_dtype)
    model.quantized_dtype = cfg.quantized_dtype
    if float_nodes:
        log.warning("%d node(s) run in float: %s", len(float_nodes), ", ".join(float_nodes[:10]))
    if cfg.bias_correction:
        feeds = list(itertools.islice(sample_feeds(model, dataset, cfg, "bias correction"), MAX_SAMPLES))
        correct_bias(float_graph, graph, registry, feeds)
    return float_graph
