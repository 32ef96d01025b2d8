"""``RKNN``: the vendor-compatible facade. It validates, delegates to the Toolkit, logs, returns 0/-1."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from rknn_core import log as rklog
from rknn_core import validate
from rknn_core.errors import RknnError
from rknn_core.platforms import list_platforms
from rknn_core.runtime.inputs import DATA_FORMATS, DATA_TYPES
from rknn_core.toolkit import Toolkit

log = logging.getLogger("rknn")


def _guarded(fail: Any = -1) -> Callable:
    """Run a method; a user error is logged as ``E ...`` and ``fail`` is returned (no traceback)."""

    def wrap(method: Callable) -> Callable:
        @functools.wraps(method)
        def inner(self: RKNN, *args: Any, **kwargs: Any) -> Any:
            if self._released and method.__name__ != "release":
                log.error("%s: this RKNN object was released; create a new one", method.__name__)
                return fail
            if self._tk is None and method.__name__ != "release":
                log.error("%s: the toolkit could not start: %s", method.__name__, self._init_error)
                return fail
            try:
                return method(self, *args, **kwargs)
            except RknnError as exc:
                log.error("%s", exc)
            except Exception as exc:  # an internal fault still must not crash the user's script
                log.error("%s failed unexpectedly: %s: %s", method.__name__, type(exc).__name__, exc)
                log.debug("traceback", exc_info=True)
            return fail

        return inner

    return wrap


def _log_to(verbose: Any, verbose_file: Any) -> None:
    """Set up the log as asked; bad arguments or an unwritable file leave the default log and raise."""
    try:
        rklog.configure(validate.flag("RKNN", "verbose", verbose),
                        validate.path("RKNN", "verbose_file", verbose_file, optional=True))
    except (RknnError, OSError) as exc:
        rklog.configure()
        if isinstance(exc, OSError):
            raise RknnError(f"RKNN: cannot write the log file '{verbose_file}': {exc.strerror or exc}") from None
        raise


class RKNN:
    """Load, build, export, run and analyse a model, exactly as the vendor's RKNN class does."""

    def __init__(self, verbose: bool = False, verbose_file: str | None = None):
        self._released = False
        self._init_error = ""
        self._tk: Toolkit | None = None
        try:
            _log_to(verbose, verbose_file)
            self._tk = Toolkit()
        except RknnError as exc:  # e.g. two plugins providing the same op: every call then says why
            log.error("%s", exc)
            self._init_error = str(exc)

    # configuration and import -------------------------------------------------------------
    @_guarded(fail=None)
    def config(self, **kwargs: Any) -> None:
        self._tk.config(**kwargs)  # checked there as a whole: a failed call also makes build refuse

    @_guarded()
    def load_onnx(self, model: str, inputs: list | None = None, input_size_list: list | None = None,
                  outputs: list | None = None) -> int:
        """``inputs``/``input_size_list``/``outputs`` (as in the vendor's later releases) are optional."""
        model = validate.path("load_onnx", "model", model)
        inputs = validate.names("load_onnx", "inputs", inputs, optional=True)
        input_size_list = validate.sizes("load_onnx", "input_size_list", input_size_list, optional=True)
        outputs = validate.names("load_onnx", "outputs", outputs, optional=True)
        self._tk.load("load_onnx", model=model, inputs=inputs, input_size_list=input_size_list, outputs=outputs)
        return 0

    @_guarded()
    def load_caffe(self, model: str, proto: str = "caffe", blobs: str | None = None) -> int:
        model = validate.path("load_caffe", "model", model)
        proto = validate.text_choice("load_caffe", "proto", proto, ("caffe", "lstm_caffe"))
        blobs = validate.path("load_caffe", "blobs", blobs, optional=True)
        self._tk.load("load_caffe", model=model, proto=proto, blobs=blobs)
        return 0

    @_guarded()
    def load_tensorflow(self, tf_pb: str, inputs: list, input_size_list: list, outputs: list,
                        predef_file: str | None = None, mean_values: Any = None, std_values: Any = None) -> int:
        tf_pb = validate.path("load_tensorflow", "tf_pb", tf_pb)
        inputs = validate.names("load_tensorflow", "inputs", inputs)
        input_size_list = validate.sizes("load_tensorflow", "input_size_list", input_size_list)
        outputs = validate.names("load_tensorflow", "outputs", outputs)
        predef_file = validate.path("load_tensorflow", "predef_file", predef_file, optional=True)
        mean_values = validate.finite_values("load_tensorflow", "mean_values", mean_values, optional=True)
        std_values = validate.finite_values("load_tensorflow", "std_values", std_values, optional=True)
        self._tk.load("load_tensorflow", tf_pb=tf_pb, inputs=inputs, input_size_list=input_size_list,
                      outputs=outputs, predef_file=predef_file, mean_values=mean_values, std_values=std_values)
        return 0

    @_guarded()
    def load_tflite(self, model: str) -> int:
        model = validate.path("load_tflite", "model", model)
        self._tk.load("load_tflite", model=model)
        return 0

    @_guarded()
    def load_darknet(self, model: str, weight: str) -> int:
        model, weight = validate.path("load_darknet", "model", model), validate.path("load_darknet", "weight", weight)
        self._tk.load("load_darknet", model=model, weight=weight)
        return 0

    @_guarded()
    def load_pytorch(self, model: str, input_size_list: list) -> int:
        model = validate.path("load_pytorch", "model", model)
        input_size_list = validate.sizes("load_pytorch", "input_size_list", input_size_list)
        self._tk.load("load_pytorch", model=model, input_size_list=input_size_list)
        return 0

    @_guarded()
    def load_mxnet(self, symbol: str, params: str, input_size_list: list) -> int:
        symbol, params = validate.path("load_mxnet", "symbol", symbol), validate.path("load_mxnet", "params", params)
        input_size_list = validate.sizes("load_mxnet", "input_size_list", input_size_list)
        self._tk.load("load_mxnet", symbol=symbol, params=params, input_size_list=input_size_list)
        return 0

    @_guarded()
    def register_op(self, op_path: str) -> int:
        op_path = validate.path("register_op", "op_path", op_path)
        self._tk.register_op(op_path)
        return 0

    # build and files -----------------------------------------------------------------------
    @_guarded()
    def build(self, do_quantization: bool = True, dataset: str | None = None, pre_compile: bool = False,
              rknn_batch_size: int = 1) -> int:
        do_quantization = validate.flag("build", "do_quantization", do_quantization)
        dataset = validate.path("build", "dataset", dataset, optional=True)
        pre_compile = validate.flag("build", "pre_compile", pre_compile)
        rknn_batch_size = validate.int_range("build", "rknn_batch_size", rknn_batch_size, 1, validate.MAX_BATCH)
        self._tk.build(do_quantization, dataset, pre_compile, rknn_batch_size)
        return 0

    @_guarded()
    def export_rknn(self, export_path: str) -> int:
        export_path = validate.path("export_rknn", "export_path", export_path)
        self._tk.export_rknn(export_path)
        return 0

    @_guarded()
    def load_rknn(self, path: str, load_model_in_npu: bool = False) -> int:
        path = validate.path("load_rknn", "path", path)
        load_model_in_npu = validate.flag("load_rknn", "load_model_in_npu", load_model_in_npu)
        self._tk.load_rknn(path, load_model_in_npu)
        return 0

    @_guarded()
    def export_rknn_sync_model(self, input_model: str, sync_uids: list, output_model: str | None = None) -> int:
        input_model = validate.path("export_rknn_sync_model", "input_model", input_model)
        sync_uids = validate.int_list("export_rknn_sync_model", "sync_uids", sync_uids)
        output_model = validate.path("export_rknn_sync_model", "output_model", output_model, optional=True)
        self._tk.export_sync_model(input_model, sync_uids, output_model)
        return 0

    # quantization and analysis ----------------------------------------------------------------
    @_guarded()
    def hybrid_quantization_step1(self, dataset: str | None = None) -> int:
        """Write {model}.json, {model}.data and {model}.quantization.cfg to the working directory."""
        dataset = validate.path("hybrid_quantization_step1", "dataset", dataset, optional=True)
        self._tk.hybrid_step1(dataset)
        return 0

    @_guarded()
    def hybrid_quantization_step2(self, model_input: str, data_input: str, model_quantization_cfg: str,
                                  dataset: str, pre_compile: bool = False) -> int:
        """Build the hybrid-quantized model from step 1's files and the edited cfg (then export/run it)."""
        step2 = "hybrid_quantization_step2"
        model_input, data_input = validate.path(step2, "model_input", model_input), validate.path(step2, "data_input", data_input)
        model_quantization_cfg = validate.path(step2, "model_quantization_cfg", model_quantization_cfg)
        dataset = validate.path(step2, "dataset", dataset, optional=True)
        pre_compile = validate.flag(step2, "pre_compile", pre_compile)
        self._tk.hybrid_step2(model_input, data_input, model_quantization_cfg, dataset, pre_compile)
        return 0

    @_guarded()
    def accuracy_analysis(self, inputs: str, output_dir: str = "./snapshot", calc_qnt_error: bool = True) -> int:
        """Dump every layer's fp32 and quantized tensors for the one sample of ``inputs`` into
        ``output_dir``; with ``calc_qnt_error`` print and write the per-layer error table."""
        from rknn_core.quant.analysis import format_table

        inputs = validate.path("accuracy_analysis", "inputs", inputs)
        output_dir = validate.path("accuracy_analysis", "output_dir", output_dir)
        calc_qnt_error = validate.flag("accuracy_analysis", "calc_qnt_error", calc_qnt_error)
        rows = self._tk.accuracy_analysis(inputs, output_dir, calc_qnt_error)
        if rows is not None:
            print(format_table(rows))
        return 0

    # runtime -----------------------------------------------------------------------------------
    @_guarded()
    def init_runtime(self, target: str | None = None, device_id: str | None = None, perf_debug: bool = False,
                     eval_mem: bool = False, async_mode: bool = False) -> int:
        target = validate.text("init_runtime", "target", target, optional=True)
        device_id = validate.text("init_runtime", "device_id", device_id, optional=True)
        perf_debug = validate.flag("init_runtime", "perf_debug", perf_debug)
        eval_mem = validate.flag("init_runtime", "eval_mem", eval_mem)
        async_mode = validate.flag("init_runtime", "async_mode", async_mode)
        self._tk.init_runtime(target, device_id, perf_debug=perf_debug, eval_mem=eval_mem, async_mode=async_mode)
        return 0

    @_guarded(fail=None)
    def inference(self, inputs: list, data_type: str = "uint8", data_format: str = "nhwc",
                  inputs_pass_through: list | None = None, want_float: bool = True) -> list:
        """Outputs as float32, quantized ones dequantized with their own parameters (as the vendor
        runtime); ``want_float=False`` (an extension, named as the C runtime's ``rknn_output.want_float``)
        returns quantized outputs as their stored integers."""
        inputs = validate.arrays("inference", "inputs", inputs)
        data_type = validate.text_choice("inference", "data_type", data_type, DATA_TYPES)
        data_format = validate.text_choice("inference", "data_format", data_format, DATA_FORMATS)
        inputs_pass_through = validate.pass_through(inputs_pass_through, len(inputs))
        want_float = validate.flag("inference", "want_float", want_float)
        return self._tk.inference(inputs, data_type, data_format, inputs_pass_through, want_float)

    @_guarded(fail=None)
    def eval_perf(self, inputs: list | None = None, is_print: bool = True) -> dict:
        from rknn_core.report import format_perf

        inputs = validate.arrays("eval_perf", "inputs", inputs, optional=True)
        is_print = validate.flag("eval_perf", "is_print", is_print)
        result = self._tk.eval_perf(inputs)
        if is_print:
            print(format_perf(result))
        return result

    @_guarded(fail=None)
    def eval_memory(self, is_print: bool = True) -> dict:
        from rknn_core.report import format_memory

        is_print = validate.flag("eval_memory", "is_print", is_print)
        result = self._tk.eval_memory()
        if is_print:
            print(format_memory(result))
        return result

    @_guarded()
    def get_sdk_version(self) -> str:
        """The device's API and driver versions (the guide's ``RKNN VERSION:`` block), also printed."""
        version = self._tk.sdk_version()
        print(version)
        return version

    @_guarded(fail=([], []))
    def list_devices(self) -> tuple[list, list]:
        """Prints every transport's device ids (as the guide, plus e.g. ``tcp``); returns (adb, ntb)."""
        found = self._tk.list_devices()
        print("*" * 25)
        for mode, ids in found.items():
            print(f"all device(s) with {mode} mode:")
            print(ids)
        print("*" * 25)
        return found["adb"], found["ntb"]

    @_guarded(fail=None)
    def list_support_target_platform(self, rknn_model: str | None = None) -> dict:
        rknn_model = validate.path("list_support_target_platform", "rknn_model", rknn_model, optional=True)
        result = list_platforms(self._tk.registry, rknn_model)
        if rknn_model is None:
            for key, values in result.items():
                print(f"{key}: {', '.join(values)}")
        else:  # the guide's two lines
            print(f"Target platforms filled in RKNN model: {[p.upper() for p in result['filled_target_platform']]}")
            print(f"Target platforms supported by this RKNN model: {[p.upper() for p in result['support_target_platform']]}")
        return result

    def release(self) -> None:
        """Free the model and runtime; later calls on this object fail cleanly."""
        if self.__dict__.get("_tk") is not None:
            self._tk.release()
        self._tk = None
        self._released = True
