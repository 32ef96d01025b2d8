"""The pipeline behind the RKNN facade: load -> build -> export / load_rknn -> runtime.

Every method raises :class:`RknnError` for user errors; the facade turns them into ``E`` lines.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import attrs
import numpy as np

from rknn_core import fileformat
from rknn_core.config import Config, make_config
from rknn_core.custom_ops import ops_from_file
from rknn_core.errors import RknnError
from rknn_core.ir import Graph
from rknn_core.model import RknnModel
from rknn_core.passes.manager import PassContext, run_passes
from rknn_core.plugins import Registry, default_registry
from rknn_core.preprocess import insert_preprocess
from rknn_core.quant.build import quantize_model
from rknn_core.runtime.inputs import prepare_inputs
from rknn_core.shape_inference import infer_shapes, op_for

log = logging.getLogger("rknn")
PLATFORMS = ("rk1808", "rk3399pro", "rv1109", "rv1126")


class Toolkit:
    """One user session: configuration, the loaded graph, the built model and the runtime."""

    def __init__(self, registry: Registry | None = None):
        self.registry = (registry or default_registry()).copy()
        self.cfg = Config()
        self.graph: Graph | None = None
        self.model: RknnModel | None = None
        self.runtime: Any = None

    def config(self, **kwargs: Any) -> None:
        self.cfg = make_config(self.cfg, **kwargs)

    def load(self, loader: str, **kwargs: Any) -> Graph:
        """Import a model with the frontend that serves ``loader`` (``load_onnx`` ...)."""
        frontend = self.registry.frontend_for(loader)
        graph = frontend.load(**kwargs)
        infer_shapes(graph, self.registry)
        self.graph, self.model, self.runtime = graph, None, None
        log.info("%s: %d nodes, inputs %s, outputs %s", loader, len(graph.nodes), graph.inputs, graph.outputs)
        return graph

    def build(self, do_quantization: bool = True, dataset: str | None = None, pre_compile: bool = False,
              rknn_batch_size: int = 1) -> RknnModel:
        if self.graph is None:
            raise RknnError("build needs a model: call one of the load_* methods first")
        if not isinstance(rknn_batch_size, int) or rknn_batch_size < 1:
            raise RknnError(f"build rknn_batch_size must be a positive integer, got {rknn_batch_size!r}")
        if pre_compile and len(self.graph.inputs) > 1:
            raise RknnError("build pre_compile=True is not allowed for models with several inputs")
        graph = self.graph.clone()
        preprocessed = insert_preprocess(graph, self.cfg.preprocess(len(graph.inputs)))
        infer_shapes(graph, self.registry)
        changed = run_passes(graph, PassContext(self.registry, self.cfg.optimization_level,
                                                {"protected": set(preprocessed.values())}))
        log.info("build: optimization level %d, passes applied: %s", self.cfg.optimization_level,
                 ", ".join(changed) or "none")
        model = RknnModel(graph, list(self.cfg.target_platform), bool(pre_compile), rknn_batch_size,
                          None, preprocessed, {"config": _config_record(self.cfg)})
        if do_quantization:
            quantize_model(model, self.registry, self.cfg, dataset)
        self.model, self.runtime = model, None
        return model

    def export_rknn(self, export_path: str) -> None:
        if self.model is None:
            raise RknnError("export_rknn needs a built model: call build() (or load_rknn()) first")
        fileformat.save(self.model, export_path)

    def load_rknn(self, path: str) -> RknnModel:
        model = fileformat.load(path)
        for node in model.graph.nodes:  # every op must be installed (a custom op's plugin, say)
            op_for(node, self.registry)
        self.model, self.graph, self.runtime = model, None, None
        return self.model

    def init_runtime(self, target: str | None = None, device_id: str | None = None, **options: Any) -> None:
        if self.model is None:
            raise RknnError("init_runtime needs a model: call build() or load_rknn() first")
        name = "simulator" if target is None else str(target).lower()
        if target is not None and name not in PLATFORMS:
            raise RknnError(f"init_runtime target '{target}' is unknown; use one of {', '.join(PLATFORMS)} or None")
        targets = self.registry.table("targets")
        record = targets.get(name) or next((t for t in targets.values() if name in t.platforms), None)
        if record is None:
            what = ("the PC simulator needs the rknn-targets plugin: pip install plugins/targets"
                    if target is None else
                    f"running on a connected {name} needs a device target and transport plugin; none is installed")
            raise RknnError(f"init_runtime: {what}")
        self.runtime = record.create_runtime(self.model, self.registry, device_id=device_id, **options)

    def _require_runtime(self, what: str) -> Any:
        if self.runtime is None:
            raise RknnError(f"{what} needs a runtime: call init_runtime() first")
        return self.runtime

    def inference(self, inputs: list, data_type: str = "uint8", data_format: str = "nhwc",
                  inputs_pass_through: list | None = None) -> list[np.ndarray]:
        runtime = self._require_runtime("inference")
        feeds = prepare_inputs(self.model, inputs, data_type, data_format, inputs_pass_through)
        return runtime.run(feeds)

    def eval_perf(self, inputs: list | None = None, data_type: str = "uint8", data_format: str = "nhwc") -> dict:
        runtime = self._require_runtime("eval_perf")
        feeds = None if inputs is None else prepare_inputs(self.model, inputs, data_type, data_format)
        return runtime.perf(feeds)

    def eval_memory(self) -> dict:
        return self._require_runtime("eval_memory").memory()

    def sdk_version(self) -> str:
        return self._require_runtime("get_sdk_version").sdk_version()

    def list_devices(self) -> tuple[list[str], list[str]]:
        """Device ids reachable through the adb and ntb transports (empty without those plugins)."""
        transports = self.registry.table("transports")
        found = {name: transports[name].list_devices() if name in transports else [] for name in ("adb", "ntb")}
        if not transports:
            log.warning("no device transport plugin is installed; only the simulator is available")
        return found["adb"], found["ntb"]

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
        self.graph = self.model = self.runtime = None


def _config_record(cfg: Config) -> dict:
    return attrs.asdict(cfg)
