"""One user's session: the RKNN object the page drives, the steps done so far (the equivalent
script is written from them), the builds made, and the latest perf and error results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from rknn.api import RKNN
from rknn_core.plugins import default_registry
from rknn_gui import hybrid, methods, present
from rknn_gui.errors import GuiError
from rknn_gui.graph_view import error_overlay, graph_json, perf_overlay
from rknn_gui.inputs import data_type, read_input
from rknn_gui.jobs import Job, Jobs
from rknn_gui.workspace import Workspace

BUILDS = ("build", "hybrid_quantization_step2", "load_rknn")
EDIT_CFG = "keep_float"  # a step of the history that is no RKNN method: the cfg the GUI wrote


@attrs.define
class Call:
    """A step that succeeded: the method and its keyword arguments as the script writes them."""

    method: str
    kwargs: dict
    input_specs: list = attrs.field(factory=list)  # (shape, layout) of the model inputs its files were read for


@attrs.define
class Build:
    """A model built (or loaded) in this session, with what was measured on it."""

    id: int
    method: str
    kwargs: dict
    quantized_dtype: str | None
    float_layers: list[str]
    perf: dict | None = None
    accuracy: list[dict] | None = None

    def label(self) -> str:
        kind = self.quantized_dtype or "float"
        extra = f", float: {', '.join(self.float_layers)}" if self.float_layers else ""
        return f"#{self.id} {self.method} ({kind}{extra})"


class Session:
    """The page's RKNN object and everything done with it."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.jobs = Jobs()
        self.registry = default_registry()
        self.rknn = RKNN()
        self.history: list[Call] = []
        self.builds: list[Build] = []
        self.float_layers: list[str] = []

    # the forms ----------------------------------------------------------------------------------
    def loaders(self) -> list[str]:
        return sorted({f.loader for f in self.registry.table("frontends").values() if hasattr(RKNN, f.loader)})

    def forms(self) -> dict[str, list[dict]]:
        from rknn_core.platforms import platform_families

        specs = {"config": methods.config_fields(sorted(self.registry.table("quantizers")),
                                                 sorted(platform_families(self.registry)))}
        for name in (*self.loaders(), *methods.STEPS[1:]):
            specs[name] = methods.method_fields(name)
        return specs

    # running steps --------------------------------------------------------------------------------
    def start(self, method: str, values: dict) -> Job:
        forms = self.forms()
        if method not in forms:
            raise GuiError(f"'{method}' is not a step of the page (steps: {', '.join(forms)})")
        kwargs = methods.to_kwargs(method, forms[method], values, self.workspace)
        if method == "hybrid_quantization_step2":
            self.float_layers = []  # a cfg of the user's own: its float layers are not the page's clicks
        return self.jobs.start(method, lambda job: self.call(job, method, kwargs))

    def call(self, job: Job, method: str, kwargs: dict) -> Any:
        """Run one RKNN method with workspace paths made absolute; record it when it succeeded."""
        if method == "hybrid_quantization_step1" and Path.cwd().resolve() != self.workspace.root:
            raise GuiError("hybrid_quantization_step1 writes its files into the working directory: start rknn gui "
                           "inside the workspace")
        args = self._absolute(method, kwargs)
        ret = getattr(self.rknn, method)(**args)
        if job.errors() or ret is None and method != "config" or isinstance(ret, int) and ret != 0:
            return {"ok": False}
        specs = self.input_specs() if method in methods.INPUT_FILES and "inputs" in kwargs else []
        self.history.append(Call(method, kwargs, specs))
        return {"ok": True, **self._after(method, kwargs, ret)}

    def _absolute(self, method: str, kwargs: dict) -> dict:
        args = dict(kwargs, is_print=False) if method in ("eval_perf", "eval_memory") else dict(kwargs)
        for name, value in kwargs.items():
            if name in methods.READ_PATHS or name in methods.WRITE_PATHS or (method, name) == ("accuracy_analysis", "inputs"):
                args[name] = str(self.workspace.resolve(value))
        if method in methods.INPUT_FILES and "inputs" in kwargs:
            specs = self.input_specs()
            arrays = [read_input(self.workspace.resolve(name), *specs[min(i, len(specs) - 1)])
                      for i, name in enumerate(kwargs["inputs"])] if specs else []
            args["inputs"] = arrays
            if method == "inference":
                args.setdefault("data_type", data_type(arrays))
        return args

    def input_specs(self) -> list[tuple[tuple, str | None]]:
        """(shape, layout) of each input of the built model."""
        model = self.rknn._tk.model if self.rknn._tk else None
        if model is None:
            raise GuiError("this step needs a built model: build it or load an .rknn file first")
        graph = model.graph
        return [(tuple(graph.tensor(n).shape or ()), graph.tensor(n).layout) for n in graph.inputs]

    def _after(self, method: str, kwargs: dict, ret: Any) -> dict:
        """The step's result for the page; builds and measurements are kept for the comparison."""
        if method in BUILDS:
            model = self.rknn._tk.model
            floats = self.float_layers if method == "hybrid_quantization_step2" else []
            self.builds.append(Build(len(self.builds) + 1, method, kwargs, model.quantized_dtype, list(floats)))
            return {"build": self.builds[-1].label()}
        if method == "inference":
            names = self.rknn._tk.model.graph.outputs
            return {"outputs": [present.output(i, names[i] if i < len(names) else str(i), out) for i, out in enumerate(ret)]}
        if method == "eval_perf":
            perf = present.perf(ret)
            if self.builds:
                self.builds[-1].perf = perf
            return {"perf": perf}
        if method == "accuracy_analysis":
            rows = present.accuracy(self.workspace.resolve(kwargs.get("output_dir", "./snapshot")))
            if self.builds:
                self.builds[-1].accuracy = rows
            return {"accuracy": rows}
        if isinstance(ret, dict):
            return {"value": present.jsonable(ret)}
        return {}

    # keeping layers in float ----------------------------------------------------------------------
    def start_keep_float(self, layers: Any, dataset: Any) -> Job:
        """Hybrid quantization without editing YAML: step 1, the cfg with ``layers`` in float, step 2."""
        if not isinstance(layers, list) or not all(isinstance(layer, str) and layer for layer in layers):
            raise GuiError("keep_float: 'layers' must be a list of layer names")
        if not isinstance(dataset, str) or not dataset.strip():
            raise GuiError("keep_float: a calibration 'dataset' file is needed")
        dataset = self.workspace.relative(dataset, must_exist=True)
        return self.jobs.start("keep float and rebuild", lambda job: self.keep_float(job, layers, dataset))

    def keep_float(self, job: Job, layers: list[str], dataset: str) -> Any:
        tk = self.rknn._tk
        if tk is None or tk.graph is None:
            raise GuiError("keep float needs the source model: load it (load_onnx ...) first")
        if not self.call(job, "hybrid_quantization_step1", {"dataset": dataset})["ok"]:
            return {"ok": False}
        stem = tk.source_stem or "model"
        source, target = f"{stem}.quantization.cfg", f"{stem}.gui.quantization.cfg"
        hybrid.keep_float(self.workspace.resolve(source), self.workspace.resolve(target), layers)
        self.history.append(Call(EDIT_CFG, {"source": source, "target": target, "layers": list(layers)}))
        job.add_line(f"I keep float: wrote '{target}' with {', '.join(layers) or 'no layer'} in float")
        self.float_layers = list(layers)
        return self.call(job, "hybrid_quantization_step2", {
            "model_input": f"{stem}.json", "data_input": f"{stem}.data", "model_quantization_cfg": target,
            "dataset": dataset})

    # views ------------------------------------------------------------------------------------------
    def graph(self) -> dict | None:
        tk = self.rknn._tk
        if tk is None:
            return None
        if tk.model is not None:
            result = graph_json(tk.model.graph, tk.registry, list(tk.model.target_platform), True)
        elif tk.graph is not None:
            result = graph_json(tk.graph, tk.registry, list(tk.cfg.target_platform), False)
        else:
            return None
        current = self.builds[-1] if self.builds and tk.model is not None else None
        result["overlays"] = {"time": perf_overlay(current.perf if current else None),
                              "error": error_overlay(current.accuracy if current else None)}
        return result

    def compare(self, first: int, second: int) -> dict:
        """Two builds side by side: per layer name, modelled time and error of each."""
        builds = {b.id: b for b in self.builds}
        if first not in builds or second not in builds:
            raise GuiError(f"builds {first} and {second} are not both in this session (it has {sorted(builds) or 'none'})")
        a, b = builds[first], builds[second]
        names: list[str] = []
        for build in (a, b):
            for row in (build.perf or {}).get("layers", []) + (build.accuracy or []):
                name = row.get("name") or row.get("layer")
                if name not in names:
                    names.append(name)

        def by_name(build: Build) -> tuple[dict, dict]:
            times = {row["name"]: row["time"] for row in (build.perf or {}).get("layers", [])}
            errors = {row["layer"]: row["cosine_distance"] for row in build.accuracy or []}
            return times, errors

        (ta, ea), (tb, eb) = by_name(a), by_name(b)
        rows = [{"layer": n, "time_a": ta.get(n), "time_b": tb.get(n), "cosine_a": ea.get(n), "cosine_b": eb.get(n)}
                for n in names]
        total = {"time_a": (a.perf or {}).get("total_time"), "time_b": (b.perf or {}).get("total_time")}
        return {"a": a.label(), "b": b.label(), "rows": rows, "total": total}

    def release(self) -> None:
        running = self.jobs.running()
        if running is not None:
            running.cancel()
            running.finished.wait(30)
        self.rknn.release()
