"""Build small ONNX models and compare our simulator with onnxruntime on them (the plugin author kit,
``rknn_core.testing``, plus the float vendor flow as these tests call it)."""

from __future__ import annotations

import os

import numpy as np

from rknn_core.testing import assert_close, check_against_ort, make_model, run_ort, save_model, single_op, vendor_flow

__all__ = ["assert_close", "check_against_ort", "make_model", "run_ort", "run_rknn", "save_model", "single_op"]


def run_rknn(path: str, inputs: dict[str, np.ndarray], optimization_level: int = 3,
             via_file: bool = False) -> list[np.ndarray]:
    """The float vendor flow on the simulator (through a .rknn file next to ``path`` with ``via_file``)."""
    return vendor_flow(path, inputs, config={"optimization_level": optimization_level}, via_file=via_file,
                       tmp_dir=os.path.dirname(path))
