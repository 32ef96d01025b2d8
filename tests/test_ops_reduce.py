"""Reduce* and ArgMax/ArgMin against onnxruntime, across the opsets where their signatures changed."""

import numpy as np
import onnxruntime
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx_util import check_against_ort, run_rknn, save_model, single_op

REDUCE_OPS = ["ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]
# the opset where `axes` became an input (ReduceSum 13, the rest 18)
AXES_INPUT_SINCE = {"ReduceSum": 13}


def _data(seed, shape, op):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    if op == "ReduceProd":
        x = (np.sign(x) * rng.uniform(0.5, 1.5, shape)).astype(np.float32)  # no under/overflow
    if op == "ReduceLogSum":
        x = np.abs(x) + np.float32(0.1)  # positive sums
    return x


def _reduce_model(op, x, axes, opset, **attrs):
    if axes is None:
        return single_op(op, {"x": x}, opset=opset, **attrs)
    if opset < AXES_INPUT_SINCE.get(op, 18):
        return single_op(op, {"x": x}, opset=opset, axes=axes, **attrs)
    return single_op(op, {"x": x}, {"axes": np.asarray(axes, np.int64)}, opset=opset, **attrs)


@st.composite
def shape_and_axes(draw):
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank)))
    axes = draw(st.one_of(st.none(), st.lists(st.integers(-rank, rank - 1), min_size=1, max_size=rank,
                                              unique_by=lambda a: a % rank)))
    return shape, axes


@pytest.mark.parametrize("op", REDUCE_OPS)
@settings(max_examples=25, deadline=None)
@given(sa=shape_and_axes(), keepdims=st.sampled_from([0, 1]), opset=st.sampled_from([9, 11, 13, 18]),
       seed=st.integers(0, 2**16))
def test_reduce(op, sa, keepdims, opset, seed):
    shape, axes = sa
    x = _data(seed, shape, op)
    out = check_against_ort(_reduce_model(op, x, axes, opset, keepdims=keepdims), {"x": x})
    assert out[0].ndim == (len(shape) if keepdims else len(shape) - len(axes or shape))


@pytest.mark.skipif(tuple(map(int, onnxruntime.__version__.split(".")[:2])) < (1, 24),
                    reason="onnxruntime before 1.24 (the newest for Python 3.10 is 1.23) refuses empty axes")
@pytest.mark.parametrize("op", ["ReduceMean", "ReduceSum", "ReduceMax"])
def test_reduce_noop_with_empty_axes(op):
    x = _data(0, (2, 3, 4), op)
    out = check_against_ort(single_op(op, {"x": x}, opset=18, noop_with_empty_axes=1), {"x": x})
    np.testing.assert_array_equal(out[0], x)
    # an empty constant axes tensor with noop: identity; without noop: all axes
    out = check_against_ort(single_op(op, {"x": x}, {"axes": np.zeros(0, np.int64)}, opset=18,
                                      noop_with_empty_axes=1), {"x": x})
    np.testing.assert_array_equal(out[0], x)
    out = check_against_ort(single_op(op, {"x": x}, {"axes": np.zeros(0, np.int64)}, opset=18, keepdims=0),
                            {"x": x})
    assert out[0].shape == ()


def test_reduce_sum_opset13_axes_input_and_large_sum():
    x = np.random.default_rng(3).standard_normal((4, 5000)).astype(np.float32) + 100
    check_against_ort(single_op("ReduceSum", {"x": x}, {"axes": np.array([1], np.int64)}, opset=13), {"x": x})
    check_against_ort(single_op("ReduceMean", {"x": x}, opset=9, axes=[1], keepdims=0), {"x": x})


def test_reduce_integer_input():
    x = np.random.default_rng(4).integers(-50, 50, (3, 4, 5)).astype(np.int64)
    for op in ("ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"):
        y = np.random.default_rng(5).integers(-3, 4, (3, 4, 5)).astype(np.int64) if op == "ReduceProd" else x
        check_against_ort(_reduce_model(op, y, [1, -1], 13), {"x": y})


def test_reduce_max_with_infinities():
    x = np.array([[-np.inf, 1.0, 2.0], [np.inf, -1.0, 0.0]], np.float32)
    out = check_against_ort(single_op("ReduceMax", {"x": x}, opset=13, axes=[1], keepdims=0), {"x": x})
    np.testing.assert_array_equal(out[0], [2.0, np.inf])


def test_reduce_repeated_axes_refused(tmp_path, caplog):
    x = np.zeros((2, 3), np.float32)
    path = save_model(single_op("ReduceSum", {"x": x}, {"axes": np.array([1, -1], np.int64)}, opset=13), str(tmp_path))
    with pytest.raises(AssertionError, match="failed"):
        run_rknn(path, {"x": x})
    assert "repeat an axis" in caplog.text


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=4), data=st.data(), keepdims=st.sampled_from([0, 1]),
       last=st.sampled_from([0, 1]), ties=st.booleans(), opset=st.sampled_from([11, 12, 13]),
       seed=st.integers(0, 2**16))
def test_arg(op, shape, data, keepdims, last, ties, opset, seed):
    rank = len(shape)
    axis = data.draw(st.integers(-rank, rank - 1))
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 3, shape) if ties else rng.standard_normal(shape)).astype(np.float32)
    attrs = {"axis": axis, "keepdims": keepdims}
    if opset >= 12:
        attrs["select_last_index"] = last
    out = check_against_ort(single_op(op, {"x": x}, opset=opset, **attrs), {"x": x})
    assert out[0].dtype == np.int64


def test_arg_default_axis_and_int_input():
    x = np.random.default_rng(6).integers(0, 4, (5, 3, 2)).astype(np.int32)
    out = check_against_ort(single_op("ArgMax", {"x": x}, opset=13), {"x": x})
    assert out[0].shape == (1, 3, 2)
    out = check_against_ort(single_op("ArgMin", {"x": x}, opset=13, axis=2, keepdims=0, select_last_index=1), {"x": x})
    assert out[0].shape == (5, 3)
