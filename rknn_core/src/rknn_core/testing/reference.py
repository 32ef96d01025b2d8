"""Float kernels against onnxruntime: run a model in both, compare, and draw random shapes and values.

``onnxruntime`` is imported inside the functions.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from rknn_core.testing.flow import vendor_flow
from rknn_core.testing.onnx_models import save_model, single_op


def run_ort(path: str, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The outputs of onnxruntime (CPU, one thread, no graph optimizations) on the model at ``path``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


def assert_close(ours: Sequence[np.ndarray], ref: Sequence[np.ndarray], rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Same count and shapes; integer/bool outputs equal; float outputs within ``rtol`` plus ``atol``
    times the reference's largest magnitude (at least 1)."""
    assert len(ours) == len(ref), f"{len(ours)} outputs, the reference has {len(ref)}"
    for i, (a, b) in enumerate(zip(ours, ref)):
        b = np.asarray(b)
        assert a.shape == b.shape, f"output {i}: shape {a.shape} != {b.shape}"
        if b.dtype == bool or np.issubdtype(b.dtype, np.integer):
            np.testing.assert_array_equal(a, b, err_msg=f"output {i}")
        else:
            scale = max(float(np.abs(b).max(initial=0.0)), 1.0)
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * scale, err_msg=f"output {i}")


def check_against_ort(model: Any, inputs: dict[str, np.ndarray], rtol: float = 1e-4, atol: float = 1e-5,
                      optimization_level: int = 3, registry: Any = None) -> list[np.ndarray]:
    """Save ``model``, run it in onnxruntime and through the float vendor flow, assert the outputs agree;
    returns ours."""
    with tempfile.TemporaryDirectory(prefix="rknn-test-") as folder:
        path = save_model(model, folder)
        ref = run_ort(path, inputs)
        ours = vendor_flow(path, inputs, config={"optimization_level": optimization_level}, via_file=False,
                           tmp_dir=folder, registry=registry)
    assert_close(ours, ref, rtol, atol)
    return ours


def random_shape(rng: np.random.Generator, min_rank: int = 1, max_rank: int = 4, max_dim: int = 6) -> tuple[int, ...]:
    """A shape of ``min_rank``..``max_rank`` axes, each 1..``max_dim`` long."""
    rank = int(rng.integers(min_rank, max_rank + 1))
    return tuple(int(d) for d in rng.integers(1, max_dim + 1, size=rank))


def random_array(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 3.0,
                 dtype: str = "float32") -> np.ndarray:
    """Normal values times ``scale`` (wide enough to reach an activation's saturated tails)."""
    return (rng.standard_normal(shape) * scale).astype(dtype)


def check_random_shapes(op: str, n_inputs: int = 1, trials: int = 5, seed: int = 0, opset: int = 17,
                        scale: float = 3.0, min_rank: int = 1, max_rank: int = 4, max_dim: int = 6,
                        rtol: float = 1e-4, atol: float = 1e-5, registry: Any = None,
                        **attrs: Any) -> list[tuple[int, ...]]:
    """``op`` as a one-node ONNX model on ``trials`` random shapes (all ``n_inputs`` inputs share the shape,
    as elementwise ops take them) and random values, each compared with onnxruntime; returns the shapes."""
    rng = np.random.default_rng(seed)
    shapes = []
    for _ in range(trials):
        shape = random_shape(rng, min_rank, max_rank, max_dim)
        inputs = {f"x{i}": random_array(rng, shape, scale) for i in range(n_inputs)}
        check_against_ort(single_op(op, inputs, opset=opset, **attrs), inputs, rtol, atol, registry=registry)
        shapes.append(shape)
    return shapes
