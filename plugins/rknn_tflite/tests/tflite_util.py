"""Run a .tflite file in ai-edge-litert (the reference) and through the rknn simulator."""

from __future__ import annotations

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from rknn.api import RKNN


def run_litert(path: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The TFLite builtin kernels without the XNNPACK delegate (XNNPACK's own results differ from them
    by up to 2e-4 relative on pose_landmark_full: float sums in another order)."""
    interpreter = Interpreter(model_path=path, num_threads=1,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    for detail, x in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()]


def run_rknn(path: str, inputs: list[np.ndarray], optimization_level: int = 3) -> list[np.ndarray]:
    """load_tflite -> build (float) -> simulator; inputs are the model's own NHWC arrays (batch included).
    Integer outputs come back as stored integers (``want_float=False``), as LiteRT gives them."""
    rknn = RKNN()
    rknn.config(optimization_level=optimization_level)
    assert rknn.load_tflite(path) == 0, "load_tflite failed"
    assert rknn.build(do_quantization=False) == 0, "build failed"
    assert rknn.init_runtime() == 0
    dtype = str(inputs[0].dtype)
    outs = rknn.inference([x[0] if x.ndim == 4 else x for x in inputs], data_type=dtype, data_format="nhwc",
                          want_float=False)
    rknn.release()
    assert outs is not None, "inference failed"
    return outs


def assert_close(ours: list[np.ndarray], ref: list[np.ndarray], rtol: float = 1e-4) -> None:
    """Within ``rtol`` relative to each output's magnitude (elementwise rtol too)."""
    assert len(ours) == len(ref)
    for i, (a, b) in enumerate(zip(ours, ref)):
        assert a.shape == b.shape, f"output {i}: shape {a.shape} != {b.shape}"
        scale = max(float(np.abs(b).max()), 1e-6)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale, err_msg=f"output {i}")
