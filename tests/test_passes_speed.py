"""The speed passes (issue 13): each changes the graph and not the outputs. Float results are compared
with the same model built without the pass (and with onnxruntime); quantized ones bit for bit with the
unfused quantized graph."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from onnx_util import make_model, save_model

from rknn_core.plugins import default_registry
from rknn_core.runtime.executor import Executor
from rknn_core.runtime.qexecutor import QuantExecutor
from rknn_core.testing import run_ort, vendor_flow, write_dataset
from rknn_core.toolkit import Toolkit

F32 = np.float32


@pytest.fixture(autouse=True)
def _verify_every_pass(monkeypatch):
    monkeypatch.setenv("RKNN_VERIFY_PASSES", "1")


def randn(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(F32)


def without(*passes: str):
    """The installed plugins with the named passes left out: the unfused reference."""
    registry = default_registry().copy()
    for name in passes:
        del registry.table("passes")[name]
    return registry


def built_ops(path: str, quantize: bool = False, dataset=None, **cfg) -> list[str]:
    tk = Toolkit()
    tk.config(optimization_level=3, **cfg)
    tk.load("load_onnx", model=path)
    return [n.op for n in tk.build(do_quantization=quantize, dataset=dataset).graph.nodes]


def both(path, inputs, passes, quantize=False, samples=None, tmp_path=None, **cfg):
    """Outputs with and without ``passes`` (float: also onnxruntime's)."""
    kwargs = dict(quantize=quantize, dataset=samples, config={"optimization_level": 3, **cfg})
    fused = vendor_flow(path, inputs, tmp_dir=str(tmp_path / "fused"), **kwargs)
    plain = vendor_flow(path, inputs, tmp_dir=str(tmp_path / "plain"), registry=without(*passes), **kwargs)
    return fused, plain


def _dirs(tmp_path):
    for sub in ("fused", "plain"):
        (tmp_path / sub).mkdir(exist_ok=True)


# ------------------------------------------------------------------------------------ fold_pad


def pad_model(reader: str, pads, value=None, mode="constant", reader_attrs=None, channels=4, extra=()):
    x = randn(1, channels, 9, 9)
    inits = {"pads": np.asarray(pads, np.int64)}
    pad_inputs = ["x", "pads"]
    if value is not None:
        inits["value"] = np.asarray(value, F32)
        pad_inputs.append("value")
    nodes = [helper.make_node("Pad", pad_inputs, ["p"], mode=mode)]
    attrs = dict(reader_attrs or {})
    if reader == "Conv":
        inits.update(w=randn(6, channels, 3, 3, seed=1), b=randn(6, seed=2))
        nodes.append(helper.make_node("Conv", ["p", "w", "b"], ["y"], kernel_shape=[3, 3], **attrs))
    else:
        nodes.append(helper.make_node(reader, ["p"], ["y"], kernel_shape=[3, 3], **attrs))
    nodes += [helper.make_node(op, ["p"], [out]) for op, out in extra]
    return make_model(nodes, {"x": x}, ["y", *(out for _, out in extra)], initializers=inits), {"x": x}


FOLDED = [
    ("Conv", [0, 0, 1, 2, 0, 0, 2, 1], None, {}),
    ("Conv", [0, 0, 2, 2, 0, 0, 2, 2], 0.0, {"strides": [2, 2], "pads": [1, 0, 0, 1]}),
    ("AveragePool", [0, 0, 1, 1, 0, 0, 1, 1], None, {"strides": [2, 2]}),
    ("AveragePool", [0, 0, 0, 1, 0, 0, 2, 1], None, {"pads": [1, 1, 1, 1], "count_include_pad": 1}),
    ("MaxPool", [0, 0, 1, 1, 0, 0, 1, 1], -np.inf, {"strides": [2, 2]}),
]


@pytest.mark.parametrize("reader, pads, value, attrs", FOLDED)
def test_pad_folds_into_its_reader_with_the_same_outputs(tmp_path, reader, pads, value, attrs):
    model, inputs = pad_model(reader, pads, value, reader_attrs=attrs)
    path = save_model(model, str(tmp_path))
    assert built_ops(path) == [reader]
    _dirs(tmp_path)
    fused, plain = both(path, inputs, ["fold_pad"], tmp_path=tmp_path)
    np.testing.assert_allclose(fused[0], plain[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused[0], run_ort(path, inputs)[0], rtol=1e-4, atol=1e-5)


UNFOLDED = [
    ("Conv", [0, 0, 1, 1, 0, 0, 1, 1], 1.5, "constant", {}),  # a non-zero pad is not the conv's padding
    ("Conv", [0, 0, 1, 1, 0, 0, 1, 1], None, "reflect", {}),
    ("MaxPool", [0, 1, 1, 1, 0, 0, 1, 1], -np.inf, "constant", {}),  # pads a channel
    ("AveragePool", [0, 0, 1, 1, 0, 0, 1, 1], None, "constant", {"pads": [1, 1, 1, 1]}),  # own pads not counted
    ("AveragePool", [0, 0, 1, 1, 0, 0, 1, 1], None, "constant", {"ceil_mode": 1, "strides": [2, 2]}),
    ("MaxPool", [0, 0, 1, 1, 0, 0, 1, 1], 0.0, "constant", {}),  # a zero pad wins over negative values
]


@pytest.mark.parametrize("reader, pads, value, mode, attrs", UNFOLDED)
def test_pad_stays_where_folding_would_change_the_values(tmp_path, reader, pads, value, mode, attrs):
    model, inputs = pad_model(reader, pads, value, mode, attrs, channels=4)
    path = save_model(model, str(tmp_path))
    assert "Pad" in built_ops(path)
    _dirs(tmp_path)
    fused, _ = both(path, inputs, ["fold_pad"], tmp_path=tmp_path)
    np.testing.assert_allclose(fused[0], run_ort(path, inputs)[0], rtol=1e-4, atol=1e-5)


def test_pad_read_by_a_conv_and_another_op_folds_for_the_conv_only(tmp_path):
    model, inputs = pad_model("Conv", [0, 0, 1, 1, 0, 0, 1, 1], extra=[("Relu", "r")])
    path = save_model(model, str(tmp_path))
    assert sorted(built_ops(path)) == ["Conv", "Pad", "Relu"]
    _dirs(tmp_path)
    fused, plain = both(path, inputs, ["fold_pad"], tmp_path=tmp_path)
    for a, b in zip(fused, plain):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_quantized_conv_after_a_folded_pad_is_bit_exact(tmp_path):
    model, inputs = pad_model("Conv", [0, 0, 0, 1, 0, 0, 1, 0], reader_attrs={"strides": [2, 2]})
    path = save_model(model, str(tmp_path))
    samples = [[randn(1, 4, 9, 9, seed=s)] for s in range(4)]
    _dirs(tmp_path)
    fused, plain = both(path, inputs, ["fold_pad"], quantize=True, samples=samples, tmp_path=tmp_path)
    assert "Pad" not in built_ops(path, quantize=True, dataset=str(tmp_path / "fused" / "dataset.txt"))
    np.testing.assert_array_equal(fused[0], plain[0])


# ------------------------------------------------------------------------------------ fuse_epilogue


def residual_model(activation: str = "Relu"):
    """conv -> relu -> conv -> add(., first) -> activation, and a conv -> HardSwish branch."""
    x = randn(1, 4, 8, 8)
    inits = {"w1": randn(4, 4, 3, 3, seed=1, scale=0.3), "b1": randn(4, seed=2),
             "w2": randn(4, 4, 3, 3, seed=3, scale=0.3), "b2": randn(4, seed=4),
             "w3": randn(4, 4, 1, 1, seed=5), "b3": randn(4, seed=6)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["r1", "c2"], ["s"]),
             helper.make_node(activation, ["s"], ["y"]),
             helper.make_node("Conv", ["y", "w3", "b3"], ["c3"], kernel_shape=[1, 1]),
             helper.make_node("HardSwish", ["c3"], ["z"])]
    return make_model(nodes, {"x": x}, ["z"], initializers=inits, opset=14), {"x": x}


def conv_attrs(path, quantize=False, dataset=None):
    tk = Toolkit()
    tk.config(optimization_level=3)
    tk.load("load_onnx", model=path)
    return [(n.op, n.attrs) for n in tk.build(do_quantization=quantize, dataset=dataset).graph.nodes]


@pytest.mark.parametrize("activation", ["Relu", "HardSwish"])
def test_residual_add_and_activations_fuse_into_the_conv_float(tmp_path, activation):
    model, inputs = residual_model(activation)
    path = save_model(model, str(tmp_path))
    nodes = conv_attrs(path)
    assert [op for op, _ in nodes] == ["Conv", "Conv", "Conv"]
    assert nodes[1][1]["fused_add"] == 1 and nodes[1][1]["activation"]["op"] == activation
    assert nodes[2][1]["activation"] == {"op": "HardSwish"}
    _dirs(tmp_path)
    fused, plain = both(path, inputs, ["fuse_epilogue"], tmp_path=tmp_path)
    np.testing.assert_allclose(fused[0], plain[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused[0], run_ort(path, inputs)[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("activation", ["Relu", "HardSwish"])
def test_residual_add_and_activations_fuse_bit_exact_when_quantized(tmp_path, activation):
    model, inputs = residual_model(activation)
    path = save_model(model, str(tmp_path))
    samples = [[randn(1, 4, 8, 8, seed=s)] for s in range(4)]
    _dirs(tmp_path)
    fused, plain = both(path, inputs, ["fuse_epilogue"], quantize=True, samples=samples, tmp_path=tmp_path)
    nodes = conv_attrs(path, quantize=True, dataset=str(tmp_path / "fused" / "dataset.txt"))
    assert [op for op, _ in nodes].count("Add") == 0
    fused_conv = next(attrs for op, attrs in nodes if attrs.get("fused_add"))
    assert set(fused_conv["add_conv_q"]) == {"qtype", "scale", "zero_point"}
    np.testing.assert_array_equal(fused[0], plain[0])


def prelu_model():
    """PRelu after a plain, a grouped and a depthwise Conv (per-channel slopes of shapes (C, 1, 1),
    (1, C, 1, 1) and one value), after a residual Add, and one with a slope per column that stays."""
    x = randn(1, 4, 9, 9)
    inits = {"w1": randn(6, 4, 3, 3, seed=1, scale=0.3), "b1": randn(6, seed=2),
             "w2": randn(6, 3, 3, 3, seed=3, scale=0.3), "w3": randn(6, 1, 3, 3, seed=4), "b3": randn(6, seed=5),
             "w4": randn(6, 6, 1, 1, seed=6, scale=0.3),
             "s1": randn(6, 1, 1, seed=7, scale=0.3), "s2": randn(1, 6, 1, 1, seed=8, scale=0.3),
             "s3": np.array([0.25], F32), "s4": randn(6, seed=9, scale=0.3), "s5": randn(8, seed=10, scale=0.3)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("PRelu", ["c1", "s1"], ["p1"]),
             helper.make_node("Conv", ["p1", "w2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=2),
             helper.make_node("PRelu", ["c2", "s2"], ["p2"]),
             helper.make_node("Conv", ["p2", "w3", "b3"], ["c3"], kernel_shape=[3, 3], strides=[2, 2], group=6),
             helper.make_node("PRelu", ["c3", "s3"], ["p3"]),
             helper.make_node("Conv", ["p3", "w4"], ["c4"], kernel_shape=[1, 1]),
             helper.make_node("Add", ["c4", "p3"], ["a4"]),
             helper.make_node("PRelu", ["a4", "s1"], ["p4"]),
             helper.make_node("Conv", ["p4", "w4"], ["c5"], kernel_shape=[1, 1], pads=[2, 2, 2, 2]),
             helper.make_node("PRelu", ["c5", "s5"], ["y"])]
    return make_model(nodes, {"x": x}, ["y"], initializers=inits, opset=14), {"x": x}


def fused_epilogue_float(tmp_path, path: str, inputs: dict) -> list:
    """The float build's outputs with ``fuse_epilogue``: bit-equal to the build without it, and onnxruntime's
    to rounding."""
    _dirs(tmp_path)
    fused, plain = both(path, inputs, ["fuse_epilogue"], tmp_path=tmp_path)
    np.testing.assert_array_equal(fused[0], plain[0])
    np.testing.assert_allclose(fused[0], run_ort(path, inputs)[0], rtol=1e-4, atol=1e-5)
    return fused


def test_prelu_with_slopes_per_channel_fuses_into_the_conv_float(tmp_path):
    model, inputs = prelu_model()
    path = save_model(model, str(tmp_path))
    nodes = conv_attrs(path)
    assert [op for op, _ in nodes] == ["Conv"] * 5 + ["PRelu"]  # the slope per column stays a PRelu
    acts = [attrs.get("activation") for _, attrs in nodes[:4]]
    assert [a["op"] for a in acts] == ["PRelu"] * 4 and nodes[3][1]["fused_add"] == 1
    assert acts[2]["slope"] == [0.25] * 6 and len(acts[0]["slope"]) == 6
    fused = fused_epilogue_float(tmp_path, path, inputs)  # the same float32 product where negative
    assert (fused[0] < 0).any()


QUANTIZED_DTYPES = ["asymmetric_quantized-u8", "dynamic_fixed_point-8", "dynamic_fixed_point-16"]


def fused_epilogue_quantized(tmp_path, model_and_inputs, dtype: str):
    """The model built quantized with and without ``fuse_epilogue`` (bit-equal outputs asserted, and not all
    alike) and the fused build's (op, attrs) list."""
    model, inputs = model_and_inputs
    path = save_model(model, str(tmp_path))
    samples = [[randn(*inputs["x"].shape, seed=s)] for s in range(4)]
    _dirs(tmp_path)
    fused, plain = both(path, inputs, ["fuse_epilogue"], quantize=True, samples=samples, tmp_path=tmp_path,
                        quantized_dtype=dtype)
    np.testing.assert_array_equal(fused[0], plain[0])
    assert len(np.unique(fused[0])) > 20
    return conv_attrs(path, quantize=True, dataset=str(tmp_path / "fused" / "dataset.txt"))


@pytest.mark.parametrize("dtype", QUANTIZED_DTYPES)
def test_prelu_fuses_bit_exact_when_quantized(tmp_path, dtype):
    nodes = fused_epilogue_quantized(tmp_path, prelu_model(), dtype)
    prelus = [attrs["activation"] for op, attrs in nodes if op == "Conv" and attrs.get("activation")]
    assert len(prelus) == 4 and all(set(a) == {"op", "slope_codes", "slope_q"} for a in prelus)


def affine_model():
    """PP-LCNetV3's learnable affine after the activations: Conv -> HardSwish -> Mul(s) -> Add(t), a
    depthwise Conv -> Relu -> Add(t) (constant first) -> Mul(s), a Conv -> residual Add -> Mul(s), and a
    Mul whose constant is not one value (stays)."""
    x = randn(1, 4, 9, 9)
    inits = {"w1": randn(6, 4, 3, 3, seed=1, scale=0.3), "b1": randn(6, seed=2), "w2": randn(6, 1, 3, 3, seed=3),
             "w3": randn(6, 6, 1, 1, seed=4, scale=0.3), "s1": np.array([1.7], F32), "t1": np.array([-0.4], F32),
             "s2": np.array([0.3], F32), "t2": np.array([0.25], F32), "s3": np.array(-1.1, F32),
             "v": randn(1, 6, 1, 1, seed=5)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("HardSwish", ["c1"], ["h1"]),
             helper.make_node("Mul", ["h1", "s1"], ["m1"]),
             helper.make_node("Add", ["m1", "t1"], ["a1"]),
             helper.make_node("Conv", ["a1", "w2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=6),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("Add", ["t2", "r2"], ["a2"]),
             helper.make_node("Mul", ["a2", "s2"], ["m2"]),
             helper.make_node("Conv", ["m2", "w3"], ["c3"], kernel_shape=[1, 1]),
             helper.make_node("Add", ["c3", "a1"], ["a3"]),
             helper.make_node("Mul", ["s3", "a3"], ["m3"]),
             helper.make_node("Mul", ["m3", "v"], ["y"])]
    return make_model(nodes, {"x": x}, ["y"], initializers=inits, opset=14), {"x": x}


def test_mul_and_add_by_one_value_fuse_after_the_activation_float(tmp_path):
    model, inputs = affine_model()
    path = save_model(model, str(tmp_path))
    nodes = conv_attrs(path)
    assert [op for op, _ in nodes] == ["Conv", "Conv", "Conv", "Mul"]
    posts = [[(step["op"], step["value"]) for step in attrs.get("post_ops", [])] for _, attrs in nodes[:3]]
    assert posts == [[("Mul", pytest.approx(1.7)), ("Add", pytest.approx(-0.4))],
                     [("Add", 0.25), ("Mul", pytest.approx(0.3))], [("Mul", pytest.approx(-1.1))]]
    fused_epilogue_float(tmp_path, path, inputs)  # a product, then a sum, rounded as the standalone ops


@pytest.mark.parametrize("dtype", QUANTIZED_DTYPES)
def test_mul_and_add_by_one_value_fuse_bit_exact_when_quantized(tmp_path, dtype):
    nodes = fused_epilogue_quantized(tmp_path, affine_model(), dtype)
    assert [op for op, _ in nodes] == ["Conv", "Conv", "Conv", "Mul"]
    steps = [step for _, attrs in nodes[:3] for step in attrs.get("post_ops", [])]
    assert len(steps) == 5 and all(set(step) == {"op", "code", "const_q", "in_q"} for step in steps)


def fully_connected_model(rows: int, width: int = 16):
    """MTCNN's heads: MatMul -> Add(bias per column) -> PRelu(slope per column) (``width`` columns), MatMul -> Add
    (constant first, shape (1, N)) -> Relu -> Mul by one value, MatMul -> Add(one value) -> Add(a full tensor,
    stays)."""
    x = randn(rows, 12)
    inits = {"w1": randn(12, width, seed=1, scale=0.4), "b1": randn(width, seed=2),
             "s1": randn(width, seed=3, scale=0.3), "w2": randn(width, 10, seed=4, scale=0.4),
             "b2": randn(1, 10, seed=5), "s": np.array(0.7, F32),
             "w3": randn(10, 32, seed=6, scale=0.4), "t": np.array([0.3], F32), "v": randn(rows, 32, seed=7)}
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m1"]), helper.make_node("Add", ["m1", "b1"], ["a1"]),
             helper.make_node("PRelu", ["a1", "s1"], ["p1"]),
             helper.make_node("MatMul", ["p1", "w2"], ["m2"]), helper.make_node("Add", ["b2", "m2"], ["a2"]),
             helper.make_node("Relu", ["a2"], ["r2"]), helper.make_node("Mul", ["r2", "s"], ["u2"]),
             helper.make_node("MatMul", ["u2", "w3"], ["m3"]), helper.make_node("Add", ["m3", "t"], ["a3"]),
             helper.make_node("Add", ["a3", "v"], ["y"])]
    return make_model(nodes, {"x": x}, ["y"], initializers=inits, opset=14), {"x": x}


def token_model():
    """A transformer's linear layers on (batch, tokens, K): MatMul -> Add(bias) -> PRelu with one slope per token
    (along axis 1: stays, a MatMul's channels are its last axis), MatMul -> Add(bias) -> HardSwish."""
    x = randn(2, 3, 12)
    inits = {"w1": randn(12, 16, seed=1, scale=0.4), "b1": randn(16, seed=2), "s": randn(1, 3, 1, seed=3, scale=0.3),
             "w2": randn(16, 32, seed=4, scale=0.4), "b2": randn(32, seed=5)}
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m1"]), helper.make_node("Add", ["m1", "b1"], ["a1"]),
             helper.make_node("PRelu", ["a1", "s"], ["p1"]),
             helper.make_node("MatMul", ["p1", "w2"], ["m2"]), helper.make_node("Add", ["m2", "b2"], ["a2"]),
             helper.make_node("HardSwish", ["a2"], ["y"])]
    return make_model(nodes, {"x": x}, ["y"], initializers=inits, opset=14), {"x": x}


def test_linear_layers_on_tokens_fuse_their_bias_and_activation_float(tmp_path):
    model, inputs = token_model()
    path = save_model(model, str(tmp_path))
    nodes = conv_attrs(path)
    assert [op for op, _ in nodes] == ["MatMul", "PRelu", "MatMul"]
    assert "activation" not in nodes[0][1] and nodes[2][1]["activation"] == {"op": "HardSwish"}
    assert fused_epilogue_float(tmp_path, path, inputs)[0].shape == (2, 3, 32)


@pytest.mark.parametrize("dtype", QUANTIZED_DTYPES)
def test_linear_layers_on_tokens_fuse_bit_exact_when_quantized(tmp_path, dtype):
    nodes = fused_epilogue_quantized(tmp_path, token_model(), dtype)
    assert [op for op, _ in nodes] == ["MatMul", "PRelu", "MatMul"]
    assert nodes[2][1]["activation"] == {"op": "HardSwish"} and "act_in_q" in nodes[2][1]


@pytest.mark.parametrize("rows", [1, 3])
def test_bias_activation_and_post_ops_fuse_into_a_fully_connected_matmul_float(tmp_path, rows):
    model, inputs = fully_connected_model(rows)
    path = save_model(model, str(tmp_path))
    nodes = conv_attrs(path)
    assert [op for op, _ in nodes] == ["MatMul", "MatMul", "MatMul", "Add"]
    assert nodes[0][1]["activation"]["op"] == "PRelu" and len(nodes[0][1]["activation"]["slope"]) == 16
    assert nodes[1][1]["activation"] == {"op": "Relu"}
    assert [(s["op"], s["value"]) for s in nodes[1][1]["post_ops"]] == [("Mul", pytest.approx(0.7))]
    fused = fused_epilogue_float(tmp_path, path, inputs)  # the bias added after the sums, as the Add does
    assert fused[0].shape == (rows, 32)


@pytest.mark.parametrize(("rows", "width"), [(1, 16), (3, 16), (1, 300)])  # one row of 300: the GEMV's column
@pytest.mark.parametrize("dtype", QUANTIZED_DTYPES)                          # epilogue in two chunks
def test_bias_activation_and_post_ops_fuse_into_a_fully_connected_matmul_bit_exact(tmp_path, dtype, rows, width):
    nodes = fused_epilogue_quantized(tmp_path, fully_connected_model(rows, width), dtype)
    assert [op for op, _ in nodes] == ["MatMul", "MatMul", "MatMul", "Add"]
    assert all(set(attrs) >= {"add_conv_q"} for _, attrs in nodes[:3])
    assert set(nodes[0][1]["activation"]) == {"op", "slope_codes", "slope_q"} and len(nodes[1][1]["post_ops"]) == 1
    assert nodes[1][1]["activation"] == {"op": "Relu"} and "act_in_q" in nodes[1][1]  # its output has its own grid


# ------------------------------------------------------------------------------------ fold_preprocess


def first_conv_model(pads, nhwc=False):
    """A conv (``pads``) then Relu; with ``nhwc`` the input is NHWC and transposed first, as Keras exports."""
    x = np.random.default_rng(3).uniform(0, 255, (1, 7, 7, 3) if nhwc else (1, 3, 7, 7)).astype(F32)
    nodes = [helper.make_node("Conv", ["t" if nhwc else "x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=pads),
             helper.make_node("Relu", ["c"], ["y"])]
    if nhwc:
        nodes.insert(0, helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]))
    inits = {"w": randn(5, 3, 3, 3, seed=7), "b": randn(5, seed=8)}
    return make_model(nodes, {"x": x}, ["y"], initializers=inits), x


PREPROCESS = [
    ({"channel_mean_value": "103.94 116.78 123.68 58.82", "reorder_channel": "2 1 0"}, [0, 0, 0, 0], False),
    ({"mean_values": [[127, 120, 110]], "std_values": [[128, 64, 32]]}, [1, 1, 1, 1], False),
    ({"channel_mean_value": "127 127 127 128"}, [0, 0, 1, 1], True),
    ({"channel_mean_value": "127.5 127.5 127.5 127.5", "reorder_channel": "2 1 0"}, [0, 0, 0, 0], True),
]


@pytest.mark.parametrize("cfg, pads, nhwc", PREPROCESS)
def test_normalization_folds_into_the_first_conv_in_float(tmp_path, cfg, pads, nhwc):
    model, x = first_conv_model(pads, nhwc)
    path = save_model(model, str(tmp_path))
    ops = built_ops(path, **cfg)
    assert "Div" not in ops and "Gather" not in ops
    assert ops.count("Sub") == (1 if any(pads) else 0)  # a padded conv keeps the mean (its border is 0 in z)
    _dirs(tmp_path)
    data_format = "nhwc" if nhwc else "nchw"
    kwargs = dict(config={"optimization_level": 3, **cfg}, data_format=data_format)
    fused = vendor_flow(path, [x], tmp_dir=str(tmp_path / "fused"), **kwargs)
    plain = vendor_flow(path, [x], tmp_dir=str(tmp_path / "plain"), registry=without("fold_preprocess"), **kwargs)
    np.testing.assert_allclose(fused[0], plain[0], rtol=1e-5, atol=1e-5 * float(np.abs(plain[0]).max()))


def test_pass_through_feeds_the_folded_normalization_back_through_the_input(tmp_path):
    model, x = first_conv_model([1, 1, 1, 1], nhwc=True)
    tk = Toolkit()
    tk.config(optimization_level=3, channel_mean_value="127 120 110 64", reorder_channel="2 1 0")
    tk.load("load_onnx", model=save_model(model, str(tmp_path)))
    pre = tk.build(do_quantization=False).preprocessed[tk.graph.inputs[0]]
    assert pre in tk.model.graph.metadata["folded_preprocess"] and pre not in tk.model.graph.tensors
    tk.init_runtime()
    done = (x[..., ::-1] - np.array([127, 120, 110], F32)) / F32(64)
    plain = tk.inference([x], data_type="float32")[0]
    through = tk.inference([done], data_type="float32", inputs_pass_through=[1])[0]
    np.testing.assert_allclose(through, plain, rtol=1e-5, atol=1e-4)


def test_quantized_models_keep_the_normalization_nodes(tmp_path):
    model, x = first_conv_model([0, 0, 0, 0])
    path = save_model(model, str(tmp_path))
    _dirs(tmp_path)
    dataset = write_dataset([[x]], str(tmp_path))
    assert built_ops(path, quantize=True, dataset=dataset, channel_mean_value="127 127 127 128")[:2] == ["Sub", "Div"]


# ------------------------------------------------------------------------------------ quantized input lookup


class NodeByNode(QuantExecutor):
    """The quantized executor without the input lookup: every node on its own (the reference)."""

    calls = Executor.calls


@pytest.mark.parametrize("cfg", [{"channel_mean_value": "127 127 127 128"},
                                 {"mean_values": [[123.7, 116.3, 103.5]], "std_values": [[58.4, 57.1, 57.4]],
                                  "reorder_channel": "2 1 0"}])
@pytest.mark.parametrize("dtype", ["asymmetric_quantized-u8", "dynamic_fixed_point-8"])
@pytest.mark.parametrize("nhwc", [True, False], ids=["nhwc-input-compiled-lookup-of-planes", "nchw-input-compiled-lookup"])
def test_quantized_normalization_runs_as_one_lookup_bit_exact(tmp_path, cfg, dtype, nhwc):
    model, x = first_conv_model([1, 1, 1, 1], nhwc=nhwc)
    samples = [np.random.default_rng(s).integers(0, 256, x.shape).astype(F32) for s in range(4)]
    tk = Toolkit()
    tk.config(optimization_level=3, quantized_dtype=dtype, **cfg)
    tk.load("load_onnx", model=save_model(model, str(tmp_path)))
    dataset = write_dataset([[s] for s in samples], str(tmp_path), "nhwc" if nhwc else "nchw")
    graph = tk.build(do_quantization=True, dataset=dataset).graph
    fast, plain = QuantExecutor(graph, tk.registry), NodeByNode(graph, tk.registry)
    feeds = {graph.inputs[0]: x}
    steps = fast._plan(frozenset(feeds), frozenset())
    assert len(steps) < len(plain._plan(frozenset(feeds), frozenset()))
    assert steps[0].node.op in ("Div", "Sub", "Mul")  # the whole normalization is the first call
    for value in (x.round(), x, samples[1] + 0.4, np.full_like(x, 300.0), np.full_like(x, -7.0)):
        feeds = {graph.inputs[0]: value}
        got, want = fast.run(feeds), plain.run(feeds)
        for name in graph.outputs:
            np.testing.assert_array_equal(got[name], want[name])


def test_uint8_pictures_feed_a_u8_input_as_its_codes(tmp_path):
    """A u8 model whose input grid is the identity (scale 1, zero point 0: calibrated on 0..255 pictures)
    takes a uint8 picture as its codes, without a float round trip; the same outputs as the picture fed as
    float32."""
    from rknn.api import RKNN
    from rknn_core.runtime.inputs import prepare_inputs

    model, x = first_conv_model([1, 1, 1, 1])
    samples = [np.random.default_rng(s).integers(0, 256, x.shape).astype(F32) for s in range(4)]
    rknn = RKNN()
    rknn.config(mean_values=[[120, 110, 100]], std_values=[[60, 60, 60]])
    assert rknn.load_onnx(save_model(model, str(tmp_path))) == 0
    assert rknn.build(do_quantization=True, dataset=write_dataset([[s] for s in samples], str(tmp_path), "nchw")) == 0
    assert rknn.init_runtime() == 0
    picture = np.random.default_rng(9).integers(0, 256, x.shape).astype(np.uint8)
    graph = rknn._tk.model.graph
    assert graph.tensors[graph.inputs[0]].quant.scale == (1.0,)
    feeds = prepare_inputs(rknn._tk.model, [picture], data_type="uint8", data_format="nchw")
    assert feeds[graph.inputs[0]].dtype == np.uint8
    as_codes = rknn.inference(inputs=[picture], data_type="uint8", data_format="nchw")
    as_floats = rknn.inference(inputs=[picture.astype(F32)], data_type="float32", data_format="nchw")
    np.testing.assert_array_equal(as_codes[0], as_floats[0])
    assert len(np.unique(as_codes[0])) > 10


@pytest.mark.parametrize("quantize", [False, True])
@pytest.mark.parametrize("data_type", ["uint8", "int8"])
def test_an_nhwc_byte_picture_for_an_nchw_input_becomes_planes_in_one_pass(tmp_path, quantize, data_type):
    """Bytes laid out NHWC for an NCHW input reach the model as contiguous planes of the input's type (float32, or
    the u8 codes), the values numpy's transpose and cast give; the outputs equal those of the NCHW picture."""
    from rknn.api import RKNN
    from rknn_core.runtime.inputs import prepare_inputs

    model, x = first_conv_model([1, 1, 1, 1])
    rng = np.random.default_rng(4)
    lo, hi = (0, 256) if data_type == "uint8" else (-128, 128)
    picture = rng.integers(lo, hi, (1, 7, 7, 3)).astype(data_type)
    rknn = RKNN()
    rknn.config(mean_values=[[0, 0, 0]], std_values=[[1, 1, 1]])
    assert rknn.load_onnx(save_model(model, str(tmp_path))) == 0
    samples = [[rng.integers(0, 128, x.shape).astype(F32)] for _ in range(3)]
    dataset = write_dataset(samples, str(tmp_path), "nchw") if quantize else None
    assert rknn.build(do_quantization=quantize, dataset=dataset) == 0 and rknn.init_runtime() == 0
    graph = rknn._tk.model.graph
    feeds = prepare_inputs(rknn._tk.model, [picture], data_type=data_type)
    fed, tensor = feeds[graph.inputs[0]], graph.tensors[graph.inputs[0]]
    assert fed.flags.c_contiguous and fed.dtype == np.dtype(tensor.dtype)
    if fed.dtype == np.float32 or fed.dtype == picture.dtype:
        np.testing.assert_array_equal(fed, picture.transpose(0, 3, 1, 2).astype(fed.dtype))
    nchw = rknn.inference(inputs=[np.ascontiguousarray(picture.transpose(0, 3, 1, 2))], data_type=data_type,
                          data_format="nchw")
    np.testing.assert_array_equal(rknn.inference(inputs=[picture], data_type=data_type)[0], nchw[0])
    assert len(np.unique(nchw[0])) > 10


@pytest.mark.parametrize("data_type", ["uint8", "int8"])
def test_an_nhwc_byte_picture_for_an_nhwc_float_input_becomes_planes_viewed_nhwc(tmp_path, data_type):
    """Bytes for a Keras-style NHWC float input reach it as float32 planes viewed NHWC (the values numpy's cast
    gives), so the Transpose to NCHW after the normalization's Sub costs nothing; the outputs equal those of the
    float32 picture, bit for bit."""
    from rknn.api import RKNN
    from rknn_core.runtime.inputs import prepare_inputs

    model, _ = first_conv_model([1, 1, 1, 1], nhwc=True)
    lo, hi = (0, 256) if data_type == "uint8" else (-128, 128)
    picture = np.random.default_rng(5).integers(lo, hi, (1, 7, 7, 3)).astype(data_type)
    rknn = RKNN()
    rknn.config(mean_values=[[127, 120, 110]], std_values=[[1, 1, 1]], optimization_level=3)
    path = save_model(model, str(tmp_path))
    assert rknn.load_onnx(path) == 0
    assert rknn.build(do_quantization=False) == 0 and rknn.init_runtime() == 0
    graph = rknn._tk.model.graph
    fed = prepare_inputs(rknn._tk.model, [picture], data_type=data_type)[graph.inputs[0]]
    assert fed.dtype == F32 and fed.transpose(0, 3, 1, 2).flags.c_contiguous
    np.testing.assert_array_equal(fed, picture.astype(F32))
    as_bytes = rknn.inference(inputs=[picture], data_type=data_type)[0]
    np.testing.assert_array_equal(as_bytes, rknn.inference(inputs=[picture.astype(F32)], data_type="float32")[0])
    reference = run_ort(path, {"x": (picture.astype(F32) - np.array([127, 120, 110], F32))})[0]
    np.testing.assert_allclose(as_bytes, reference, rtol=1e-5, atol=1e-3)


# ------------------------------------------------------------------------------------ fuse_hardswish


def hardswish_model(last: str):
    x = randn(1, 4, 6, 6, scale=4.0)
    inits = {"w": randn(4, 4, 1, 1, seed=1), "three": np.array(3.0, F32), "zero": np.array(0.0, F32),
             "six": np.array(6.0, F32), "sixth": np.array(1 / 6, F32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Add", ["c", "three"], ["a"]),
             helper.make_node("Clip", ["a", "zero", "six"], ["k"]),
             helper.make_node("Mul", ["c", "k"], ["m"]),
             helper.make_node(last, ["m", "six" if last == "Div" else "sixth"], ["y"])]
    return make_model(nodes, {"x": x}, ["y"], initializers=inits), {"x": x}


@pytest.mark.parametrize("last", ["Div", "Mul"])
def test_written_out_hardswish_becomes_one_op(tmp_path, last):
    model, inputs = hardswish_model(last)
    path = save_model(model, str(tmp_path))
    ops = built_ops(path)
    assert ops.count("Clip") == 0 and ops.count("Div") == 0 and ops.count("Add") == 0
    _dirs(tmp_path)
    fused, plain = both(path, inputs, ["fuse_hardswish"], tmp_path=tmp_path)
    scale = float(np.abs(plain[0]).max())
    np.testing.assert_allclose(fused[0], plain[0], rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(fused[0], run_ort(path, inputs)[0], rtol=1e-4, atol=1e-5 * scale)


def test_written_out_hardswish_quantized_is_one_lookup_close_to_float(tmp_path):
    """Quantized, the four requantizing ops become one table (fewer roundings, so not the unfused
    graph's codes): within two output steps of the float model."""
    model, inputs = hardswish_model("Div")
    path = save_model(model, str(tmp_path))
    samples = [[randn(1, 4, 6, 6, seed=s, scale=4.0)] for s in range(4)]
    _dirs(tmp_path)
    fused, _ = both(path, inputs, ["fuse_hardswish"], quantize=True, samples=samples, tmp_path=tmp_path)
    assert "Mul" not in built_ops(path, quantize=True, dataset=str(tmp_path / "fused" / "dataset.txt"))
    reference = run_ort(path, inputs)[0]
    step = (reference.max() - reference.min()) / 255
    assert np.abs(fused[0] - reference).max() <= 2.5 * step


# ------------------------------------------------------------------------------------ a real export


SPEED_PASSES = ("fold_pad", "fuse_hardswish", "fuse_epilogue", "fold_preprocess")


@pytest.mark.heavy
def test_ppocr_recognizer_with_and_without_the_speed_passes(tmp_path):
    """PP-OCRv4 recognition (rapidocr's file) in the vendor flow: the speed passes turn its written-out
    HardSwish chains into conv epilogues and fold the normalization into the first conv; float outputs stay within 1e-4 of the unfused build, and u8 with the
    exact passes (all but fuse_hardswish) is bit for bit the unfused u8 build."""
    from real_models import real_model, text_image

    path = real_model("rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx")
    picture = text_image(48, 320)
    samples = [[text_image(48, 320, text)] for text in ("NPU 1808", "rknn open", "OCR 2024")]
    cfg = {"optimization_level": 3, "mean_values": [[127.5] * 3], "std_values": [[127.5] * 3]}
    load = {"inputs": ["x"], "input_size_list": [[3, 48, 320]]}
    run = dict(config=cfg, load_options=load, data_type="uint8", data_format="nhwc")
    for sub in ("f", "fp", "q", "qp"):
        (tmp_path / sub).mkdir()
    tk = Toolkit()
    tk.config(**cfg)
    tk.load("load_onnx", model=path, **load)
    ops = [n.op for n in tk.build(do_quantization=False).graph.nodes]
    assert "Clip" not in ops and "HardSwish" not in ops and ops[:2] == ["Sub", "Conv"]  # (the first conv is padded)
    assert sum((n.attrs.get("activation") or {}).get("op") == "HardSwish" for n in tk.model.graph.nodes) > 10
    fused = vendor_flow(path, [picture], tmp_dir=str(tmp_path / "f"), **run)
    plain = vendor_flow(path, [picture], tmp_dir=str(tmp_path / "fp"), registry=without(*SPEED_PASSES), **run)
    np.testing.assert_allclose(fused[0], plain[0], rtol=1e-4, atol=1e-4)
    exact = dict(run, quantize=True, dataset=samples)
    q_fused = vendor_flow(path, [picture], tmp_dir=str(tmp_path / "q"), registry=without("fuse_hardswish"), **exact)
    q_plain = vendor_flow(path, [picture], tmp_dir=str(tmp_path / "qp"), registry=without(*SPEED_PASSES), **exact)
    np.testing.assert_array_equal(q_fused[0], q_plain[0])
