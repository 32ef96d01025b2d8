"""Every op of ops/elementwise.py against onnxruntime: broadcasting, dtypes, attributes and edge values."""

import tempfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes
from onnx_util import check_against_ort, run_ort, run_rknn, save_model, single_op

EXAMPLES = settings(max_examples=40, deadline=None)


def _rand(rng, shape, dtype=np.float32, low=-3.0, high=3.0):
    if np.issubdtype(dtype, np.integer):
        return rng.integers(int(low), int(high) + 1, shape).astype(dtype)
    return rng.uniform(low, high, shape).astype(dtype)


def check_exact(model, inputs, rtol=1e-5):
    """Both runtimes, comparing inf and nan positions exactly (for overflow and domain edges)."""
    with tempfile.TemporaryDirectory(prefix="rknn-test-") as folder:
        path = save_model(model, folder)
        ref = run_ort(path, inputs)
        ours = run_rknn(path, inputs)
    for a, b in zip(ours, ref):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=0, equal_nan=True)
    return ours


def _two(op, a, b, opset=17, const_b=False, **attrs):
    if const_b:
        return single_op(op, {"a": a}, {"b": b}, opset=opset, **attrs), {"a": a}
    return single_op(op, {"a": a, "b": b}, opset=opset, **attrs), {"a": a, "b": b}


# ---- binary arithmetic and comparisons ----

FLOAT_BINARY = ["Add", "Sub", "Mul", "Div", "Equal", "Greater", "Less"]


@pytest.mark.parametrize("op", FLOAT_BINARY)
@EXAMPLES
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=4, max_side=4), const_b=st.booleans(),
       dtype=st.sampled_from([np.float32, np.int32, np.int64]), seed=st.integers(0, 2**16))
def test_binary(op, shapes, const_b, dtype, seed):
    rng = np.random.default_rng(seed)
    (sa, sb), result = shapes
    a = _rand(rng, sa, dtype, -20, 20)
    b = _rand(rng, sb, dtype, -20, 20)
    if op == "Div":
        b = np.where(b == 0, 7, b).astype(dtype)  # integer division by zero is undefined
    if op == "Equal" and dtype == np.float32:
        b = np.round(b)  # make some equal elements
        a = np.round(a)
    model, inputs = _two(op, a, b, const_b=const_b)
    out = check_against_ort(model, inputs)
    assert out[0].shape == result


@EXAMPLES
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, max_side=4), dtype=st.sampled_from([np.int32, np.int64]),
       seed=st.integers(0, 2**16))
def test_integer_division_truncates_toward_zero(shapes, dtype, seed):
    rng = np.random.default_rng(seed)
    (sa, sb), _ = shapes
    a = rng.integers(-100, 100, sa).astype(dtype)
    b = rng.choice(np.array([-7, -3, -2, -1, 1, 2, 3, 7], dtype), sb)
    out = check_against_ort(*_two("Div", a, b))
    np.testing.assert_array_equal(out[0], np.trunc(a / b).astype(dtype))


def test_integer_division_of_large_int64():
    a = np.array([2**62 + 1, -(2**62) - 3, 9007199254740993, -9007199254740993], np.int64)
    b = np.array([3, 3, 1, -1], np.int64)
    # the large operand is a constant: inference feeds pass through float32 (its data_type argument)
    out = check_against_ort(single_op("Div", {"b": b}, {"a": a}, input_names=["a", "b"]), {"b": b})
    np.testing.assert_array_equal(out[0][:2], [1537228672809129301, -1537228672809129302])
    assert out[0][2] == out[0][3] == 9007199254740993


def test_float_division_by_zero():
    a = np.array([1.0, -1.0, 0.0, 2.0], np.float32)
    b = np.array([0.0, 0.0, 0.0, -0.0], np.float32)
    out = check_exact(*_two("Div", a, b))
    assert np.isinf(out[0][0]) and np.isnan(out[0][2])


@EXAMPLES
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=4, max_side=4), seed=st.integers(0, 2**16))
def test_pow_float(shapes, seed):
    rng = np.random.default_rng(seed)
    (sa, sb), _ = shapes
    a = rng.uniform(0.1, 4, sa).astype(np.float32)
    b = rng.uniform(-2, 3, sb).astype(np.float32)
    check_against_ort(*_two("Pow", a, b))


def test_pow_negative_base_integer_exponent_and_mixed_types():
    a = np.array([[-2.0, -1.5, 3.0], [0.5, -3.0, 2.0]], np.float32)
    check_against_ort(*_two("Pow", a, np.array([2.0, 3.0, -1.0], np.float32)))
    check_against_ort(*_two("Pow", a, np.array([2, 3, -1], np.int64), const_b=True))  # float base, int exponent
    ints = np.array([[-2, 3, 4], [5, -1, 2]], np.int64)
    out = check_against_ort(*_two("Pow", ints, np.array([2, 3, 0], np.int64)))
    assert out[0].dtype == np.int64
    check_against_ort(*_two("Pow", np.abs(ints).astype(np.int32), np.array([2.0, 1.5, 0.5], np.float32)))  # int base, float exp


@pytest.mark.parametrize("exponent", [2.0, 3.0])
def test_pow_by_two_or_three_is_onnxruntimes_product_bit_for_bit(exponent):
    """A constant exponent of exactly 2 or 3 multiplies (x*x, x*x*x) as onnxruntime does: the same bits,
    where numpy's power is off in the last bit for some values."""
    a = ((np.random.default_rng(3).random((4, 5000)) - 0.5) * 200).astype(np.float32)
    model, inputs = _two("Pow", a, np.array(exponent, np.float32), const_b=True)
    with tempfile.TemporaryDirectory(prefix="rknn-test-") as folder:
        path = save_model(model, folder)
        ours, ref = run_rknn(path, inputs)[0], run_ort(path, inputs)[0]
    np.testing.assert_array_equal(ours, ref)
    assert not np.array_equal(ref, np.power(a, np.float32(exponent)))  # the case is one numpy rounds otherwise


def test_pow_nan_for_negative_base_fractional_exponent():
    check_exact(*_two("Pow", np.array([-2.0, 4.0], np.float32), np.array([0.5, 0.5], np.float32)))


def test_compare_with_infinities_and_nan():
    a = np.array([np.inf, -np.inf, np.nan, 1.0, np.nan], np.float32)
    b = np.array([np.inf, 0.0, np.nan, np.nan, 1.0], np.float32)
    for op in ("Equal", "Greater", "Less"):
        out = check_against_ort(*_two(op, a, b))
        assert out[0].dtype == bool


# ---- variadic ----

@pytest.mark.parametrize("op", ["Sum", "Max", "Min", "Mean"])
@EXAMPLES
@given(n=st.integers(1, 4), data=st.data(), seed=st.integers(0, 2**16))
def test_variadic(op, n, data, seed):
    shapes, result = data.draw(mutually_broadcastable_shapes(num_shapes=n, min_dims=1, max_dims=4, max_side=4))
    rng = np.random.default_rng(seed)
    inputs = {f"x{i}": _rand(rng, s) for i, s in enumerate(shapes)}
    out = check_against_ort(single_op(op, inputs, opset=13), inputs)
    assert out[0].shape == result


@pytest.mark.parametrize("op", ["Max", "Min"])  # onnxruntime has no integer Sum
def test_variadic_integer_and_constant_operand(op):
    rng = np.random.default_rng(1)
    a = rng.integers(-9, 9, (2, 3)).astype(np.int32)
    c = rng.integers(-9, 9, (3,)).astype(np.int32)
    check_against_ort(single_op(op, {"a": a}, {"c": c}, opset=13), {"a": a})


def test_variadic_opset6_mean_broadcast():
    rng = np.random.default_rng(2)
    inputs = {"a": _rand(rng, (2, 1, 4)), "b": _rand(rng, (3, 1)), "c": _rand(rng, (1,))}
    check_against_ort(single_op("Mean", inputs, opset=8), inputs)


# ---- unary ----

# op -> (low, high) input range, attribute sets, opset
UNARY = {
    "Relu": ((-5, 5), [{}], 14),
    "LeakyRelu": ((-5, 5), [{}, {"alpha": 0.3}, {"alpha": -0.5}], 16),
    "Sigmoid": ((-30, 30), [{}], 13),
    "Tanh": ((-30, 30), [{}], 13),
    "HardSigmoid": ((-6, 6), [{}, {"alpha": 0.5, "beta": 0.1}], 6),
    "HardSwish": ((-6, 6), [{}], 14),
    "Exp": ((-20, 20), [{}], 13),
    "Log": ((1e-3, 50), [{}], 13),
    "Sqrt": ((0, 50), [{}], 13),
    "Neg": ((-5, 5), [{}], 13),
    "Abs": ((-5, 5), [{}], 13),
    "Reciprocal": ((0.1, 5), [{}], 13),
    "Floor": ((-5, 5), [{}], 13),
    "Ceil": ((-5, 5), [{}], 13),
    "Erf": ((-4, 4), [{}], 13),
    "Elu": ((-5, 5), [{}, {"alpha": 0.3}], 6),
    "Selu": ((-5, 5), [{}, {"alpha": 2.0, "gamma": 0.5}], 6),
    "Softplus": ((-30, 30), [{}], 1),
    "Identity": ((-5, 5), [{}], 16),
}


@pytest.mark.parametrize("op", sorted(UNARY))
@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), which=st.integers(0, 2), seed=st.integers(0, 2**16))
def test_unary(op, shape, which, seed):
    (low, high), attr_sets, opset = UNARY[op]
    attrs = attr_sets[which % len(attr_sets)]
    x = np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)
    out = check_against_ort(single_op(op, {"x": x}, opset=max(opset, 7), **attrs), {"x": x})
    assert out[0].dtype == np.float32 and out[0].shape == tuple(shape)


@pytest.mark.parametrize("op", ["Sigmoid", "Tanh", "Softplus", "Elu", "Selu", "Erf", "HardSigmoid", "HardSwish",
                                "LeakyRelu", "Relu"])
def test_unary_large_magnitudes(op):
    x = np.array([-1e30, -1000.0, -100.0, -88.7, -20.0, 0.0, -0.0, 20.0, 88.7, 100.0, 1000.0, 1e30], np.float32)
    out = check_against_ort(single_op(op, {"x": x}, opset=14), {"x": x})
    assert np.isfinite(out[0][1:-1]).all()
    if op == "Sigmoid":
        assert out[0][0] == 0.0 and out[0][-1] == 1.0


@pytest.mark.parametrize("op,x", [
    ("Exp", [-1000.0, -100.0, 0.0, 88.0, 89.0, 1000.0, np.inf, -np.inf, np.nan]),
    ("Log", [0.0, -0.0, -1.0, 1e-38, 1.0, np.inf, np.nan]),
    ("Sqrt", [-1.0, 0.0, -0.0, 4.0, np.inf, np.nan]),
    ("Reciprocal", [0.0, -0.0, 2.0, -4.0, np.inf]),
    ("Abs", [-np.inf, -0.0, np.nan, 3.0]),
    ("Neg", [np.inf, 0.0, np.nan, -3.0]),
    ("Floor", [-2.5, -0.5, 0.5, 2.5, np.inf, np.nan]),
    ("Ceil", [-2.5, -0.5, 0.5, 2.5, -np.inf, np.nan]),
    ("Relu", [-np.inf, np.inf, -0.0, 1.0]),
    ("Sigmoid", [-np.inf, np.inf, 0.0]),
    ("Tanh", [-np.inf, np.inf, 0.0]),
])
def test_unary_special_values(op, x):
    x = np.asarray(x, np.float32)
    check_exact(single_op(op, {"x": x}, opset=13), {"x": x})


@pytest.mark.parametrize("op", ["Neg", "Abs", "Relu", "Identity"])
def test_unary_integer(op):
    x = np.array([[-5, 0, 3], [7, -128, 127]], np.int32)
    out = check_against_ort(single_op(op, {"x": x}, opset=14), {"x": x})
    assert out[0].dtype == np.int32


def test_unary_float64():
    x = np.linspace(-3, 3, 13).reshape(1, 13).astype(np.float64)
    for op in ("Exp", "Tanh", "Sigmoid", "Floor", "Relu"):
        out = check_against_ort(single_op(op, {"x": x}, opset=13), {"x": x})
        assert out[0].dtype == np.float64


# ---- Clip ----

@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), lo=st.one_of(st.none(), st.floats(-3, 0, width=32)),
       hi=st.one_of(st.none(), st.floats(0, 3, width=32)), opset=st.sampled_from([7, 10, 11, 12, 13]),
       seed=st.integers(0, 2**16))
def test_clip(shape, lo, hi, opset, seed):
    x = np.random.default_rng(seed).uniform(-5, 5, shape).astype(np.float32)
    if opset < 11:
        attrs = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
        model = single_op("Clip", {"x": x}, opset=opset, **attrs)
    else:
        init = {k: np.asarray(v, np.float32) for k, v in (("lo", lo), ("hi", hi)) if v is not None}
        names = ["x", "lo" if lo is not None else "", "hi" if hi is not None else ""]
        while names[-1] == "":
            names.pop()
        model = single_op("Clip", {"x": x}, init, opset=opset, input_names=names)
    out = check_against_ort(model, {"x": x})
    if lo is not None:
        assert out[0].min() >= lo
    if hi is not None:
        assert out[0].max() <= hi


def test_clip_integer_and_no_bounds():
    x = np.arange(-10, 10, dtype=np.int64).reshape(4, 5)
    out = check_against_ort(single_op("Clip", {"x": x}, {"lo": np.array(-3, np.int64), "hi": np.array(4, np.int64)},
                                      opset=13), {"x": x})
    assert out[0].min() == -3 and out[0].max() == 4
    f = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    out = check_against_ort(single_op("Clip", {"x": f}, opset=13), {"x": f})
    np.testing.assert_array_equal(out[0], f)
    out = check_against_ort(single_op("Clip", {"x": f}, opset=7), {"x": f})  # Clip-6 attrs default to +-float max
    np.testing.assert_array_equal(out[0], f)


def test_clip_min_above_max():
    x = np.linspace(-2, 2, 9).astype(np.float32)
    check_against_ort(single_op("Clip", {"x": x}, {"lo": np.array(1.0, np.float32), "hi": np.array(-1.0, np.float32)},
                                opset=13), {"x": x})


def test_clip_with_runtime_bounds():
    x = np.linspace(-2, 2, 9).astype(np.float32)
    inputs = {"x": x, "lo": np.array(-0.5, np.float32), "hi": np.array(1.25, np.float32)}
    check_against_ort(single_op("Clip", inputs, opset=13), inputs)


# ---- PRelu ----

@pytest.mark.parametrize("slope_shape", [(3, 1, 1), (1,), (3, 5, 1), (5,), (1, 3, 1, 1), ()])
@pytest.mark.parametrize("opset", [9, 16])
def test_prelu_broadcast(slope_shape, opset):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    slope = rng.uniform(-1, 1, slope_shape).astype(np.float32)
    out = check_against_ort(single_op("PRelu", {"x": x}, {"slope": slope}, opset=opset), {"x": x})
    assert out[0].shape == x.shape


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 4), hw=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_prelu_per_channel(n, c, hw, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
    slope = rng.uniform(0, 0.5, (c, 1, 1)).astype(np.float32)
    check_against_ort(single_op("PRelu", {"x": x}, {"slope": slope}, opset=9), {"x": x})


def test_prelu_runtime_slope():
    rng = np.random.default_rng(8)
    inputs = {"x": rng.standard_normal((1, 4, 3)).astype(np.float32), "s": rng.standard_normal((4, 1)).astype(np.float32)}
    check_against_ort(single_op("PRelu", inputs, opset=16), inputs)


# ---- Where ----

@settings(max_examples=30, deadline=None)
@given(shapes=mutually_broadcastable_shapes(num_shapes=3, min_dims=1, max_dims=4, max_side=4),
       dtype=st.sampled_from([np.float32, np.int64]), seed=st.integers(0, 2**16))
def test_where(shapes, dtype, seed):
    rng = np.random.default_rng(seed)
    (sc, sa, sb), result = shapes
    inputs = {"c": rng.random(sc) < 0.5, "a": _rand(rng, sa, dtype, -9, 9), "b": _rand(rng, sb, dtype, -9, 9)}
    out = check_against_ort(single_op("Where", inputs, opset=16), inputs)
    assert out[0].shape == result


def test_where_constant_branches():
    c = np.array([[True, False, True], [False, False, True]])
    out = check_against_ort(single_op("Where", {"c": c}, {"a": np.float32(1.5), "b": np.arange(3, dtype=np.float32)},
                                      opset=9), {"c": c})
    np.testing.assert_array_equal(out[0], [[1.5, 1, 1.5], [0, 1, 1.5]])
