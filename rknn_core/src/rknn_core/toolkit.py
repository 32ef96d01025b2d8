"""The pipeline behind the RKNN facade: load -> build -> export / load_rknn -> runtime.

Every method raises :class:`RknnError` for user errors; the facade turns them into ``E`` lines.
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
from typing import Any

import attrs
import numpy as np

from rknn_core import fileformat, provenance, rknn_check, validate
from rknn_core.config import Config, make_config
from rknn_core.custom_ops import ops_from_file
from rknn_core.devices import reachable
from rknn_core.errors import RknnError
from rknn_core.ir import Graph
from rknn_core.model import RknnModel
from rknn_core.passes.manager import PassContext, run_passes
from rknn_core.platforms import check_platforms, chip_for, runtime_target
from rknn_core.plugins import Registry, default_registry
from rknn_core.preprocess import insert_preprocess
from rknn_core.quant import analysis, hybrid, snapshot
from rknn_core.quant.build import quantize_model, quantized_tensor
from rknn_core.quant.schemes import find_quantizer
from rknn_core.runtime.inputs import prepare_inputs
from rknn_core.runtime.outputs import finish_outputs
from rknn_core.shape_inference import infer_shapes

log = logging.getLogger("rknn")


class Toolkit:
    """One user session: configuration, the loaded graph, the built model and the runtime."""

    def __init__(self, registry: Registry | None = None):
        self.registry = (registry or default_registry()).copy()
        self.cfg = Config()
        self.graph: Graph | None = None
        self.model: RknnModel | None = None
        self.runtime: Any = None
        self.source_stem: str | None = None  # file stem of the loaded model (hybrid quantization file names)
        self.float_graph: Graph | None = None  # float graph behind the quantized model (build / hybrid step2)
        self.config_error: str | None = None  # why the latest config() call failed (build then refuses)

    def config(self, **kwargs: Any) -> None:
        """Apply ``config(**kwargs)`` as a whole or not at all; a failed call makes build refuse to run
        until a later config() call succeeds (a script ignoring the E line must not build without it)."""
        self.config_error = None
        try:
            validate.preprocessing(kwargs.get("channel_mean_value"), kwargs.get("reorder_channel"))
            cfg = make_config(self.cfg, **kwargs)
            if "target_platform" in kwargs:  # the default needs no target plugin until a model is built for it
                cfg.target_platform = check_platforms(cfg.target_platform, self.registry)
            try:
                find_quantizer(self.registry, cfg.quantized_dtype)
            except RknnError as exc:
                raise RknnError(f"config {exc}") from None
        except RknnError as exc:
            self.config_error = str(exc)
            raise
        self.cfg = cfg

    def _check_config(self, what: str) -> None:
        if self.config_error is not None:
            raise RknnError(f"{what} refuses to run: config failed: {self.config_error}. Fix that config() "
                            f"call (nothing of it was applied) and call it again")

    def load(self, loader: str, **kwargs: Any) -> Graph:
        """Import a model with the frontend that serves ``loader`` (``load_onnx`` ...)."""
        frontend = self.registry.frontend_for(loader)
        # a frontend that declares a ``registry`` parameter gets this session's (converters, register_op ops)
        session = {"registry": self.registry} if "registry" in inspect.signature(frontend.load).parameters else {}
        graph = frontend.load(**kwargs, **session)
        validate.tensor_sizes(graph, loader)  # declared sizes, then inferred ones
        infer_shapes(graph, self.registry)
        validate.tensor_sizes(graph, loader)
        self.graph, self.model, self.runtime, self.float_graph = graph, None, None, None
        self.source_stem = _source_stem(kwargs, graph.name)
        log.info("%s: %d nodes, inputs %s, outputs %s", loader, len(graph.nodes), graph.inputs, graph.outputs)
        return graph

    def build(self, do_quantization: bool = True, dataset: str | None = None, pre_compile: bool = False,
              rknn_batch_size: int = 1) -> RknnModel:
        self._check_config("build")
        if self.graph is None:
            raise RknnError("build needs a model: call one of the load_* methods first")
        if not isinstance(rknn_batch_size, int) or rknn_batch_size < 1:
            raise RknnError(f"build rknn_batch_size must be a positive integer, got {rknn_batch_size!r}")
        if pre_compile and len(self.graph.inputs) > 1:
            raise RknnError("build pre_compile=True is not allowed for models with several inputs")
        model = self._float_model(pre_compile, rknn_batch_size)
        quantized = quantized_tensor(self.graph)
        if do_quantization and quantized:
            log.warning("build: the model is already quantized (tensor '%s' has quantization parameters); its own "
                        "quantization is kept and the dataset is not used", quantized)
            do_quantization = False
        # accuracy_analysis's reference: the float graph exactly as quantized
        float_graph = quantize_model(model, self.registry, self.cfg, dataset) if do_quantization else None
        self._late_passes(model, float_graph)
        _lower_for_chip(model, self.registry)
        self.model, self.runtime, self.float_graph = model, None, float_graph
        return model

    def _float_model(self, pre_compile: bool = False, rknn_batch_size: int = 1) -> RknnModel:
        """The loaded graph with preprocessing inserted and the optimization passes applied."""
        graph = self.graph.clone()
        preprocessed = insert_preprocess(graph, self.cfg.preprocess(len(graph.inputs)))
        infer_shapes(graph, self.registry)
        changed = run_passes(graph, PassContext(self.registry, self.cfg.optimization_level,
                                                {"protected": set(preprocessed.values()),
                                                 "horizontal_merge": self.cfg.need_horizontal_merge}))
        log.info("build: optimization level %d, passes applied: %s", self.cfg.optimization_level,
                 ", ".join(changed) or "none")
        return RknnModel(graph, list(self.cfg.target_platform), bool(pre_compile), rknn_batch_size,
                         None, preprocessed, {"config": _config_record(self.cfg)})

    def _late_passes(self, model: RknnModel, float_graph: Graph | None) -> None:
        """The passes that run after quantization (epilogue fusions). They only regroup nodes over the same
        tensors, so accuracy_analysis's float reference takes the quantized graph's nodes (same layers)."""
        changed = run_passes(model.graph, PassContext(self.registry, self.cfg.optimization_level,
                                                      {"protected": set(model.preprocessed.values())}), late=True)
        log.info("build: late passes applied: %s", ", ".join(changed) or "none")
        if changed and float_graph is not None:
            float_graph.nodes = copy.deepcopy(model.graph.nodes)
            float_graph.remove_unused()

    def hybrid_step1(self, dataset: str | None) -> list[str]:
        """Write {model}.json, {model}.data and {model}.quantization.cfg to the working directory."""
        self._check_config("hybrid_quantization_step1")
        if self.graph is None:
            raise RknnError("hybrid_quantization_step1 needs a model: call one of the load_* methods first")
        return hybrid.step1(self._float_model(), self.registry, self.cfg, dataset, self.source_stem or "model")

    def hybrid_step2(self, model_input: str, data_input: str, model_quantization_cfg: str, dataset: str | None,
                     pre_compile: bool = False) -> RknnModel:
        """Build the hybrid-quantized model from step 1's files and the edited cfg."""
        self._check_config("hybrid_quantization_step2")
        model, float_graph = hybrid.step2(self.registry, self.cfg, model_input, data_input, model_quantization_cfg,
                                          dataset, pre_compile)
        self.model, self.float_graph, self.runtime = model, float_graph, None
        return model

    def accuracy_analysis(self, inputs: str, output_dir: str = "./snapshot",
                          calc_qnt_error: bool = True) -> list[analysis.LayerError] | None:
        """Dump every layer's fp32 and quantized tensors of the one sample in ``inputs`` into
        ``output_dir``; with ``calc_qnt_error`` also the per-layer error table (returned)."""
        analysis.check_analysable(self.float_graph, self.model)
        feeds = analysis.read_feeds(self.model, inputs)
        records = analysis.collect(self.float_graph, self.model.graph, self.registry, feeds, bool(calc_qnt_error))
        rows = analysis.layer_errors(records) if calc_qnt_error else None
        meta = {"model": self.model.graph.name, "quantized_dtype": self.model.quantized_dtype,
                "inputs": os.path.abspath(inputs)}
        snapshot.write_snapshot(output_dir, records, rows, meta)
        log.info("accuracy_analysis: %d tensors dumped into '%s'", len(records), output_dir)
        return rows

    def export_rknn(self, export_path: str) -> None:
        if self.model is None:
            raise RknnError("export_rknn needs a built model: call build() (or load_rknn()) first")
        self.model.provenance = provenance.collect(self.model, self.registry)
        fileformat.save(self.model, export_path)

    def load_rknn(self, path: str, load_model_in_npu: bool = False) -> RknnModel:
        if load_model_in_npu:
            raise RknnError(f"load_rknn(load_model_in_npu=True) loads '{path}' from the storage of a connected NPU "
                            f"device, so it needs a device (a device target and transport plugin; none is "
                            f"installed); give load_model_in_npu=False to load a .rknn file of this computer")
        model = fileformat.load(path)
        provenance.check_installed(model, self.registry, path, "load_rknn")
        try:  # every op installed, the graph well formed: an edited file fails here, not at inference
            rknn_check.check_model(model, self.registry)
        except RknnError as exc:
            raise RknnError(f"load_rknn: '{path}' describes an inconsistent model: {exc}") from None
        self.model, self.graph, self.runtime, self.float_graph = model, None, None, None
        return self.model

    def init_runtime(self, target: str | None = None, device_id: str | None = None, **options: Any) -> None:
        if self.model is None:
            raise RknnError("init_runtime needs a model: call build() or load_rknn() first")
        record = runtime_target(target, self.model.target_platform, self.registry)
        self.runtime = record.create_runtime(self.model, self.registry, device_id=device_id, **options)

    def _require_runtime(self, what: str) -> Any:
        if self.runtime is None:
            raise RknnError(f"{what} needs a runtime: call init_runtime() first")
        return self.runtime

    def inference(self, inputs: list, data_type: str = "uint8", data_format: str = "nhwc",
                  inputs_pass_through: list | None = None, want_float: bool = True) -> list[np.ndarray]:
        """Outputs as float32 (quantized ones dequantized with their own parameters); with
        ``want_float=False`` quantized outputs come back as their stored integers."""
        runtime = self._require_runtime("inference")
        feeds = prepare_inputs(self.model, inputs, data_type, data_format, inputs_pass_through)
        return finish_outputs(self.model.graph, runtime.run(feeds), want_float)

    def eval_perf(self, inputs: list | None = None, data_type: str = "uint8", data_format: str = "nhwc") -> dict:
        runtime = self._require_runtime("eval_perf")
        feeds = None if inputs is None else prepare_inputs(self.model, inputs, data_type, data_format)
        return runtime.perf(feeds)

    def eval_memory(self) -> dict:
        return self._require_runtime("eval_memory").memory()

    def sdk_version(self) -> str:
        return self._require_runtime("get_sdk_version").sdk_version()

    def list_devices(self) -> dict[str, list[str]]:
        """Device ids by transport (``adb`` and ``ntb`` always, then e.g. ``tcp``; empty without plugins)."""
        return reachable(self.registry)

    def register_op(self, op_path: str) -> None:
        for opdef in ops_from_file(op_path):
            self.registry.add("ops", opdef, f"register_op({op_path})")

    def export_sync_model(self, input_model: str, sync_uids: list, output_model: str | None = None) -> None:
        """Write ``input_model`` again with sync points after the given layer ids."""
        model = fileformat.load(input_model)
        count = len(model.graph.nodes)
        try:
            uids = sorted({int(u) for u in sync_uids})
        except (TypeError, ValueError):
            raise RknnError(f"export_rknn_sync_model: sync_uids must be layer ids (integers), got {sync_uids!r}") from None
        bad = [u for u in uids if not 0 <= u < count]
        if not uids or bad:
            raise RknnError(f"export_rknn_sync_model: layer ids {bad or uids} are not in the model "
                            f"(it has layers 0..{count - 1}, as eval_perf lists them)")
        model.extra["sync_uids"] = uids
        fileformat.save(model, output_model or os.path.splitext(input_model)[0] + "_sync.rknn")

    def release(self) -> None:
        if self.runtime is not None and hasattr(self.runtime, "close"):
            self.runtime.close()
        self.graph = self.model = self.runtime = self.float_graph = None


def _lower_for_chip(model: RknnModel, registry: Registry) -> None:
    """Warn of the layers the configured chip runs on its CPU; with pre_compile, store the chip's program."""
    chip = chip_for(model.target_platform, registry)
    if chip is None:
        if model.pre_compile:
            raise RknnError(f"build pre_compile=True needs a target plugin that models {model.target_platform[0]}; "
                            f"none of the installed ones does")
        return
    for layer, op, reason in chip.fallback_layers(model.graph):
        log.warning("build: layer '%s' (%s) falls back to the CPU on %s: %s", layer, op, chip.name, reason)
    if model.pre_compile:
        model.extra["program"] = chip.lower(model)


def _source_stem(load_kwargs: dict, fallback: str) -> str:
    """The file stem of the model a load_* read (``mobilenet_v2.onnx`` -> ``mobilenet_v2``)."""
    path = next((load_kwargs[k] for k in ("model", "tf_pb", "symbol") if isinstance(load_kwargs.get(k), (str, os.PathLike))), None)
    return os.path.splitext(os.path.basename(os.fspath(path)))[0] if path else fallback


def _config_record(cfg: Config) -> dict:
    return attrs.asdict(cfg)
