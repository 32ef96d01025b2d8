"""The plugin author kit: conformance helpers for testing an rknn plugin (see docs/plugins.md, Testing a plugin).

- float kernel vs onnxruntime: ``single_op``/``make_model``/``save_model`` build ONNX models,
  ``check_against_ort`` compares the simulator with onnxruntime, ``check_random_shapes`` does it on
  random shapes and values (``random_shape``, ``random_array``);
- quantized kernel within the documented bound: ``check_quant_kernel`` (1 output LSB by default);
- a registry for the plugin under test: ``registry_with``; the records a set of packages supplied:
  ``records_from`` (``source_packages(root)``: the packages whose source is in a repository);
- the vendor flow round trip: ``vendor_flow`` (``write_dataset`` for calibration samples);
- reference models generated once and cached: ``cached_folder``.

Importing it needs neither pytest, onnx nor onnxruntime; the helpers that use onnx/onnxruntime import
them when called.
"""

from rknn_core.testing.cache import cached_folder
from rknn_core.testing.flow import using_registry, vendor_flow, write_dataset
from rknn_core.testing.onnx_models import make_model, save_model, single_op
from rknn_core.testing.quant import check_quant_kernel
from rknn_core.testing.reference import (
    assert_close,
    check_against_ort,
    check_random_shapes,
    random_array,
    random_shape,
    run_ort,
)
from rknn_core.testing.registry import record_package, records_from, registry_with, source_packages

__all__ = [
    "assert_close", "cached_folder", "check_against_ort", "check_quant_kernel", "check_random_shapes", "make_model",
    "record_package", "random_array", "random_shape", "records_from", "registry_with", "run_ort", "save_model",
    "single_op", "source_packages", "using_registry", "vendor_flow", "write_dataset",
]
