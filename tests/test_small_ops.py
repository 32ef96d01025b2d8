"""The per-node preparation of small ops gives the values of the plain formulations, bit for bit.

Plans hold each node's prepared call (parameters looked up, constants quantized once); kernels keep per-node
plans (MatMul by weights, quantized Softmax); two-class softmax rows reduce as one elementwise call; 8-bit
outputs dequantize through a table. Each is checked against the straightforward numpy form it replaces.
"""

from __future__ import annotations

import functools
import gc
import math

import numpy as np
import pytest

from rknn_core.errors import RknnError
from rknn_core.ir import Graph, Node, QuantParams, Tensor
from rknn_core.ops import _common, _quant, conv, elementwise, matmul, nn, tensor
from rknn_core.ops._epilogue import compiled_post, quant_stages
from rknn_core.plugins import default_registry
from rknn_core.quant import fixedpoint
from rknn_core.quant.params import QTYPES, dequantize, quantize
from rknn_core.runtime import qexecutor
from rknn_core.runtime.executor import Executor
from rknn_core.runtime.qexecutor import QuantExecutor

U8 = QuantParams("u8", 0.05, 128)


def storage(rng, q: QuantParams, shape) -> np.ndarray:
    lo, hi, dtype = QTYPES[q.qtype]
    return rng.integers(lo, hi + 1, size=shape).astype(dtype)


def add_graph(constant: np.ndarray) -> Graph:
    """y = Add(x, c) with every tensor quantized u8 and ``c`` a constant held as real float values."""
    graph = Graph(inputs=["x"], outputs=["y"])
    graph.add_tensor(Tensor("x", (1, 4), quant=U8))
    graph.add_tensor(Tensor("c", (1, 4), data=constant, quant=QuantParams("u8", 0.02, 100)))
    graph.add_tensor(Tensor("y", (1, 4), quant=QuantParams("u8", 0.07, 90)))
    graph.nodes.append(Node("add", "Add", ["x", "c"], ["y"]))
    return graph


# ---------------------------------------------------------------- executor plans
def test_plan_quantizes_a_float_constant_once(monkeypatch):
    constant = np.array([[0.5, -1.0, 2.0, 0.25]], np.float32)
    graph = add_graph(constant)
    seen = []
    real_codes = qexecutor.stored_codes
    monkeypatch.setattr(qexecutor, "stored_codes", lambda v, q: seen.append(v is constant) or real_codes(v, q))
    executor = QuantExecutor(graph, default_registry())
    x = np.array([[0.1, 0.2, -0.3, 1.5]], np.float32)
    outs = [executor.run({"x": x})["y"] for _ in range(3)]
    assert seen.count(True) == 1  # the constant at plan time; the fed input on every run
    assert seen.count(False) == 3
    tensors = graph.tensors
    want = _quant.quantized_add(quantize(x, U8), quantize(constant, tensors["c"].quant), U8,
                                tensors["c"].quant, tensors["y"].quant)
    for out in outs:
        np.testing.assert_array_equal(out, dequantize(want, tensors["y"].quant))


def test_compute_reads_the_graph_as_it_is_now():
    """Bias correction edits parameters between node runs: ``compute`` looks them up afresh."""
    graph = add_graph(np.array([[0.5, -1.0, 2.0, 0.25]], np.float32))
    executor = QuantExecutor(graph, default_registry())
    x = quantize(np.array([[0.1, 0.2, -0.3, 1.5]], np.float32), U8)
    args = [x, graph.tensors["c"].data]
    before = executor.compute(0, graph.nodes[0], args)[0]
    graph.tensors["y"].quant = QuantParams("u8", 0.01, 10)
    after = executor.compute(0, graph.nodes[0], args)[0]
    c_q = graph.tensors["c"].quant
    want = _quant.quantized_add(x, quantize(args[1], c_q), U8, c_q, graph.tensors["y"].quant)
    np.testing.assert_array_equal(after, want)
    assert not np.array_equal(before, after)


def test_a_failing_node_is_named():
    graph = Graph(inputs=["x"], outputs=["y"])
    graph.add_tensor(Tensor("x", (2, 3)))
    graph.add_tensor(Tensor("s", (1,), "int64", np.array([5], np.int64)))
    graph.add_tensor(Tensor("y", (5,)))
    graph.nodes.append(Node("bad_reshape", "Reshape", ["x", "s"], ["y"]))
    with pytest.raises(Exception, match="bad_reshape"):
        Executor(graph, default_registry()).run({"x": np.zeros((2, 3), np.float32)})


def test_an_output_a_kernel_did_not_give_is_named():
    """A kernel that returns fewer outputs than its node names: the step that reads the missing one says so."""
    from rknn_core.ir import TensorInfo
    from rknn_core.records import OpDef

    registry = default_registry().copy()
    registry.add("ops", OpDef("TwoNamed", lambda i, a: [TensorInfo(i[0].shape, i[0].dtype)] * 2,
                              lambda i, a: [i[0] + 1], max_inputs=1, doc="gives one output of two"), "test")
    graph = Graph(inputs=["x"], outputs=["y"])
    for name in ("x", "a", "b", "y"):
        graph.add_tensor(Tensor(name, (2,)))
    graph.nodes.append(Node("two", "TwoNamed", ["x"], ["a", "b"]))
    graph.nodes.append(Node("add", "Add", ["a", "b"], ["y"]))
    with pytest.raises(RknnError, match="tensor 'b' has no value"):
        Executor(graph, registry).run({"x": np.zeros(2, np.float32)})


def test_an_input_left_out_is_named():
    graph = add_graph(np.zeros((1, 4), np.float32))
    graph.inputs.append("z")
    graph.add_tensor(Tensor("z", (1, 4)))
    graph.nodes[0].inputs[1] = "z"
    with pytest.raises(RknnError, match="tensor 'z' has no value"):
        QuantExecutor(graph, default_registry()).run({"x": np.zeros((1, 4), np.float32)})


def conv_graph() -> Graph:
    """y = Conv(x, w, b) (3x3, pads 1, Relu fused) with every tensor quantized u8 (the bias int32)."""
    rng = np.random.default_rng(5)
    w, b = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), rng.normal(0, 0.2, 4).astype(np.float32)
    w_q = QuantParams("u8", 0.01, 128)
    graph = Graph(inputs=["x"], outputs=["y"])
    graph.add_tensor(Tensor("x", (1, 3, 8, 8), quant=U8))
    graph.add_tensor(Tensor("w", w.shape, data=w, quant=w_q))
    graph.add_tensor(Tensor("b", b.shape, data=b, quant=QuantParams("i32", U8.scale[0] * w_q.scale[0], 0)))
    graph.add_tensor(Tensor("y", (1, 4, 8, 8), quant=QuantParams("u8", 0.04, 100)))
    graph.nodes.append(Node("conv", "Conv", ["x", "w", "b"], ["y"], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1],
                                                                    "activation": {"op": "Relu"}}))
    return graph


@pytest.mark.parametrize("quantized", [False, True])
def test_a_prepared_conv_runs_every_input_shape_of_its_plan(quantized):
    """One plan (prepared once per node) meets inputs of several shapes and dtypes: each is what the kernel
    gives."""
    graph, rng = conv_graph(), np.random.default_rng(6)
    tensors, attrs = graph.tensors, graph.nodes[0].attrs
    executor = (QuantExecutor if quantized else Executor)(graph, default_registry())
    for shape, dtype in (((1, 3, 8, 8), np.float32), ((2, 3, 5, 7), np.float32), ((1, 3, 8, 8), np.float64),
                         ((1, 3, 8, 8), np.float32)):
        x = rng.uniform(-3, 3, shape).astype(dtype)
        got = executor.run({"x": x})["y"]
        if quantized:
            inputs = [quantize(x, U8)] + [quantize(tensors[n].data, tensors[n].quant) for n in ("w", "b")]
            want = dequantize(conv.quant_kernel(inputs, [tensors[n].quant for n in "xwb"], [tensors["y"].quant],
                                                attrs)[0], tensors["y"].quant)
        else:
            want = conv.kernel([x, tensors["w"].data, tensors["b"].data], attrs)[0]
        assert got.dtype == want.dtype and got.shape == (shape[0], 4, *shape[2:])
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("op", "inputs", "attrs", "want"), [
    ("Reshape", [np.array([-1, 4], np.int64)], {}, lambda x: x.reshape(-1, 4)),
    ("Flatten", [], {"axis": 2}, lambda x: x.reshape(x.shape[0] * x.shape[1], -1)),
    ("Squeeze", [np.array([0], np.int64)], {}, lambda x: x[0]),
    ("Unsqueeze", [np.array([1], np.int64)], {}, lambda x: x[:, None]),
])
def test_a_prepared_reshape_follows_each_input_shape(op, inputs, attrs, want):
    graph = Graph(inputs=["x"], outputs=["y"])
    graph.add_tensor(Tensor("x", (1, 2, 3, 4)))
    names = ["x"]
    for k, value in enumerate(inputs):
        graph.add_tensor(Tensor(f"c{k}", value.shape, "int64", value))
        names.append(f"c{k}")
    graph.add_tensor(Tensor("y", ()))
    graph.nodes.append(Node("node", op, names, ["y"], attrs))
    executor = Executor(graph, default_registry())
    for shape in ((1, 2, 3, 4), (1, 5, 2, 4), (1, 2, 3, 4)):
        x = np.arange(math.prod(shape), dtype=np.float32).reshape(shape)
        got = executor.run({"x": x})["y"]
        assert got.shape == want(x).shape
        np.testing.assert_array_equal(got, want(x))


@pytest.mark.parametrize("attrs", [{"axis": -1}, {"axis": 1, "coerce_2d": True}])
def test_a_prepared_float_softmax_follows_each_input_shape(attrs):
    graph = Graph(inputs=["x"], outputs=["y"])
    graph.add_tensor(Tensor("x", (1, 2)))
    graph.add_tensor(Tensor("y", (1, 2)))
    graph.nodes.append(Node("softmax", "Softmax", ["x"], ["y"], attrs))
    executor, rng = Executor(graph, default_registry()), np.random.default_rng(2)
    for shape in ((1, 2), (3, 4, 5), (1, 2)):
        x = rng.normal(0, 3, shape).astype(np.float32)
        got = executor.run({"x": x})["y"]
        want = nn._softmax_family(nn._softmax)([x], attrs)[0]
        assert got.shape == shape and got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(got.reshape(-1, shape[-1]).sum(axis=1) if not attrs.get("coerce_2d") else
                                   got.reshape(shape[0], -1).sum(axis=1), 1.0, rtol=1e-5)


def test_a_fed_constant_replaces_the_graph_value_in_a_quantized_plan():
    """A plan holds converted constants in place of the graph's own, except where a run feeds that tensor."""
    graph = add_graph(np.array([[0.5, -1.0, 2.0, 0.25]], np.float32))
    executor, x = QuantExecutor(graph, default_registry()), np.array([[0.1, 0.2, -0.3, 1.5]], np.float32)
    other = np.array([[1.0, 1.0, -2.0, 0.0]], np.float32)
    tensors = graph.tensors
    for c, feeds in ((tensors["c"].data, {"x": x}), (other, {"x": x, "c": other})):
        want = _quant.quantized_add(quantize(x, U8), quantize(c, tensors["c"].quant), U8, tensors["c"].quant,
                                    tensors["y"].quant)
        np.testing.assert_array_equal(executor.run(feeds)["y"], dequantize(want, tensors["y"].quant))


# ---------------------------------------------------------------- per-node caches
def test_memo_by_attrs_forgets_an_entry_with_its_object():
    calls = []

    @_common.memo_by_attrs
    def plan(attrs, key, a, b):
        calls.append(key)
        return len(calls)

    attrs, q = {}, QuantParams("u8", 0.1, 3)
    weights = np.zeros(3)
    assert plan(attrs, 1, objects=(q, weights)) == plan(attrs, 1, objects=(q, weights)) == 1
    assert plan(attrs, 1, objects=(q, None)) == 2  # another object set
    del weights
    gc.collect()
    assert len(calls) == 2
    others = [np.zeros(3) for _ in range(50)]  # whichever takes the freed identity gets its own plan
    assert all(plan(attrs, 1, objects=(q, w)) == k + 3 for k, w in enumerate(others))
    attrs["axis"] = 1  # an edited attribute dict is planned again
    assert plan(attrs, 1, objects=(q, None)) == 53


# ---------------------------------------------------------------- float softmax family
def numpy_softmax(v: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(v - v.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


def numpy_log_softmax(v: np.ndarray, axis: int) -> np.ndarray:
    shifted = v - v.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, -1e30, 1e-40, 88.7, -88.7, -104.0, 3.4e38, -3.4e38]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axis"), [((3000, 2), 1), ((2, 500), 0), ((3, 2, 7), 1), ((1, 55, 75, 2), 3),
                                             ((1, 2), 1), ((4, 5), 1)])
def test_softmax_family_equals_numpy_reductions(dtype, shape, axis):
    rng = np.random.default_rng(0)
    for scale in (1.0, 30.0):
        v = (rng.standard_normal(shape) * scale).astype(dtype)
        special = rng.random(shape) < 0.1
        with np.errstate(all="ignore"):
            v[special] = rng.choice(SPECIAL, int(special.sum())).astype(dtype)
            for ours, theirs in ((nn._softmax, numpy_softmax), (nn._log_softmax, numpy_log_softmax)):
                got, want = ours(v.copy(), axis), theirs(v.copy(), axis)
                assert got.dtype == want.dtype and got.shape == want.shape
                np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


# ---------------------------------------------------------------- quantized kernels
def lut_softmax(x: np.ndarray, x_q: QuantParams, o_q: QuantParams, axis: int) -> np.ndarray:
    """The integer softmax with numpy's own reductions (the formulation ``_softmax_quant`` documents)."""
    v = x.astype(np.int64)
    e = nn._exp_table(x_q.qtype, x_q.scale[0])[v.max(axis=axis, keepdims=True) - v]
    total = e.sum(axis=axis, keepdims=True)
    p = ((e << nn.SOFTMAX_PROB_BITS) + total // 2) // total
    return _quant.requantize_channels(p, 2.0**-nn.SOFTMAX_PROB_BITS / o_q.scale[0], o_q.zero_point[0], o_q.qtype)


@pytest.mark.parametrize("qtype", ["u8", "i8", "i16"])
@pytest.mark.parametrize(("shape", "attrs", "axis"), [
    ((1, nn.PAIR_ROWS + 3, 2), {"axis": 2, "coerce_2d": True}, 1),  # two classes per row: one elementwise call
    ((1, 5, 2), {"axis": 2, "coerce_2d": True}, 1),
    ((2, nn.LONG_ROW + 5), {"axis": 1, "coerce_2d": True}, 1),  # long rows: by histograms (8-bit)
    ((2, 2, 3), {"axis": 1}, 1),
    ((3, 7), {"axis": -1}, 1),
    ((1, 2), {"axis": 1}, 1),  # a two-class head
    ((1, 2, 5, 7), {"axis": 1}, 1),  # MTCNN P-Net's classes along the channels
    ((2, 3, 4, 5), {"axis": 2, "coerce_2d": True}, 1),
    ((0, 3), {"axis": 1}, 1),
])
def test_quantized_softmax_equals_numpy_reductions(qtype, shape, attrs, axis):
    rng = np.random.default_rng(1)
    x_q = QuantParams(qtype, 0.05 if qtype == "u8" else 2.0**-4, 120 if qtype == "u8" else 0)
    o_q = QuantParams(qtype, 1 / 256 if qtype == "u8" else 2.0**-7, 0)
    x = storage(rng, x_q, shape)
    x[..., 0] = x[..., 1]  # ties
    view = x.reshape(math.prod(shape[:attrs["axis"] % len(shape)]), -1) if attrs.get("coerce_2d") else x
    want = lut_softmax(view, x_q, o_q, axis).reshape(shape) if x.size else x
    for _ in range(2):  # the second call runs the node's kept plan
        got = nn._softmax_quant([x], [x_q], [o_q], attrs)[0]
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("per_column", [False, True])
@pytest.mark.parametrize("a_shape", [(6,), (1, 6), (2, 3, 6)])
def test_matmul_by_weights_equals_numpy_sums(per_column, a_shape):
    rng = np.random.default_rng(2)
    a_q, o_q = QuantParams("u8", 0.03, 100), QuantParams("u8", 0.2, 128)
    b_q = QuantParams("u8", tuple(rng.uniform(0.01, 0.05, 4)), tuple(rng.integers(0, 256, 4)), axis=1) \
        if per_column else QuantParams("u8", 0.02, 130)
    a, b = storage(rng, a_q, a_shape), storage(rng, b_q, (6, 4))
    zero_b = np.asarray(b_q.zero_point, np.int64)
    acc = (a.astype(np.int64) - a_q.zero_point[0]) @ (b.astype(np.int64) - zero_b)
    m = a_q.scale[0] * np.asarray(b_q.scale) / o_q.scale[0]
    want = fixedpoint.requantize(acc, m, o_q.zero_point[0], "u8")
    for _ in range(2):
        np.testing.assert_array_equal(matmul._quant_kernel([a, b], [a_q, b_q], [o_q], {})[0], want)


@pytest.mark.parametrize("qtype", ["u8", "i8"])
@pytest.mark.parametrize(("a_shape", "k", "m"), [((1, 576), 576, 128), ((1, 1152), 1152, 256), ((5, 300), 300, 70),
                                                 ((2, 3, 64), 64, 33), ((1, 300), 300, 70), ((1, 7), 7, 40),
                                                 ((1, 4096), 4096, 1100)])  # a GEMV large enough for the pool
def test_matmul_by_weights_on_the_8_bit_gemm_equals_integer_sums(qtype, a_shape, k, m):
    """Fully connected layers of MTCNN's sizes: the 8-bit GEMM's int32 sums, requantized per column, are the
    integer reference's codes."""
    rng = np.random.default_rng(k)
    lo, hi, _ = QTYPES[qtype]
    a_q = QuantParams(qtype, 0.03, lo + 100)
    b_q = QuantParams(qtype, tuple(rng.uniform(0.01, 0.05, m)), tuple(rng.integers(lo, hi + 1, m)), axis=1)
    a, b = storage(rng, a_q, a_shape), storage(rng, b_q, (k, m))
    acc = (a.astype(np.int64) - a_q.zero_point[0]) @ (b.astype(np.int64) - np.asarray(b_q.zero_point, np.int64))
    o_q = QuantParams(qtype, 0.03 * 0.05 * float(np.abs(acc).max()) / 100, lo + 128)  # the sums span the codes
    want = fixedpoint.requantize(acc, a_q.scale[0] * np.asarray(b_q.scale) / o_q.scale[0], o_q.zero_point[0], qtype)
    got = matmul._quant_kernel([a, b], [a_q, b_q], [o_q], {})[0]
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) > 20
    stages = quant_stages({}, o_q, None)
    eight_bit = matmul.int8_by_weights(_quant.weight_plan(b, b_q, a_q, 1)[0], a_q, np.ones(m), stages,
                                       compiled_post(stages, None))
    assert (eight_bit is not None) == bool(matmul._native.int8_gemm())


@pytest.mark.parametrize(("a_shape", "b_shape"), [((1, 128), (128,)), ((2, 3, 4), (1,)), ((4, 1), (1, 3)),
                                                  ((2, 3), (2, 3)), ((1,), (2, 5))])
def test_quantized_add_broadcasts_as_numpy(a_shape, b_shape):
    rng = np.random.default_rng(3)
    a_q, b_q, o_q = QuantParams("u8", 0.05, 120), QuantParams("u8", 0.02, 3), QuantParams("u8", 0.06, 90)
    a, b = storage(rng, a_q, a_shape), storage(rng, b_q, b_shape)
    a_full, b_full = (np.ascontiguousarray(v) for v in np.broadcast_arrays(a, b))
    for sign in (1, -1):
        got = _quant.quantized_add(a, b, a_q, b_q, o_q, sign)
        np.testing.assert_array_equal(got, _quant.quantized_add(a_full, b_full, a_q, b_q, o_q, sign))


@pytest.mark.parametrize(("a_shape", "b_shape"), [((1, 40, 12), (1, 40, 1)), ((1, 1, 12), (1, 5, 1)), ((3,), ()),
                                                 ((2, 3, 4), (3, 1)), ((2, 3, 4), (2, 3, 4))])
@pytest.mark.parametrize("float_divisor", [False, True])
@pytest.mark.parametrize("o_q", [QuantParams("u8", 0.03, 100), QuantParams("i8", 0.02, -7)])
def test_quantized_div_equals_elementwise_multipliers(a_shape, b_shape, float_divisor, o_q):
    """One multiplier per divisor value (broadcast by the requantization, on the compiled kernel for one per
    index of one axis) equals one per element, quotients far beyond the output's range included."""
    rng = np.random.default_rng(4)
    a_q = QuantParams("u8", 0.05, 120)
    a = storage(rng, a_q, a_shape)
    if float_divisor:
        b_q, b = None, rng.choice([-4.0, -0.3, 0.5, 1.7, 2.0, 1e-4, -3e-5], b_shape).astype(np.float32)
        real_b = b.astype(np.float64)
    else:
        b_q = QuantParams("u8", 0.1, 50)
        b = rng.choice(np.r_[0:50, 51:256], b_shape).astype(np.uint8)
        real_b = dequantize(b, b_q)
    acc, m = np.broadcast_arrays((a.astype(np.int64) - a_q.zero_point[0]),
                                 a_q.scale[0] / (real_b * o_q.scale[0]))
    shift = elementwise.DIV_LEFT_SHIFT
    out = fixedpoint.requantize(np.abs(acc) << shift, np.abs(m) / 2**shift, 0, "i32")
    lo, hi, dtype = QTYPES[o_q.qtype]
    want = np.clip(np.where((acc < 0) != (m < 0), -out.astype(np.int64), out) + o_q.zero_point[0], lo, hi)
    got = elementwise._div_quant([a, b], [a_q, b_q], [o_q], {})[0]
    np.testing.assert_array_equal(got, want.astype(dtype))
    assert got.dtype == dtype
    if float_divisor and b.size >= 24:
        assert out.max() > 2**15  # quotients beyond the 16-bit magnitudes, which clip the same


@pytest.mark.parametrize("q", [QuantParams("u8", 0.05, 120), QuantParams("i8", 2.0**-5, 0),
                               QuantParams("i16", 2.0**-9, 0), QuantParams("u8", (0.1, 0.2), (3, 4), axis=1)])
def test_dequantizer_equals_dequantize(q):
    rng = np.random.default_rng(5)
    for shape in [(2, 2, 5), (1, 2), (40, 2, 350)] + ([] if q.axis is not None else [(), (0, 2)]):
        v = storage(rng, q, shape)
        for value in (v, v[..., ::-1] if v.ndim else v):  # and a strided view
            got = qexecutor.dequantizer(q)(value)
            want = dequantize(value, q)
            assert type(got) is type(want) and got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
    other = np.arange(-3, 3, dtype=np.int32).reshape(3, 2)  # storage of another integer type: the plain form
    np.testing.assert_array_equal(qexecutor.dequantizer(q)(other), dequantize(other, q))


def table_of_codes(fn, x_q: QuantParams, o_q: QuantParams, x: np.ndarray) -> np.ndarray:
    """The activation table worked out from scratch, indexed by the codes widened to int64."""
    return _quant.lut_table(fn, x_q, o_q)[x.astype(np.int64) - QTYPES[x_q.qtype][0]]


@pytest.mark.parametrize("qtype", ["u8", "i8", "i16"])
def test_activation_tables_kept_per_node_equal_fresh_tables(qtype):
    rng = np.random.default_rng(6)
    x_q = QuantParams(qtype, 0.05 if qtype == "u8" else 2.0**-5, 100 if qtype == "u8" else 0)
    o_q = QuantParams(qtype, 0.02 if qtype == "u8" else 2.0**-6, 30 if qtype == "u8" else 0)
    x = storage(rng, x_q, (2, 3, 5))
    leaky = {op.name: op for op in elementwise.OPS}["LeakyRelu"]
    attrs = {"alpha": 0.1}
    for alpha in (0.1, 0.1, 0.3):  # an edited attribute gets its own table
        attrs["alpha"] = alpha
        got = leaky.quant_kernel([x], [x_q], [o_q], attrs)[0]
        np.testing.assert_array_equal(got, table_of_codes(lambda r, a=alpha: np.where(r < 0, r * a, r), x_q, o_q, x))
    low, high = np.array(-0.5, np.float32), quantize(np.array(0.75), x_q)
    for bounds, bounds_q in (([low], [None]), ([low, high], [None, x_q]), ([None, high], [None, x_q])):
        got = elementwise._clip_quant([x, *bounds], [x_q, *bounds_q], [o_q], {})[0]
        real = [None if b is None else b if q is None else dequantize(b, q) for b, q in zip(bounds, bounds_q)]
        np.testing.assert_array_equal(got, table_of_codes(lambda r, b=real: elementwise._clip_kernel([r, *b], {})[0],
                                                          x_q, o_q, x))


# ---------------------------------------------------------------- data movement
def test_reshape_flatten_transpose_shapes():
    x = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    y = tensor._reshape_kernel([x, np.array([0, -1, 4], np.int64)], {})[0]
    assert y.shape == (1, 6, 4) and np.shares_memory(x, y)
    assert tensor._flatten_kernel([x], {"axis": -1})[0].shape == (6, 4)
    t = tensor._transpose_kernel([x], {"perm": [0, 2, 3, 1]})[0]
    np.testing.assert_array_equal(t, np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    assert t.flags.c_contiguous
    np.testing.assert_array_equal(tensor._transpose_kernel([x], {})[0], x.T)
    with pytest.raises(Exception, match="not a permutation"):
        tensor._transpose_kernel([x], {"perm": [0, 0, 1, 2]})


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize(("big", "small"), [((1, 64, 80, 3), (1, 1, 1, 3)), ((1, 64, 80, 3), (3,)), ((2, 40, 4), (1, 4)),
                                            ((1, 9, 9, 3), (1, 1, 1, 3))])
def test_binary_ops_with_one_value_per_channel_last_equal_numpy_broadcasting(op, big, small):
    """A large channels-last array and one value per channel (an NHWC picture's normalization), either order: the
    bits of numpy's own broadcasting."""
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 255, big).astype(np.float32)
    c = rng.uniform(1, 128, small).astype(np.float32)
    kernel = {o.name: o for o in elementwise.OPS}[op].kernel
    fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
    for a, b in ((x, c), (c, x)):
        got = kernel([a, b], {})[0]
        want = fn(a, b)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("qtype", ["u8", "i8"])
@pytest.mark.parametrize("rows", [1, 4])
@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 1.0), (0.5, 2.0)])
def test_fully_connected_gemm_on_the_8_bit_gemm_equals_integer_sums(qtype, rows, alpha, beta):
    """A PyTorch Linear as Gemm (transB=1, C one int32 per column) of a classifier head's size: the 8-bit GEMM's
    (one row: the GEMV's) sums plus C, requantized per column, are the integer reference's codes."""
    rng = np.random.default_rng(rows)
    lo, hi, _ = QTYPES[qtype]
    k, n = 1280, 100
    a_q = QuantParams(qtype, 0.03, lo + 100)
    b_q = QuantParams(qtype, tuple(rng.uniform(0.01, 0.05, n)), tuple(rng.integers(lo, hi + 1, n)), axis=0)
    a, b = storage(rng, a_q, (rows, k)), storage(rng, b_q, (n, k))
    c = rng.integers(-30000, 30000, n).astype(np.int32)
    acc = (a.astype(np.int64) - a_q.zero_point[0]) @ (b.astype(np.int64) - np.asarray(b_q.zero_point, np.int64)[:, None]).T
    acc = acc + nn._gemm_bias(c, {"alpha": alpha, "beta": beta})
    o_q = QuantParams(qtype, alpha * 0.03 * 0.05 * float(np.abs(acc).max()) / 100, lo + 128)
    want = fixedpoint.requantize(acc, alpha * a_q.scale[0] * np.asarray(b_q.scale) / o_q.scale[0], o_q.zero_point[0],
                                 qtype)
    attrs = {"transB": 1, "alpha": alpha, "beta": beta}
    np.testing.assert_array_equal(nn._gemm_quant([a, b, c], [a_q, b_q, None], [o_q], attrs)[0], want)
    assert len(np.unique(want)) > 20
    assert (nn._gemm_by_weights(attrs, objects=(b, c, a_q, b_q, o_q)) is not None) == bool(nn._native.int8_gemm())


def test_a_fully_connected_matmul_runs_any_number_of_rows_on_one_plan():
    """One prepared node (its weights transposed or packed once) takes inputs of 1, 4 and 2x3 rows: each row's
    result is the same whichever batch it comes in, float (with the bias) and quantized (with the bias codes
    as every row's residual)."""
    rng = np.random.default_rng(5)
    k, n = 40, 24
    b, bias = rng.standard_normal((k, n)).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    attrs = {"activation": {"op": "Relu"}}
    rows = rng.standard_normal((6, k)).astype(np.float32)
    one = matmul._kernel([rows[:1], b, bias], attrs)[0]
    four = matmul._kernel([rows[:4], b, bias], attrs)[0]
    batched = matmul._kernel([rows.reshape(2, 3, k), b, bias], attrs)[0]
    assert one.shape == (1, n) and four.shape == (4, n) and batched.shape == (2, 3, n)
    compiled = getattr(matmul._native, "__name__", "") == "rknn_core._native"  # the numpy twin: BLAS's own order
    same = np.testing.assert_array_equal if compiled else functools.partial(np.testing.assert_allclose, rtol=1e-6)
    same(four[:1], one)
    same(batched.reshape(6, n)[:4], four)
    np.testing.assert_allclose(four, np.maximum(rows[:4] @ b + bias, 0), rtol=1e-5, atol=1e-5)

    a_q, b_q, o_q = QuantParams("u8", 0.03, 100), QuantParams("u8", 0.02, 130), QuantParams("u8", 0.1, 120)
    bias_q, mm_q = QuantParams("u8", 0.05, 128), QuantParams("u8", 0.08, 110)
    q_attrs = {"add_conv_q": {"qtype": "u8", "scale": list(mm_q.scale), "zero_point": list(mm_q.zero_point)}}
    a, bq = storage(rng, a_q, (6, k)), storage(rng, b_q, (k, n))
    codes = storage(rng, bias_q, (n,))
    outs = [matmul._quant_kernel([x, bq, codes], [a_q, b_q, bias_q], [o_q], q_attrs)[0]
            for x in (a[:1], a[:4], a.reshape(2, 3, k))]
    np.testing.assert_array_equal(outs[1][:1], outs[0])
    np.testing.assert_array_equal(outs[2].reshape(6, n)[:4], outs[1])
    sums = (a.astype(np.int64) - 100) @ (bq.astype(np.int64) - 130)
    want = _quant.quantized_add(fixedpoint.requantize(sums, 0.03 * 0.02 / 0.08, 110, "u8"),
                                np.broadcast_to(codes, (6, n)), mm_q, bias_q, o_q)
    np.testing.assert_array_equal(outs[2].reshape(6, n), want)
