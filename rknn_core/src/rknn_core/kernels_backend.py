"""Which kernels run the simulator's hot loops: ``native`` is the compiled ``rknn_core._native``, or its
numpy twin ``rknn_core.native_numpy`` when the C extension was not built (or ``RKNN_NO_NATIVE=1``).

The fallback says once, the first time a kernel is used, that the toolkit runs slower.
"""

from __future__ import annotations

import importlib
import logging
import os
from types import ModuleType

FORCE_NUMPY = "RKNN_NO_NATIVE"
FUNCTIONS = ("conv_gemm", "qconv_gemm", "qconv_gemm_u8", "int8_gemm", "int8_pairs", "quantize", "pad_planes", "plane_sums",
             "center", "set_threads", "get_threads", "depthwise_conv2d", "requantize", "quantized_add",
             "quantized_mul", "qdepthwise_conv2d", "maxpool2d", "lookup8", "upsample8", "depth_to_space8",
             "byte_histograms", "lookup8_pairs", "softmax_lut", "planes8", "phase_planes", "pw_dw_conv")


class NumpyKernels:
    """The numpy kernels behind the compiled module's names, imported and announced on first use."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __getattr__(self, name: str):
        if name not in FUNCTIONS:
            raise AttributeError(name)
        kernels = importlib.import_module("rknn_core.native_numpy")
        logging.getLogger("rknn").warning(
            f"the compiled kernels (rknn_core._native) are not available ({self.reason}); running their numpy "
            "twins instead (same integer results, float results equal to rounding), so the simulator is much "
            "slower. Reinstall rknn-core where a C compiler is available to get them.")
        self.__dict__.update({f: getattr(kernels, f) for f in FUNCTIONS})
        return self.__dict__[name]


def load_kernels() -> ModuleType | NumpyKernels:
    """The compiled kernels, or the numpy ones when they are missing or ``RKNN_NO_NATIVE=1``."""
    if os.environ.get(FORCE_NUMPY, "") not in ("", "0"):
        return NumpyKernels(f"{FORCE_NUMPY} is set")
    try:
        return importlib.import_module("rknn_core._native")
    except ImportError as err:
        return NumpyKernels(f"import failed: {err}")


native = load_kernels()
