"""``accuracy_analysis``: where a quantized model loses accuracy, layer by layer.

One input sample (a dataset file with exactly one line) runs through

- the float graph the quantization started from (``fp32``),
- the quantized graph with the chip's integer arithmetic (``qnt``, errors *accumulated* from the
  input to the layer), and
- every quantized node alone, fed the float reference's values of its inputs, quantized with those
  input tensors' parameters (``individual_qnt``, the error the layer *itself* adds: isolated).

Every float tensor a node produces (and each graph input) is compared: Euclidean distance
``||a - b||_2`` and cosine distance ``1 - a.b / (|a| |b|)`` of the real values. Writing the snapshot
folder is in :mod:`rknn_core.quant.snapshot`.
"""

from __future__ import annotations

import attrs
import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import Graph, QuantParams
from rknn_core.model import RknnModel
from rknn_core.plugins import Registry
from rknn_core.quant.build import input_channels, quantized_tensor
from rknn_core.quant.dataset import load_sample, read_dataset
from rknn_core.quant.params import dequantize, quantize
from rknn_core.runtime.executor import Executor
from rknn_core.runtime.inputs import prepare_inputs
from rknn_core.runtime.qexecutor import QuantExecutor

INPUT_ID = -1  # layer id of graph inputs (nodes are numbered 0.. in graph order, as eval_perf lists them)


@attrs.frozen
class TensorRecord:
    """One compared tensor: where it comes from and its values in each run (float32, same shape)."""

    layer_id: int
    layer: str  # producing node's name, or the input's name
    op: str  # producing node's op, or "Input"
    tensor: str
    fp32: np.ndarray
    qnt: np.ndarray
    individual: np.ndarray | None  # isolated run of the producing node (None when not computed)
    quant: QuantParams | None  # the tensor's parameters in the quantized graph
    quantized: bool  # False: a float layer's output (hybrid float32, or an op with no quantized form)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.fp32.shape)


@attrs.frozen
class LayerError:
    """One row of the error table (``nan`` in the isolated columns when they were not computed)."""

    layer_id: int
    layer: str
    op: str
    tensor: str
    shape: tuple[int, ...]
    euclidean: float
    cosine: float
    euclidean_isolated: float
    cosine_isolated: float
    quantized: bool = True  # False: the tensor is a float layer's real output (hybrid or no quantized form)


def euclidean_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b||_2`` in float64."""
    d = np.asarray(a, np.float64).ravel() - np.asarray(b, np.float64).ravel()
    return float(np.sqrt(np.dot(d, d)))


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``1 - cos(a, b)`` in float64: 0 for equal directions (and for two zero tensors), 1 when
    exactly one of them is zero, up to 2 for opposite directions."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    na, nb = float(np.sqrt(np.dot(a, a))), float(np.sqrt(np.dot(b, b)))
    if na == 0 or nb == 0:
        return 0.0 if na == nb else 1.0
    return float(1.0 - np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))


def check_analysable(float_graph: Graph | None, model: RknnModel | None) -> None:
    """The vendor's rule: only after build/hybrid_quantization_step2 with quantization of a float model."""
    if model is None:
        raise RknnError("accuracy_analysis needs a quantized model: call build(do_quantization=True, dataset=...) "
                        "or hybrid_quantization_step2 first")
    if not model.quantized_dtype:
        _refuse_quantized_source(model.graph)
        raise RknnError("accuracy_analysis compares float and quantized layers, but the model was built without "
                        "quantization; build with do_quantization=True and a dataset")
    if float_graph is None:
        raise RknnError("accuracy_analysis needs the float source model, which a model loaded with load_rknn does "
                        "not have: load the source model and build it (or run hybrid_quantization_step2)")
    _refuse_quantized_source(float_graph)


def _refuse_quantized_source(graph: Graph) -> None:
    quantized = quantized_tensor(graph)
    if quantized:
        raise RknnError(f"accuracy_analysis needs a float source model, but this one is already quantized "
                        f"(tensor '{quantized}' has quantization parameters)")


def read_feeds(model: RknnModel, path: str) -> dict[str, np.ndarray]:
    """The executor feeds of the single sample line of ``path`` (dataset format, exactly one line)."""
    if path is None:
        raise RknnError("accuracy_analysis needs inputs: a dataset-format text file with exactly one line")
    try:
        dataset = read_dataset(path, len(model.graph.inputs))
    except RknnError as exc:
        raise RknnError(f"accuracy_analysis inputs: {exc}") from None
    if len(dataset.lines) != 1:
        numbers = ", ".join(str(n) for n, _ in dataset.lines[:10])
        raise RknnError(f"accuracy_analysis inputs '{path}' must have exactly one sample line, it has "
                        f"{len(dataset.lines)} (lines {numbers}); keep the one sample to analyse")
    number, paths = dataset.lines[0]
    arrays = load_sample(paths, number, dataset.path, input_channels(model))
    data_type = "uint8" if all(a.dtype == np.uint8 for a in arrays) else "float32"
    single = attrs.evolve(model, rknn_batch_size=1)  # one sample, whatever the model's batch
    try:
        return prepare_inputs(single, arrays, data_type=data_type, data_format="nhwc")
    except RknnError as exc:
        raise RknnError(f"accuracy_analysis inputs '{path}' line {number}: {exc}") from None


def _float_outputs(graph: Graph) -> list[tuple[int, str]]:
    """(node index, tensor) of every float node output, in graph order."""
    return [(i, out) for i, node in enumerate(graph.nodes) for out in node.outputs
            if out and out in graph.tensors and np.dtype(graph.tensors[out].dtype).kind == "f"]


def _real(value: np.ndarray) -> np.ndarray:
    return np.asarray(value, dtype=np.float32)


def _isolated(qexec: QuantExecutor, i: int, reference: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Node ``i`` of the quantized graph run alone on the float reference's input values; its
    outputs as real values. (``compute`` quantizes real inputs with the input tensors' parameters.)"""
    node = qexec.graph.nodes[i]
    args = []
    for name in node.inputs:
        value = None if not name else reference.get(name, qexec.graph.tensors[name].data)
        if name and value is None:
            raise RknnError(f"accuracy_analysis: the float run has no value of '{name}', input of node '{node.name}'")
        args.append(value)
    try:
        outs = qexec.compute(i, node, args)
    except Exception as exc:  # a kernel's failure names the layer, as the executor does
        raise RknnError(f"accuracy_analysis: node '{node.name}' ({node.op}) failed on its own: "
                        f"{type(exc).__name__}: {exc}") from None
    return {name: qexec.real(name, value) for name, value in zip(node.outputs, outs) if name}


def collect(float_graph: Graph, qgraph: Graph, registry: Registry, feeds: dict[str, np.ndarray],
            isolated: bool = True) -> list[TensorRecord]:
    """Run the float and the quantized graph (and, with ``isolated``, each node alone) on ``feeds``;
    one record per graph input and per float node output that both runs computed."""
    if [n.name for n in float_graph.nodes] != [n.name for n in qgraph.nodes]:
        raise RknnError("accuracy_analysis: the float and the quantized graph have different layers")
    # every value an isolated run may read
    names = list(qgraph.inputs) + [out for node in qgraph.nodes for out in node.outputs if out]
    reference = Executor(float_graph, registry).run(feeds, keep=names)
    qexec = QuantExecutor(qgraph, registry)
    quantized = qexec.run(feeds, keep=names)
    records = []
    for name in qgraph.inputs:
        if name not in feeds or np.dtype(qgraph.tensors[name].dtype).kind != "f":
            continue
        q = qgraph.tensors[name].quant
        read_quantized = q is not None and any(qexec.quantized[i] for i, node in enumerate(qgraph.nodes)
                                               if name in node.inputs)
        value = _real(feeds[name])
        seen = dequantize(quantize(value, q), q) if read_quantized else value  # what the first layers read
        records.append(TensorRecord(INPUT_ID, name, "Input", name, value, seen, seen if isolated else None, q,
                                    read_quantized))
    alone: dict[int, dict[str, np.ndarray]] = {}
    for i, name in _float_outputs(qgraph):
        if name not in reference or name not in quantized:
            continue  # not needed for any graph output: neither run computed it
        node = qgraph.nodes[i]
        if isolated and i not in alone:
            alone[i] = _isolated(qexec, i, reference)
        records.append(TensorRecord(i, node.name, node.op, name, _real(reference[name]), _real(quantized[name]),
                                    _real(alone[i][name]) if isolated else None, qgraph.tensors[name].quant,
                                    qexec.quantized[i]))
    return records


def layer_errors(records: list[TensorRecord]) -> list[LayerError]:
    """The error table: per record, accumulated (``qnt`` vs ``fp32``) and isolated distances."""
    rows = []
    for r in records:
        iso = r.individual
        rows.append(LayerError(r.layer_id, r.layer, r.op, r.tensor, r.shape,
                               euclidean_distance(r.fp32, r.qnt), cosine_distance(r.fp32, r.qnt),
                               euclidean_distance(r.fp32, iso) if iso is not None else float("nan"),
                               cosine_distance(r.fp32, iso) if iso is not None else float("nan"),
                               r.quantized))
    return rows


def format_table(rows: list[LayerError], width: int = 28) -> str:
    """The error table as printed to stdout."""

    def cut(text: str) -> str:
        return text if len(text) <= width else text[:width - 3] + "..."

    head = (f"{'id':>4}  {'layer':<{width}}  {'op':<18}  {'euclidean':>11}  {'cos dist':>11}  "
            f"{'euclid(iso)':>11}  {'cos(iso)':>11}")
    lines = ["accuracy analysis: distance of the quantized model's layers to float "
             "(accumulated; iso = the layer alone on float inputs)", head, "-" * len(head)]
    for r in rows:
        ident = "in" if r.layer_id == INPUT_ID else str(r.layer_id)
        op = r.op[:17] if r.quantized else f"{r.op[:17]}*"
        lines.append(f"{ident:>4}  {cut(r.layer if r.tensor == r.layer else f'{r.layer}:{r.tensor}'):<{width}}  "
                     f"{op:<18}  {r.euclidean:>11.4e}  {r.cosine:>11.4e}  "
                     f"{r.euclidean_isolated:>11.4e}  {r.cosine_isolated:>11.4e}")
    if not all(r.quantized for r in rows):
        lines.append("* a float layer (hybrid float32, or an op with no quantized form): its output is not quantized")
    return "\n".join(lines)
