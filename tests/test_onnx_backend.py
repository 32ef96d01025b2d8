"""onnx's own conformance suite (``onnx.backend.test``) run through the vendor flow on the simulator.

Every test of onnx 1.x's node, real-model, simple and PyTorch suites whose model uses only rknn-core's ops
runs and must pass; the rest are skipped with their reason (``rknn_onnx.conformance``): a commented
pattern list, or the op rknn-core lacks. The real-model tests use the light models onnx ships (no
download); their reference outputs are written under a temporary ``ONNX_HOME``.
"""

from __future__ import annotations

import unittest
import warnings

import onnx
import onnx.backend.test
import pytest

from rknn_onnx import conformance
from rknn_onnx.backend import RknnBackend, RknnBackendRep

CORE_OPS = conformance.core_ops()
HEAVY = ("test_densenet121_cpu", "test_inception_v2_cpu", "test_resnet50_cpu", "test_zfnet512_cpu")  # 2-6 s each


class ConformanceBackend(RknnBackend):
    """The backend, skipping a model that uses an op rknn-core lacks (other plugins' ops not counted)."""

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs) -> RknnBackendRep:
        outside = conformance.ops_outside(model, CORE_OPS)
        if outside:
            raise unittest.SkipTest(f"op outside rknn-core: {', '.join(outside)}")
        return super().prepare(model, device, **kwargs)


@pytest.fixture(autouse=True)
def _onnx_home(tmp_path_factory, monkeypatch):
    """The real-model tests write their reference data under ONNX_HOME: a temporary folder."""
    monkeypatch.setenv("ONNX_HOME", str(tmp_path_factory.getbasetemp() / "onnx_home"))


with warnings.catch_warnings():  # onnx's case generators warn about overflowing casts they make on purpose
    warnings.simplefilter("ignore", RuntimeWarning)
    _suite = onnx.backend.test.BackendTest(ConformanceBackend, __name__)
_cases = conformance.select(_suite.test_cases)
for _case in _cases.values():
    for _name in HEAVY:
        if hasattr(_case, _name):
            setattr(_case, _name, pytest.mark.heavy(getattr(_case, _name)))
globals().update(_cases)
