"""The board vendor's runtime library (``librknn_runtime.so``) through its public C API, with ctypes.

The structures and constants follow the public ``rknn_api.h`` of the RK1808/RV1126 generation
(toolkit 1.x): ``rknn_init(ctx*, model, size, flag)``, ``rknn_query``, ``rknn_inputs_set``,
``rknn_run``, ``rknn_outputs_get``, ``rknn_outputs_release``, ``rknn_destroy``. With it the agent runs
models the vendor's toolkit built (their files are not ours to read; the library reads them).
"""

from __future__ import annotations

import ctypes

import numpy as np

from rknn_core.errors import RknnError

MAX_DIMS, MAX_NAME_LEN = 16, 256
QUERY_IN_OUT_NUM, QUERY_INPUT_ATTR, QUERY_OUTPUT_ATTR, QUERY_PERF_DETAIL, QUERY_PERF_RUN, QUERY_SDK_VERSION = range(6)
TENSOR_TYPES = {0: np.float32, 1: np.float16, 2: np.int8, 3: np.uint8, 4: np.int16}  # rknn_tensor_type
FORMAT_NCHW, FORMAT_NHWC = 0, 1
ERRORS = {-1: "RKNN_ERR_FAIL", -2: "RKNN_ERR_TIMEOUT", -3: "RKNN_ERR_DEVICE_UNAVAILABLE", -4: "RKNN_ERR_MALLOC_FAIL",
          -5: "RKNN_ERR_PARAM_INVALID", -6: "RKNN_ERR_MODEL_INVALID", -7: "RKNN_ERR_CTX_INVALID",
          -8: "RKNN_ERR_INPUT_INVALID", -9: "RKNN_ERR_OUTPUT_INVALID", -10: "RKNN_ERR_DEVICE_UNMATCH"}
Context = ctypes.c_uint64


class InputOutputNum(ctypes.Structure):
    _fields_ = [("n_input", ctypes.c_uint32), ("n_output", ctypes.c_uint32)]


class TensorAttr(ctypes.Structure):
    _fields_ = [("index", ctypes.c_uint32), ("n_dims", ctypes.c_uint32), ("dims", ctypes.c_uint32 * MAX_DIMS),
                ("name", ctypes.c_char * MAX_NAME_LEN), ("n_elems", ctypes.c_uint32), ("size", ctypes.c_uint32),
                ("fmt", ctypes.c_int), ("type", ctypes.c_int), ("qnt_type", ctypes.c_int), ("fl", ctypes.c_int8),
                ("zp", ctypes.c_uint32), ("scale", ctypes.c_float)]


class Input(ctypes.Structure):
    _fields_ = [("index", ctypes.c_uint32), ("buf", ctypes.c_void_p), ("size", ctypes.c_uint32),
                ("pass_through", ctypes.c_uint8), ("type", ctypes.c_int), ("fmt", ctypes.c_int)]


class Output(ctypes.Structure):
    _fields_ = [("want_float", ctypes.c_uint8), ("is_prealloc", ctypes.c_uint8), ("index", ctypes.c_uint32),
                ("buf", ctypes.c_void_p), ("size", ctypes.c_uint32)]


class SdkVersion(ctypes.Structure):
    _fields_ = [("api_version", ctypes.c_char * 256), ("drv_version", ctypes.c_char * 256)]


class PerfRun(ctypes.Structure):
    _fields_ = [("run_duration", ctypes.c_int64)]


def load_library(path: str) -> ctypes.CDLL:
    """The runtime library at ``path`` with the prototypes this module calls."""
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        raise RknnError(f"cannot load the vendor runtime library '{path}': {exc}") from None
    prototypes = {
        "rknn_init": [ctypes.POINTER(Context), ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32],
        "rknn_destroy": [Context],
        "rknn_query": [Context, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32],
        "rknn_inputs_set": [Context, ctypes.c_uint32, ctypes.POINTER(Input)],
        "rknn_run": [Context, ctypes.c_void_p],
        "rknn_outputs_get": [Context, ctypes.c_uint32, ctypes.POINTER(Output), ctypes.c_void_p],
        "rknn_outputs_release": [Context, ctypes.c_uint32, ctypes.POINTER(Output)],
    }
    for name, args in prototypes.items():
        try:
            function = getattr(lib, name)
        except AttributeError:
            raise RknnError(f"'{path}' is not an RKNN runtime library: it lacks {name}") from None
        function.argtypes, function.restype = args, ctypes.c_int
    return lib


class VendorModel:
    """One model in the vendor runtime: ``run`` takes the inputs in order and returns float32 outputs."""

    def __init__(self, lib: ctypes.CDLL, model: bytes):
        self.lib = lib
        self.context = Context(0)
        self._buffer = ctypes.create_string_buffer(model, len(model))
        self._check("rknn_init", lib.rknn_init(ctypes.byref(self.context), self._buffer, len(model), 0))
        counts = InputOutputNum()
        self._query(QUERY_IN_OUT_NUM, counts)
        self.inputs = [self._attr(QUERY_INPUT_ATTR, i) for i in range(counts.n_input)]
        self.outputs = [self._attr(QUERY_OUTPUT_ATTR, i) for i in range(counts.n_output)]

    def _check(self, call: str, code: int) -> None:
        if code != 0:
            raise RknnError(f"the vendor runtime's {call} failed: {ERRORS.get(code, code)}")

    def _query(self, command: int, info: ctypes.Structure) -> None:
        self._check("rknn_query", self.lib.rknn_query(self.context, command, ctypes.byref(info), ctypes.sizeof(info)))

    def _attr(self, command: int, index: int) -> TensorAttr:
        attr = TensorAttr(index=index)
        self._query(command, attr)
        return attr

    def shapes(self) -> dict[str, list[tuple[int, ...]]]:
        """The input and output shapes the library reports."""
        return {kind: [tuple(a.dims[:a.n_dims]) for a in attrs] for kind, attrs in
                (("inputs", self.inputs), ("outputs", self.outputs))}

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(self.inputs):
            raise RknnError(f"the model takes {len(self.inputs)} inputs, {len(inputs)} were given")
        types = {np.dtype(v): k for k, v in TENSOR_TYPES.items()}
        arrays = [np.ascontiguousarray(a) for a in inputs]
        for a in arrays:
            if a.dtype not in types:
                raise RknnError(f"the vendor runtime takes float32, float16, int8, uint8 or int16 inputs, not {a.dtype}")
        packed = (Input * len(arrays))(*[Input(i, a.ctypes.data, a.nbytes, 0, types[a.dtype], FORMAT_NHWC)
                                        for i, a in enumerate(arrays)])
        self._check("rknn_inputs_set", self.lib.rknn_inputs_set(self.context, len(arrays), packed))
        self._check("rknn_run", self.lib.rknn_run(self.context, None))
        outputs = (Output * len(self.outputs))(*[Output(1, 0, i, None, 0) for i in range(len(self.outputs))])
        self._check("rknn_outputs_get", self.lib.rknn_outputs_get(self.context, len(self.outputs), outputs, None))
        try:
            results = []
            for out, attr in zip(outputs, self.outputs):
                raw = ctypes.string_at(out.buf, out.size)
                results.append(np.frombuffer(raw, np.float32).reshape(tuple(attr.dims[:attr.n_dims])).copy())
        finally:
            self.lib.rknn_outputs_release(self.context, len(self.outputs), outputs)
        return results

    def run_time_us(self) -> int:
        """The last run's duration as the library measured it (``RKNN_QUERY_PERF_RUN``)."""
        perf = PerfRun()
        self._query(QUERY_PERF_RUN, perf)
        return int(perf.run_duration)

    def sdk_version(self) -> tuple[str, str]:
        """(API version, driver version) as the library reports them."""
        version = SdkVersion()
        self._query(QUERY_SDK_VERSION, version)
        return version.api_version.decode(errors="replace"), version.drv_version.decode(errors="replace")

    def close(self) -> None:
        if self.context.value:
            self.lib.rknn_destroy(self.context)
            self.context = Context(0)
