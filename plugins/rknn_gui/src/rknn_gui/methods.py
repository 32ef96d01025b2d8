"""The steps of the page: one form per ``RKNN`` method, its fields taken from the method's own
signature. Form values (text) become the method's keyword arguments; file fields are checked
against the workspace."""

from __future__ import annotations

import inspect
import json
from typing import Any

from rknn.api import RKNN
from rknn_gui.errors import GuiError
from rknn_gui.workspace import Workspace

# methods the page offers, in the order of the toolkit's flow (loaders are added from the installed frontends)
STEPS = ("config", "build", "export_rknn", "load_rknn", "init_runtime", "inference", "eval_perf", "eval_memory",
         "hybrid_quantization_step1", "hybrid_quantization_step2", "accuracy_analysis", "list_support_target_platform")
LONG_STEPS = frozenset({"build", "hybrid_quantization_step1", "hybrid_quantization_step2", "accuracy_analysis",
                        "eval_perf", "inference"})
# arguments naming a file or folder of the workspace
READ_PATHS = frozenset({"model", "tf_pb", "blobs", "weight", "symbol", "params", "predef_file", "dataset", "path",
                        "model_input", "data_input", "model_quantization_cfg", "rknn_model", "input_model", "op_path"})
WRITE_PATHS = frozenset({"export_path", "output_dir", "output_model"})
SIZES = frozenset({"input_size_list"})
NAMES = frozenset({"inputs", "outputs"})  # of loaders; inference/eval_perf/accuracy_analysis have their own
INPUT_FILES = {"inference": "inputs", "eval_perf": "inputs"}  # images/.npy read into arrays
JSON_VALUES = frozenset({"mean_values", "std_values", "sync_uids", "inputs_pass_through"})
CHOICES = {"data_type": ("uint8", "float32", "float16", "int8", "int16"), "data_format": ("nhwc", "nchw"),
           "proto": ("caffe", "lstm_caffe")}
SKIPPED = {"inference": {"want_float"}, "eval_perf": {"is_print"}, "eval_memory": {"is_print"},
           "init_runtime": {"device_id", "perf_debug", "eval_mem", "async_mode"}, "load_rknn": {"load_model_in_npu"}}
# config() takes keywords only: the fields the page offers
CONFIG_FIELDS = ("channel_mean_value", "reorder_channel", "quantized_dtype", "quantized_algorithm",
                 "optimization_level", "target_platform", "batch_size", "epochs")


def field(name: str, kind: str, default: Any = None, choices: tuple = ()) -> dict:
    return {"name": name, "kind": kind, "default": default, "choices": list(choices)}


def _kind(method: str, name: str, default: Any) -> dict:
    if INPUT_FILES.get(method) == name:
        return field(name, "input_files")
    if method == "accuracy_analysis" and name == "inputs":
        return field(name, "path")
    if name in READ_PATHS:
        return field(name, "path", default)
    if name in WRITE_PATHS:
        return field(name, "new_path", default)
    if name in SIZES:
        return field(name, "sizes")
    if name in NAMES:
        return field(name, "names")
    if name in JSON_VALUES:
        return field(name, "json")
    if name in CHOICES:
        return field(name, "choice", default, CHOICES[name])
    if isinstance(default, bool):
        return field(name, "bool", default)
    if isinstance(default, int):
        return field(name, "int", default)
    return field(name, "text", default)


def method_fields(method: str) -> list[dict]:
    """The form fields of an ``RKNN`` method, from its signature."""
    skipped = SKIPPED.get(method, set())
    fields = []
    for name, param in inspect.signature(getattr(RKNN, method)).parameters.items():
        if name == "self" or name in skipped or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        spec = _kind(method, name, None if param.default is param.empty else param.default)
        spec["required"] = param.default is param.empty
        fields.append(spec)
    return fields


def config_fields(quantizers: list[str], platforms: list[str]) -> list[dict]:
    return [field("channel_mean_value", "text", "0 0 0 1"), field("reorder_channel", "text", "0 1 2"),
            field("quantized_dtype", "choice", "asymmetric_quantized-u8", tuple(quantizers)),
            field("quantized_algorithm", "choice", "normal", ("normal", "kl_divergence", "mmse")),
            field("optimization_level", "choice", 3, (3, 2, 1, 0)),
            field("target_platform", "choice", None, tuple(platforms)),
            field("batch_size", "int", 100), field("epochs", "int", -1)]


def to_kwargs(method: str, specs: list[dict], values: dict, workspace: Workspace) -> dict:
    """The keyword arguments of ``method`` from form values; file names become workspace-relative."""
    if not isinstance(values, dict):
        raise GuiError(f"{method}: the form values must be a JSON object")
    by_name = {spec["name"]: spec for spec in specs}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise GuiError(f"{method}: unknown field(s) {', '.join(unknown)}; the form has {', '.join(by_name)}")
    kwargs = {}
    for name, spec in by_name.items():
        raw = values.get(name)
        if raw is None or raw == "" or raw == []:
            if spec.get("required"):
                raise GuiError(f"{method}: '{name}' is needed")
            continue
        kwargs[name] = _convert(method, spec, raw, workspace)
    if method == "config" and "target_platform" in kwargs:
        kwargs["target_platform"] = [kwargs["target_platform"]]
    return kwargs


def _convert(method: str, spec: dict, raw: Any, workspace: Workspace) -> Any:
    name, kind = spec["name"], spec["kind"]
    where = f"{method}: '{name}'"
    if kind == "path":
        return workspace.relative(_text(where, raw), must_exist=True)
    if kind == "new_path":
        return workspace.relative(_text(where, raw))
    if kind == "input_files":
        items = raw if isinstance(raw, list) else _text(where, raw).split()
        return [workspace.relative(_text(where, item), must_exist=True) for item in items]
    if kind == "sizes":
        try:
            return [[int(v) for v in part.replace(",", " ").split()] for part in _text(where, raw).split("#")]
        except ValueError:
            raise GuiError(f"{where} must be integers, inputs separated by '#', e.g. '3,224,224'") from None
    if kind == "names":
        return _text(where, raw).replace(",", " ").split()
    if kind == "json":
        try:
            return json.loads(raw) if isinstance(raw, str) else raw
        except ValueError as exc:
            raise GuiError(f"{where} must be JSON, e.g. [[127.5, 127.5, 127.5]]: {exc}") from None
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in ("true", "false", "1", "0", "on", "off"):
            return str(raw).lower() in ("true", "1", "on")
        raise GuiError(f"{where} must be true or false, got {raw!r}")
    if kind == "int" or (kind == "choice" and isinstance(spec["default"], int)):
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise GuiError(f"{where} must be an integer, got {raw!r}") from None
    return _text(where, raw)


def _text(where: str, raw: Any) -> str:
    if not isinstance(raw, str):
        raise GuiError(f"{where} must be text, got {type(raw).__name__}")
    return raw.strip()
