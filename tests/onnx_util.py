"""Build small ONNX models and compare our simulator with onnxruntime on them."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from rknn.api import RKNN

NP_TO_ONNX = {np.dtype(k): v for k, v in {
    "float32": onnx.TensorProto.FLOAT, "float64": onnx.TensorProto.DOUBLE, "int64": onnx.TensorProto.INT64,
    "int32": onnx.TensorProto.INT32, "bool": onnx.TensorProto.BOOL, "uint8": onnx.TensorProto.UINT8,
    "int8": onnx.TensorProto.INT8, "float16": onnx.TensorProto.FLOAT16}.items()}


def make_model(nodes: Sequence[onnx.NodeProto], inputs: dict[str, np.ndarray], outputs: Sequence[str],
               initializers: dict[str, np.ndarray] | None = None, opset: int = 17) -> onnx.ModelProto:
    """A model whose inputs take the shapes/dtypes of the example arrays; output shapes left to inference."""
    graph = helper.make_graph(
        list(nodes), "test",
        [helper.make_tensor_value_info(n, NP_TO_ONNX[a.dtype], a.shape) for n, a in inputs.items()],
        [onnx.ValueInfoProto(name=n) for n in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 8 if opset <= 17 else 9)
    inferred = {vi.name: vi for vi in onnx.shape_inference.infer_shapes(model).graph.value_info}
    for out in model.graph.output:  # output types as onnx infers them (float32 when it cannot)
        out.type.CopyFrom(inferred[out.name].type if out.name in inferred
                          else helper.make_tensor_type_proto(onnx.TensorProto.FLOAT, None))
    return model


def save_model(model: onnx.ModelProto, folder: str | None = None) -> str:
    folder = folder or tempfile.mkdtemp(prefix="rknn-test-")
    path = os.path.join(folder, "model.onnx")
    onnx.save(model, path)
    return path


def run_ort(path: str, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


def run_rknn(path: str, inputs: dict[str, np.ndarray], optimization_level: int = 3,
             via_file: bool = False) -> list[np.ndarray]:
    """The vendor flow on the simulator: config, load_onnx, build (float), init_runtime, inference."""
    rknn = RKNN()
    rknn.config(optimization_level=optimization_level)
    assert rknn.load_onnx(path) == 0, "load_onnx failed"
    assert rknn.build(do_quantization=False) == 0, "build failed"
    if via_file:
        rknn_path = os.path.splitext(path)[0] + ".rknn"
        assert rknn.export_rknn(rknn_path) == 0
        rknn.release()
        rknn = RKNN()
        assert rknn.load_rknn(rknn_path) == 0
    assert rknn.init_runtime() == 0
    outs = rknn.inference(list(inputs.values()), data_type="float32", data_format="nchw")
    rknn.release()
    assert outs is not None, "inference failed"
    return outs


def assert_close(ours: Sequence[np.ndarray], ref: Sequence[np.ndarray], rtol: float = 1e-4, atol: float = 1e-5) -> None:
    assert len(ours) == len(ref)
    for i, (a, b) in enumerate(zip(ours, ref)):
        b = np.asarray(b)
        assert a.shape == b.shape, f"output {i}: shape {a.shape} != {b.shape}"
        if b.dtype == bool or np.issubdtype(b.dtype, np.integer):
            np.testing.assert_array_equal(a, b, err_msg=f"output {i}")
        else:
            scale = max(float(np.abs(b).max(initial=0.0)), 1.0)
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * scale, err_msg=f"output {i}")


def check_against_ort(model: onnx.ModelProto, inputs: dict[str, np.ndarray], rtol: float = 1e-4,
                      atol: float = 1e-5, optimization_level: int = 3) -> list[np.ndarray]:
    """Save ``model``, run it in onnxruntime and in our simulator, assert the outputs agree."""
    with tempfile.TemporaryDirectory(prefix="rknn-test-") as folder:
        path = save_model(model, folder)
        ref = run_ort(path, inputs)
        ours = run_rknn(path, inputs, optimization_level)
    assert_close(ours, ref, rtol, atol)
    return ours


def single_op(op: str, inputs: dict[str, np.ndarray], initializers: dict[str, np.ndarray] | None = None,
              n_outputs: int = 1, opset: int = 17, input_names: Sequence[str] | None = None, **attrs) -> onnx.ModelProto:
    """A one-node model ``op(inputs + initializers)``; ``input_names`` orders them ('' for absent)."""
    names = list(input_names) if input_names is not None else list(inputs) + list(initializers or {})
    outputs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(op, names, outputs, **attrs)
    return make_model([node], inputs, outputs, initializers, opset)
