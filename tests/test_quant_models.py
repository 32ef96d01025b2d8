"""Whole quantized models: u8 / dfp8 / dfp16 builds run, dfp16 beats dfp8, every quantized node is
within a few LSB of a fake-quant float reference, and the zoo models leave no node in float."""

from __future__ import annotations

import os
import sys

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx_util import make_model

from rknn.api import RKNN
from rknn_core.plugins import default_registry
from rknn_core.quant.params import dequantize, quantize
from rknn_core.quant.quantize_graph import FLOAT_NODES
from rknn_core.runtime.qexecutor import QuantExecutor, is_stored_quantized

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import zoo  # noqa: E402

DTYPES = ["asymmetric_quantized-u8", "dynamic_fixed_point-8", "dynamic_fixed_point-16"]


def small_model(rng: np.random.Generator) -> onnx.ModelProto:
    """Conv/Relu, depthwise, Add, MaxPool, AveragePool, Concat, Resize, Pad, Transpose, ReduceMean,
    Gemm, Softmax: most integer kernels in one graph."""
    w = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "wd", "bd"], ["c2"], pads=[1, 1, 1, 1], group=8),
        helper.make_node("Clip", ["c2", "lo", "hi"], ["r2"]),
        helper.make_node("Add", ["r1", "r2"], ["a"]),
        helper.make_node("MaxPool", ["a"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("AveragePool", ["a"], ["ap"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Concat", ["mp", "ap"], ["cat"], axis=1),
        helper.make_node("Resize", ["cat", "", "scales"], ["up"], mode="linear"),
        helper.make_node("Pad", ["up", "pads"], ["pd"]),
        helper.make_node("Conv", ["pd", "w3", "b3"], ["c3"], strides=[2, 2]),
        helper.make_node("PRelu", ["c3", "slope"], ["pr"]),
        helper.make_node("Transpose", ["pr"], ["t"], perm=[0, 2, 3, 1]),
        helper.make_node("ReduceMean", ["t", "axes"], ["gap"], keepdims=0),
        helper.make_node("Gemm", ["gap", "wf", "bf"], ["fc"], transB=1),
        helper.make_node("Softmax", ["fc"], ["y"]),
    ]
    inits = {"w1": w(8, 3, 3, 3), "b1": w(8), "wd": w(8, 1, 3, 3), "bd": w(8), "lo": np.float32(0), "hi": np.float32(6),
             "scales": np.array([1, 1, 2, 2], np.float32), "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64),
             "w3": w(6, 16, 3, 3), "b3": w(6), "slope": np.full((6, 1, 1), 0.2, np.float32),
             "axes": np.array([1, 2], np.int64), "wf": w(5, 6), "bf": w(5)}
    return make_model(nodes, {"x": np.zeros((1, 3, 16, 16), np.float32)}, ["y"], inits, opset=13)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("qmodels")
    rng = np.random.default_rng(0)
    onnx.save(small_model(rng), path / "small.onnx")
    with open(path / "dataset.txt", "w") as f:
        for i in range(4):
            np.save(path / f"{i}.npy", rng.random((16, 16, 3), dtype=np.float32))
            f.write(f"{i}.npy\n")
    return path


def build(path, model: str, dtype: str, **cfg) -> RKNN:
    rknn = RKNN()
    rknn.config(quantized_dtype=dtype, **cfg)
    assert rknn.load_onnx(str(path / model)) == 0
    assert rknn.build(do_quantization=True, dataset=str(path / "dataset.txt")) == 0
    assert rknn.init_runtime() == 0
    return rknn


def float_output(path, x: np.ndarray) -> np.ndarray:
    rknn = RKNN()
    assert rknn.load_onnx(str(path / "small.onnx")) == 0 and rknn.build(do_quantization=False) == 0
    assert rknn.init_runtime() == 0
    return rknn.inference([x], data_type="float32", data_format="nhwc")[0]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_u8_dfp8_dfp16_run_and_dfp16_is_closest_to_float(folder):
    x = np.load(folder / "0.npy")
    ref = float_output(folder, x)
    cos = {}
    for dtype in DTYPES:
        rknn = build(folder, "small.onnx", dtype)
        assert rknn._tk.model.graph.metadata[FLOAT_NODES] == []
        out = rknn.inference([x], data_type="float32", data_format="nhwc")[0]
        assert out.shape == ref.shape and np.isfinite(out).all()
        cos[dtype] = cosine(out, ref)
    assert cos["dynamic_fixed_point-16"] > cos["dynamic_fixed_point-8"]
    assert cos["dynamic_fixed_point-16"] > 0.9999 and min(cos.values()) > 0.95


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_node_is_within_a_few_lsb_of_fake_quant(folder, dtype):
    """Each quantized node, fed the stored inputs of the quantized run, equals (to 2 LSB) the float
    kernel on the dequantized inputs, quantized to the node's output parameters."""
    rknn = build(folder, "small.onnx", dtype)
    graph = rknn._tk.model.graph
    registry = default_registry()
    executor = QuantExecutor(graph, registry)
    x = np.load(folder / "1.npy").transpose(2, 0, 1)[None]
    names = [t for node in graph.nodes for t in node.outputs]
    stored = super(QuantExecutor, executor).run({graph.inputs[0]: x}, keep=names)
    stored[graph.inputs[0]] = x
    checked = 0
    for node in graph.nodes:
        args = []
        for name in node.inputs:
            value = stored.get(name, graph.tensors[name].data if name else None)
            q = graph.tensors[name].quant if name else None
            args.append(dequantize(value, q) if is_stored_quantized(value, q) else value)
        want = registry.op(node.op).kernel(args, node.attrs)
        for name, real in zip(node.outputs, want):
            q = graph.tensors[name].quant
            if q is None:
                continue
            got = stored[name].astype(np.int64)
            diff = np.abs(got - quantize(real, q).astype(np.int64)).max()
            assert diff <= 2, f"{node.op} '{node.name}': {diff} LSB from the fake-quant reference"
            checked += 1
    assert checked == len(graph.nodes)


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18"])
def test_zoo_models_quantize_every_node(tmp_path, name):
    onnx.save(getattr(zoo, name)(size=64, classes=10), tmp_path / "m.onnx")
    rng = np.random.default_rng(1)
    with open(tmp_path / "dataset.txt", "w") as f:
        for i in range(2):
            np.save(tmp_path / f"{i}.npy", rng.random((64, 64, 3), dtype=np.float32))
            f.write(f"{i}.npy\n")
    # with in-model preprocessing: its Div by the scale is an integer requantization too
    rknn = build(tmp_path, "m.onnx", "asymmetric_quantized-u8", channel_mean_value="0.5 0.5 0.5 0.25")
    assert rknn._tk.model.graph.metadata[FLOAT_NODES] == []
    out = rknn.inference([np.load(tmp_path / "0.npy")], data_type="float32", data_format="nhwc")[0]
    assert out.shape == (1, 10) and abs(float(out.sum()) - 1.0) < 0.05  # softmax probabilities


def test_division_by_a_constant_is_an_exact_requantization(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    divisor = np.array([[[[0.7]], [[-2.5]], [[3.0]], [[0.125]]]], np.float32)
    onnx.save(make_model([helper.make_node("Div", ["x", "d"], ["y"])], {"x": x}, ["y"], {"d": divisor}),
              tmp_path / "div.onnx")
    with open(tmp_path / "dataset.txt", "w") as f:
        for i in range(3):
            np.save(tmp_path / f"{i}.npy", rng.standard_normal((6, 6, 4)).astype(np.float32))
            f.write(f"{i}.npy\n")
    rknn = build(tmp_path, "div.onnx", "asymmetric_quantized-u8")
    graph = rknn._tk.model.graph
    assert graph.metadata[FLOAT_NODES] == []
    x_q, y_q = graph.tensors["x"].quant, graph.tensors["y"].quant
    stored = quantize(x, x_q).astype(np.int64)
    # plain reference: the real quotient of the dequantized input, rounded onto the output grid
    real = (stored - x_q.zero_point[0]) * x_q.scale[0] / divisor.astype(np.float64)
    expected = np.clip(np.floor(real / y_q.scale[0] + 0.5) + y_q.zero_point[0], 0, 255)
    ours = QuantExecutor(graph, default_registry()).run({"x": x}, keep=["y"])["y"]
    got = np.round(ours / y_q.scale[0] + y_q.zero_point[0])
    assert np.abs(got - expected).max() <= 1
    assert np.mean(got == expected) >= 0.99
