"""Pooling, ConvTranspose, Gemm/MatMul, normalizations and the softmax family against onnxruntime."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx_util import check_against_ort, run_ort, save_model, single_op

from rknn_core.ops import nn, pool

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# onnxruntime before 1.25 (the newest for Python 3.10 is 1.23) leaves end pads out of count_include_pad averages
ORT_COUNTS_END_PADS = tuple(map(int, onnxruntime.__version__.split(".")[:2])) >= (1, 25)


def _randn(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


@st.composite
def pool_case(draw, avg: bool):
    """A valid pooling configuration: (input shape, attrs, opset)."""
    rank = draw(st.sampled_from([1, 2]))
    kernel = [draw(st.integers(1, 4)) for _ in range(rank)]
    strides = [draw(st.integers(1, 3)) for _ in range(rank)]
    opset = draw(st.sampled_from([19] if avg else [10, 12, 17]))
    dilations = [draw(st.integers(1, 2)) for _ in range(rank)]
    attrs = {"kernel_shape": kernel, "strides": strides}
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if auto_pad.startswith("SAME"):
        # onnxruntime sizes SAME pooling pads with the undilated kernel (not the ONNX spec); we follow the spec
        dilations = [1] * rank
    if any(d > 1 for d in dilations):
        attrs["dilations"] = dilations
    pads = [0] * (2 * rank)
    if auto_pad == "NOTSET":
        pads = [draw(st.integers(0, k - 1)) for k in kernel * 2]  # onnxruntime wants pads < kernel
        attrs["pads"] = pads
        attrs["ceil_mode"] = draw(st.integers(0, 1))
    else:
        attrs["auto_pad"] = auto_pad
    if avg:
        attrs["count_include_pad"] = draw(st.integers(0, 1))
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    spatial = [draw(st.integers(max(1, e - pads[i] - pads[i + rank]), 12)) for i, e in enumerate(eff)]
    if auto_pad == "VALID":
        assume(all(s >= e for s, e in zip(spatial, eff)))
    if auto_pad.startswith("SAME"):  # onnxruntime fails on (or mis-handles) a negative SAME padding
        assume(all((-(-i // s) - 1) * s + k >= i for i, s, k in zip(spatial, strides, kernel)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *spatial)
    return shape, attrs, opset


@SETTINGS
@given(case=pool_case(avg=False), seed=st.integers(0, 2**16))
def test_maxpool(case, seed):
    shape, attrs, opset = case
    x = _randn(np.random.default_rng(seed), *shape)
    check_against_ort(single_op("MaxPool", {"x": x}, opset=opset, **attrs), {"x": x})


@SETTINGS
@given(case=pool_case(avg=True), seed=st.integers(0, 2**16))
def test_averagepool(case, seed):
    shape, attrs, opset = case
    assume(ORT_COUNTS_END_PADS or not attrs["count_include_pad"])
    x = _randn(np.random.default_rng(seed), *shape)
    check_against_ort(single_op("AveragePool", {"x": x}, opset=opset, **attrs), {"x": x})


@pytest.mark.parametrize("opset", [7, 11])
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_averagepool_older_opsets(opset, count_include_pad):
    x = _randn(np.random.default_rng(opset), 1, 2, 7, 8)
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 2, 1], "count_include_pad": count_include_pad}
    if opset >= 10:
        attrs["ceil_mode"] = 1
    check_against_ort(single_op("AveragePool", {"x": x}, opset=opset, **attrs), {"x": x})


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_maxpool_integer(dtype):
    info = np.iinfo(dtype)
    x = np.random.default_rng(3).integers(info.min, info.max, (1, 3, 7, 6), endpoint=True).astype(dtype)
    check_against_ort(single_op("MaxPool", {"x": x}, opset=12, kernel_shape=[3, 2], strides=[2, 2],
                                pads=[1, 1, 1, 0]), {"x": x})


@pytest.mark.parametrize("storage_order", [0, 1])
@pytest.mark.parametrize("shape,attrs", [
    ((2, 3, 7, 9), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 2, 8, 7), {"kernel_shape": [2, 3], "strides": [2, 1], "pads": [0, 1, 1, 2], "ceil_mode": 1}),
    ((1, 2, 9, 9), {"kernel_shape": [2, 2], "strides": [1, 2], "dilations": [2, 3]}),
    ((2, 2, 11), {"kernel_shape": [3], "strides": [2], "pads": [1, 2]}),
])
def test_maxpool_indices_kernel(shape, attrs, storage_order):
    """The Indices output (computed when the frontend flags the node with _indices)."""
    rng = np.random.default_rng(7)
    x = rng.integers(-3, 4, shape).astype(np.float32)  # many ties: the first maximum must win
    if len(shape) == 3 and storage_order:
        pytest.skip("storage_order is 2-D only in onnxruntime")
    attrs = dict(attrs, storage_order=storage_order)
    ref = run_ort(save_model(single_op("MaxPool", {"x": x}, n_outputs=2, opset=12, **attrs)), {"x": x})
    opdef = next(op for op in pool.OPS if op.name == "MaxPool")
    ours = opdef.kernel([x], dict(attrs, _indices=True))
    np.testing.assert_array_equal(ours[0], ref[0])
    np.testing.assert_array_equal(ours[1], ref[1])


def test_maxpool_indices_end_to_end():
    x = np.random.default_rng(8).integers(-2, 3, (2, 3, 7, 8)).astype(np.float32)
    model = single_op("MaxPool", {"x": x}, n_outputs=2, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    check_against_ort(model, {"x": x})


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"])
@pytest.mark.parametrize("shape", [(2, 3, 7), (1, 4, 5, 6), (1, 2, 3, 4, 5)])
def test_global_pools(op, shape):
    x = _randn(np.random.default_rng(len(shape)), *shape)
    check_against_ort(single_op(op, {"x": x}), {"x": x})


@pytest.mark.parametrize("shape", [(1, 1280, 7, 7), (2, 5, 56, 56), (1, 3, 1, 1)])
def test_float_global_average_is_the_mean_rounded_once(shape):
    """float32 planes are summed in float64 and divided once: the float64 mean rounded to float32 (on 3136
    values as well, where float32 sums drift)."""
    x = np.random.default_rng(shape[1]).uniform(0, 6, shape).astype(np.float32)
    opdef = next(op for op in pool.OPS if op.name == "GlobalAveragePool")
    (got,) = opdef.kernel([x], {})
    want = x.astype(np.float64).mean(axis=(2, 3), keepdims=True)
    assert got.dtype == np.float32 and got.shape == (*shape[:2], 1, 1)
    np.testing.assert_array_equal(got, want.astype(np.float32))


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 0, 1, 1]},
    {"kernel_shape": [2, 2], "p": 1},
    {"kernel_shape": [3], "p": 3, "strides": [2]},
])
def test_lppool(attrs):
    rank = len(attrs["kernel_shape"])
    x = _randn(np.random.default_rng(rank), *((1, 3, 8, 7)[:2 + rank]))
    check_against_ort(single_op("LpPool", {"x": x}, opset=11, **attrs), {"x": x})


# --- ConvTranspose -------------------------------------------------------------------------------

@st.composite
def deconv_case(draw):
    rank = draw(st.sampled_from([1, 2]))
    group = draw(st.sampled_from([1, 1, 2, 3]))
    cg, mg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 4)) for _ in range(rank)]
    strides = [draw(st.integers(1, 3)) for _ in range(rank)]
    dilations = [draw(st.integers(1, 2)) for _ in range(rank)]
    spatial = [draw(st.integers(1, 7)) for _ in range(rank)]
    attrs = {"strides": strides, "group": group}
    if any(d > 1 for d in dilations):
        attrs["dilations"] = dilations
    if draw(st.booleans()):
        attrs["kernel_shape"] = kernel
    out_pad = [draw(st.integers(0, s - 1)) for s in strides]  # onnxruntime wants output_padding < stride
    if any(out_pad):
        attrs["output_padding"] = out_pad
    full = [(i - 1) * s + p + (k - 1) * d + 1 for i, s, p, k, d in zip(spatial, strides, out_pad, kernel, dilations)]
    mode = draw(st.sampled_from(["pads", "pads", "output_shape", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if mode == "pads":
        pads = [draw(st.integers(0, 3)) for _ in range(2 * rank)]
        assume(all(f - pads[i] - pads[i + rank] >= 1 for i, f in enumerate(full)))
        attrs["pads"] = pads
    elif mode == "output_shape":
        attrs["output_shape"] = [draw(st.integers(max(1, f - 4), f)) for f in full]
    else:
        attrs["auto_pad"] = mode
    shape = (draw(st.integers(1, 2)), cg * group, *spatial)
    return shape, (cg * group, mg, *kernel), draw(st.booleans()), attrs


@SETTINGS
@given(case=deconv_case(), seed=st.integers(0, 2**16))
def test_conv_transpose(case, seed):
    shape, w_shape, with_bias, attrs = case
    rng = np.random.default_rng(seed)
    x = _randn(rng, *shape)
    inits = {"w": _randn(rng, *w_shape)}
    if with_bias:
        inits["b"] = _randn(rng, w_shape[1] * attrs["group"])
    check_against_ort(single_op("ConvTranspose", {"x": x}, inits, **attrs), {"x": x})


@pytest.mark.parametrize(("kernel", "attrs"), [((2, 2), {}), ((4, 4), {"pads": [1, 0, 2, 3]}),
                                               ((2, 3), {"output_shape": [11, 16]})])
def test_conv_transpose_with_kernel_equal_to_strides_weaves_a_1x1_conv(kernel, attrs):
    """PP-OCR det's upsampling (2x2 stride 2): the float 1x1-Conv-and-weave form against onnxruntime."""
    rng = np.random.default_rng(sum(kernel))
    x = _randn(rng, 2, 6, 6, 6)
    inits = {"w": _randn(rng, 6, 5, *kernel), "b": _randn(rng, 5)}
    model = single_op("ConvTranspose", {"x": x}, inits, strides=list(kernel), **attrs)
    out = check_against_ort(model, {"x": x})
    assert out[0].shape[:2] == (2, 5)
    assert nn._tap_plan(x.shape, inits["w"].shape, {"strides": list(kernel), **attrs}) is not None


# --- Gemm / MatMul -------------------------------------------------------------------------------

@SETTINGS
@given(m=st.integers(1, 6), k=st.integers(1, 6), n=st.integers(1, 6), trans_a=st.integers(0, 1),
       trans_b=st.integers(0, 1), alpha=st.sampled_from([1.0, 0.5, -2.0]), beta=st.sampled_from([1.0, 0.25, 3.0]),
       c_kind=st.sampled_from(["none", "scalar", "n", "1n", "m1", "mn"]), opset=st.sampled_from([9, 11, 13, 17]),
       b_const=st.booleans(), seed=st.integers(0, 2**16))
def test_gemm(m, k, n, trans_a, trans_b, alpha, beta, c_kind, opset, b_const, seed):
    rng = np.random.default_rng(seed)
    a = _randn(rng, *((k, m) if trans_a else (m, k)))
    b = _randn(rng, *((n, k) if trans_b else (k, n)))
    c_shape = {"scalar": (), "n": (n,), "1n": (1, n), "m1": (m, 1), "mn": (m, n)}.get(c_kind)
    if c_shape is None and opset < 11:
        c_shape = (n,)  # C became optional in opset 11
    inputs = {"a": a} if b_const else {"a": a, "b": b}
    inits = {"b": b} if b_const else {}
    names = ["a", "b"]
    if c_shape is not None:
        inits["c"] = _randn(rng, *c_shape)
        names.append("c")
    model = single_op("Gemm", inputs, inits, opset=opset, input_names=names, alpha=alpha, beta=beta,
                      transA=trans_a, transB=trans_b)
    check_against_ort(model, inputs)


@st.composite
def matmul_shapes(draw):
    k = draw(st.integers(1, 5))
    a_rank, b_rank = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    batch_rank = max(a_rank, b_rank) - 2
    batch = [draw(st.integers(1, 3)) for _ in range(max(0, batch_rank))]

    def side(rank, core):
        if rank == 1:
            return (k,)
        own = batch[len(batch) - (rank - 2):] if rank > 2 else []
        own = [d if draw(st.booleans()) else 1 for d in own]  # broadcast some batch axes
        return (*own, *core)

    a = side(a_rank, (draw(st.integers(1, 5)), k))
    b = side(b_rank, (k, draw(st.integers(1, 5))))
    return a, b


@SETTINGS
@given(shapes=matmul_shapes(), seed=st.integers(0, 2**16), b_const=st.booleans())
def test_matmul(shapes, seed, b_const):
    rng = np.random.default_rng(seed)
    a, b = _randn(rng, *shapes[0]), _randn(rng, *shapes[1])
    inputs = {"a": a} if b_const else {"a": a, "b": b}
    model = single_op("MatMul", inputs, {"b": b} if b_const else {}, input_names=["a", "b"])
    check_against_ort(model, inputs)


def test_matmul_large_inner_dimension():
    rng = np.random.default_rng(5)
    a, b = _randn(rng, 2, 3, 512), _randn(rng, 512, 40)
    check_against_ort(single_op("MatMul", {"a": a}, {"b": b}), {"a": a})


# --- normalizations ------------------------------------------------------------------------------

@pytest.mark.parametrize("opset", [9, 14, 15])
@pytest.mark.parametrize("shape", [(3, 4), (2, 4, 9), (2, 4, 5, 6), (1, 4, 2, 3, 3)])
def test_batchnorm(shape, opset):
    rng = np.random.default_rng(len(shape) + opset)
    c = shape[1]
    x = _randn(rng, *shape, scale=3.0)
    inits = {"s": _randn(rng, c), "b": _randn(rng, c), "m": _randn(rng, c),
             "v": np.abs(_randn(rng, c)) + 0.01}
    check_against_ort(single_op("BatchNormalization", {"x": x}, inits, opset=opset, epsilon=1e-3), {"x": x})


@pytest.mark.parametrize("epsilon", [1e-5, 0.1])
@pytest.mark.parametrize("shape", [(2, 3, 10), (2, 4, 6, 7), (1, 2, 3, 4, 5)])
def test_instance_norm(shape, epsilon):
    rng = np.random.default_rng(len(shape))
    x = _randn(rng, *shape, scale=5.0) + 3.0
    inits = {"s": _randn(rng, shape[1]), "b": _randn(rng, shape[1])}
    check_against_ort(single_op("InstanceNormalization", {"x": x}, inits, epsilon=epsilon), {"x": x})


@pytest.mark.parametrize("shape", [(2, 7, 5, 4), (1, 3, 1, 9)])  # onnxruntime: 4-D only, odd size
@pytest.mark.parametrize("attrs", [{"size": 3}, {"size": 5, "alpha": 0.01, "beta": 0.5, "bias": 2.0},
                                   {"size": 7, "alpha": 1e-3, "beta": 0.9}, {"size": 1}])
def test_lrn(shape, attrs):
    x = _randn(np.random.default_rng(len(shape)), *shape, scale=4.0)
    check_against_ort(single_op("LRN", {"x": x}, **attrs), {"x": x})


# --- softmax family ------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("opset", [9, 11, 13, 17])
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1, -2, -4])
def test_softmax_family(op, opset, axis):
    """Opset < 13 flattens to 2-D at axis (default 1); 13+ works along one axis (default -1)."""
    rng = np.random.default_rng(opset)
    x = _randn(rng, 2, 3, 4, 5, scale=30.0)  # large values: the max shift must keep exp finite
    attrs = {} if axis is None else {"axis": axis}
    check_against_ort(single_op(op, {"x": x}, opset=opset, **attrs), {"x": x})


@pytest.mark.parametrize("opset", [11, 13])
def test_hardmax_ties_pick_the_first(opset):
    x = np.array([[[1, 3, 3], [2, 2, 0]], [[0, 0, 0], [5, 1, 5]]], dtype=np.float32)
    check_against_ort(single_op("Hardmax", {"x": x}, opset=opset, axis=-1), {"x": x})


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_extreme_values(op):
    x = np.array([[1e4, -1e4, 0.0, 3.0], [-50.0, -50.0, -50.0, -49.0]], dtype=np.float32)
    check_against_ort(single_op(op, {"x": x}, opset=13), {"x": x})
