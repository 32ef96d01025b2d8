"""Typed records that plugins return from the ``rknn_*`` hooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs


@attrs.frozen
class Cost:
    """Work of one node: multiply-accumulates and bytes read plus written."""

    macs: int = 0
    bytes: int = 0


@attrs.frozen
class OpDef:
    """One operator: schema, shape inference, float kernel and cost live together.

    ``infer(inputs, attrs) -> list[TensorInfo]`` receives one ``TensorInfo`` (or ``None`` for an
    absent optional input) per input. ``kernel(inputs, attrs) -> list[ndarray]`` computes in numpy.
    ``cost(inputs, outputs, attrs) -> Cost`` estimates work; ``None`` counts one MAC per output
    element. ``shape_only`` marks ops whose result depends only on input shapes (``Shape``), so
    constant folding may run them without input data.

    Quantization: ``quant_kernel(inputs, in_q, out_q, attrs) -> list[ndarray]`` is the integer-exact
    form (storage integers in and out, ``in_q``/``out_q`` the tensors' QuantParams). With
    ``quant_same_scale`` the outputs share input 0's parameters and the float kernel runs on the
    storage integers unchanged (data movement, max pooling, ReLU). ``quant_bias_input`` is the index
    of an int32 bias input (scale = input scale x weight scale). ``quant_param_inputs`` are inputs
    read as real-valued parameters (Resize scales, Clip bounds, Pad value): constants there stay float.
    ``quant_weight_axes(attrs) -> {input index: output-channel axis}`` names the constant weights whose
    quantized kernel accepts per-channel parameters (for quantizers with per-channel weights).
    ``prepare(attrs, constants, computed) -> call | None`` (optional) prepares ``kernel`` the same way (below).
    ``quant_prepare(in_q, out_q, attrs, constants, computed) -> call | None`` (optional) prepares
    ``quant_kernel`` once for one node of a run plan: ``constants`` holds each constant input as the kernel
    gets it (None elsewhere), ``computed`` the positions of the inputs computed at run time, and
    ``call(inputs)`` (reading only those) gives ``quant_kernel``'s outputs; None leaves the node to
    ``quant_kernel``.
    ``prepare_chain(attrs, constants, computed, consumer) -> call | None`` (optional, float plans): this node
    and ``consumer`` (a ``ChainNode``: the one node that reads its output, which nothing else needs) as one
    prepared call that reads this node's inputs and gives ``consumer``'s outputs, the same values as the two
    kernels; None leaves them to run one after the other.
    """

    name: str
    infer: Callable[..., list]
    kernel: Callable[..., list]
    cost: Callable[..., Cost] | None = None
    min_inputs: int = 1
    max_inputs: int | None = None
    shape_only: bool = False
    quant_kernel: Callable[..., list] | None = None
    doc: str = ""
    quant_same_scale: bool = False
    quant_bias_input: int | None = None
    quant_param_inputs: tuple[int, ...] = ()
    quant_weight_axes: Callable[[dict], dict[int, int]] | None = None
    prepare: Callable[..., Callable | None] | None = None
    quant_prepare: Callable[..., Callable | None] | None = None
    prepare_chain: Callable[..., Callable | None] | None = None
    domain: str = ""

    @property
    def quantizable(self) -> bool:
        return self.quant_kernel is not None or self.quant_same_scale

    def weight_axes(self, attrs: dict) -> dict[int, int]:
        """``quant_weight_axes(attrs)``, or no per-channel weights when the op declares none."""
        return self.quant_weight_axes(attrs) if self.quant_weight_axes else {}

    @property
    def key(self) -> str:
        """The registry key: the op type, prefixed by its domain outside the default ONNX domain."""
        return op_key(self.name, self.domain)


@attrs.frozen
class ChainNode:
    """The consumer that ``OpDef.prepare_chain`` is offered: its op type, attributes, constant inputs (None
    where computed) and the positions of its computed inputs (only the producer's output: position 0)."""

    op: str
    attrs: dict
    constants: list
    computed: tuple[int, ...]


DEFAULT_DOMAINS = ("", "ai.onnx")


def op_key(op_type: str, domain: str = "") -> str:
    """``Conv`` for the default ONNX domain, ``com.example:Mish`` for another domain."""
    return op_type if domain in DEFAULT_DOMAINS else f"{domain}:{op_type}"


@attrs.frozen
class Frontend:
    """A model importer. ``load(**kwargs) -> Graph`` takes the ``load_*`` method's keywords; a ``load``
    that declares a ``registry`` parameter also receives the session's ``Registry`` (its ops and
    ``registry.converters(frontend)``)."""

    name: str
    loader: str
    load: Callable[..., Any]
    doc: str = ""


@attrs.frozen
class PassSpec:
    """A graph rewrite ``run(graph, ctx) -> bool`` (True when it changed the graph).

    It runs when ``optimization_level >= min_level``; passes that may change numerics run only at
    level 3. ``after`` names passes that must run before this one. A ``late`` pass runs at the end of
    ``build``, after quantization when there is one, on the float or the quantized graph (epilogue
    fusions that must copy the quantization parameters of the tensors they remove).
    """

    name: str
    run: Callable[..., bool]
    min_level: int = 1
    changes_numerics: bool = False
    after: tuple[str, ...] = ()
    doc: str = ""
    late: bool = False


@attrs.frozen
class Quantizer:
    """A quantization scheme, named as ``config(quantized_dtype=...)`` names it.

    ``quantize(lo, hi) -> QuantParams`` gives an activation's parameters for its calibrated range.
    ``quantize_weights(data, axis) -> QuantParams`` gives a constant weight's parameters; ``axis`` is
    its output-channel axis where the consuming op accepts per-channel weights (``None``: per tensor).
    Without it, weights take ``quantize(data.min(), data.max())``. ``qtype`` is the activations'
    storage type (``u8``, ``i8``, ``i16``).
    """

    name: str
    quantize: Callable[..., Any]
    qtype: str = "u8"
    quantize_weights: Callable[..., Any] | None = None
    doc: str = ""


@attrs.frozen
class Converter:
    """Imports one framework op: ``convert(ctx, op)`` in the frontend's own terms (see docs/plugins.md).

    Keyed by ``(frontend, op)``: ``("tflite", "CONV_2D")``, ``("tflite", "custom:Mish")``,
    ``("tensorflow", "Conv2D")``. The built-in converters of each frontend register the same way.
    """

    frontend: str
    op: str
    convert: Callable[..., Any]
    doc: str = ""
    name: str = attrs.field(init=False, default=attrs.Factory(lambda self: f"{self.frontend}:{self.op}",
                                                              takes_self=True))


@attrs.frozen
class Target:
    """A place to run a model: the simulator or a chip family.

    ``platforms`` are the ``target_platform`` / ``init_runtime(target=...)`` names it serves (the core
    keeps no list of chips); ``family`` groups compatible chips: one model serves one family.
    ``create_runtime(model, registry, device_id=..., **options)`` returns an object with
    ``run(feeds)``/``perf(feeds)``/``memory()``/``sdk_version()`` (and optionally ``close()``);
    ``None`` declares chips that models can be built for but that this target cannot run.
    ``chip`` is the chip's model (facts, supported ops, performance, memory, lowering; see
    docs/plugins.md): build warns of CPU fallbacks and pre-compiles with it, the simulator models
    eval_perf / eval_memory with it.
    """

    name: str
    family: str
    platforms: tuple[str, ...]
    create_runtime: Callable[..., Any] | None = None
    doc: str = ""
    chip: Any = None


@attrs.frozen
class Transport:
    """A way for the PC to reach a device (adb, ntb, tcp)."""

    name: str
    connect: Callable[..., Any]
    list_devices: Callable[[], list[str]]
    doc: str = ""
