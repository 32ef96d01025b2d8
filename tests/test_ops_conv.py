"""Conv against onnxruntime on random shapes and attributes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx_util import check_against_ort, single_op

from rknn_core.ir import QuantParams, TensorInfo
from rknn_core.quant.params import QTYPES

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def conv_case(draw, rank=None, depthwise=None):
    """(input shape, weight shape, with bias, attrs) of a valid Conv."""
    rank = rank or draw(st.sampled_from([1, 2]))
    if depthwise is None:
        depthwise = draw(st.integers(0, 3)) == 0
    if depthwise:
        group = draw(st.integers(1, 6))
        cg, mg = 1, draw(st.sampled_from([1, 1, 2]))  # channel multiplier 1 hits the direct path
    else:
        group = draw(st.sampled_from([1, 1, 2, 3]))
        cg, mg = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kernel = [draw(st.integers(1, 4)) for _ in range(rank)]
    strides = [draw(st.integers(1, 3)) for _ in range(rank)]
    dilations = [draw(st.integers(1, 3)) for _ in range(rank)]
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if auto_pad.startswith("SAME"):
        dilations = [1] * rank  # onnxruntime refuses dilated SAME convolutions
    attrs = {"group": group}
    if draw(st.booleans()):
        attrs["kernel_shape"] = kernel
    if any(s > 1 for s in strides) or draw(st.booleans()):
        attrs["strides"] = strides
    if any(d > 1 for d in dilations):
        attrs["dilations"] = dilations
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    pads = [0] * (2 * rank)
    if auto_pad == "NOTSET":
        if draw(st.booleans()):
            pads = [draw(st.integers(0, 3)) for _ in range(2 * rank)]  # asymmetric in general
            attrs["pads"] = pads
    else:
        attrs["auto_pad"] = auto_pad
    lo = [1 if auto_pad.startswith("SAME") else max(1, e - pads[i] - pads[i + rank]) for i, e in enumerate(eff)]
    spatial = [draw(st.integers(low, max(low, 12))) for low in lo]
    shape = (draw(st.integers(1, 2)), cg * group, *spatial)
    return shape, (mg * group, cg, *kernel), draw(st.booleans()), attrs


def _run(case, seed):
    shape, w_shape, with_bias, attrs = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    inits = {"w": rng.standard_normal(w_shape).astype(np.float32)}
    if with_bias:
        inits["b"] = rng.standard_normal(w_shape[0]).astype(np.float32)
    check_against_ort(single_op("Conv", {"x": x}, inits, **attrs), {"x": x})


@SETTINGS
@given(case=conv_case(), seed=st.integers(0, 2**16))
def test_conv_random(case, seed):
    _run(case, seed)


@SETTINGS
@given(case=conv_case(rank=2, depthwise=True), seed=st.integers(0, 2**16))
def test_conv_depthwise(case, seed):
    _run(case, seed)


@SETTINGS
@given(case=conv_case(rank=1), seed=st.integers(0, 2**16))
def test_conv_1d(case, seed):
    _run(case, seed)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("rank", [1, 2])
def test_conv_auto_pad_odd_total(auto_pad, rank):
    """An odd total padding: SAME_UPPER puts the extra cell at the end, SAME_LOWER at the start."""
    rng = np.random.default_rng(rank)
    x = rng.standard_normal((1, 3, *[8] * rank)).astype(np.float32)
    w = rng.standard_normal((4, 3, *[4] * rank)).astype(np.float32)
    check_against_ort(single_op("Conv", {"x": x}, {"w": w}, auto_pad=auto_pad, strides=[1] * rank), {"x": x})


def test_conv_pointwise_with_pads():
    """1x1 stride-1 kernels take the matmul shortcut; pads must still apply."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 6, 7)).astype(np.float32)
    w = rng.standard_normal((3, 5, 1, 1)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    check_against_ort(single_op("Conv", {"x": x}, {"w": w, "b": b}, pads=[1, 0, 2, 3]), {"x": x})


def test_conv_weight_as_graph_input():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    check_against_ort(single_op("Conv", {"x": x, "w": w}, group=2, strides=[2, 2], pads=[1, 1, 1, 1]),
                      {"x": x, "w": w})


def test_conv_large_accumulation():
    """A deep reduction (k = 256 * 9) stays within 1e-4 of onnxruntime in float32."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 256, 10, 10)).astype(np.float32)
    w = (rng.standard_normal((16, 256, 3, 3)) * 0.05).astype(np.float32)
    check_against_ort(single_op("Conv", {"x": x}, {"w": w}, pads=[1, 1, 1, 1]), {"x": x})


FUSED_CONVS = {  # input shape, weight shape, attrs: depthwise 5x5 on 7x7 (strides 1, 2), 1x1, 3x3 on the GEMM;
    # 1-D (the numpy path of the integer kernel)
    "dw5x5": ((1, 6, 7, 7), (6, 1, 5, 5), {"group": 6, "pads": [2, 2, 2, 2]}),
    "1d": ((1, 3, 10), (4, 3, 3), {"pads": [1, 1]}),
    "dw5x5s2": ((1, 4, 14, 14), (4, 1, 5, 5), {"group": 4, "strides": [2, 2], "pads": [1, 1, 2, 2]}),
    "pointwise": ((2, 8, 5, 6), (5, 8, 1, 1), {}),
    "3x3": ((1, 3, 9, 9), (4, 3, 3, 3), {"pads": [1, 1, 1, 1]}),
}
FUSED_ACTIVATIONS = [None, {"op": "Relu"}, {"op": "Clip", "min": 0.0, "max": 6.0}, {"op": "HardSwish"},
                     {"op": "HardSigmoid", "alpha": 0.3, "beta": 0.4}]


def _unfused_float(x, w, b, r, attrs, act):
    """The graph before fusion: Conv, Add, then the activation as its own op."""
    from rknn_core.ops import conv
    from rknn_core.plugins import default_registry

    y = conv.kernel([x, w, b], attrs)[0]
    if r is not None:
        y = default_registry().op("Add").kernel([y, r], {})[0]
    if act is None:
        return y
    if act["op"] == "Clip":
        return default_registry().op("Clip").kernel([y, np.float32(act["min"]), np.float32(act["max"])], {})[0]
    return default_registry().op(act["op"]).kernel([y], {k: v for k, v in act.items() if k != "op"})[0]


@pytest.mark.parametrize("name", FUSED_CONVS)
@pytest.mark.parametrize("act", FUSED_ACTIVATIONS, ids=lambda a: a and a["op"])
@pytest.mark.parametrize("residual", [False, True])
def test_fused_epilogue_float_equals_unfused_graph(name, act, residual):
    """act(conv + b + r) in the compiled epilogue is bit for bit the separate Conv, Add and activation."""
    from rknn_core.ops import conv

    x_shape, w_shape, attrs = FUSED_CONVS[name]
    rng = np.random.default_rng(len(name))
    x, w = rng.standard_normal(x_shape).astype(np.float32), rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    out_shape = conv.infer([TensorInfo(x_shape, np.float32), TensorInfo(w_shape, np.float32)], attrs)[0].shape
    r = 4 * rng.standard_normal(out_shape).astype(np.float32) if residual else None
    fused = {**attrs, **({"activation": act} if act else {}), **({"fused_add": 1} if residual else {})}
    got = conv.kernel([x, w, b, r] if residual else [x, w, b], fused)[0]
    want = _unfused_float(x, w, b, r, attrs, act)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.float32 and np.ptp(got) > 0


def _q(qtype: str, scale: float, zero: int) -> QuantParams:
    return QuantParams(qtype, (scale,), (zero,))


@pytest.mark.parametrize("name", FUSED_CONVS)
@pytest.mark.parametrize("act", [None, {"op": "Relu"}, {"op": "HardSwish"}, {"op": "HardSigmoid", "alpha": 0.3,
                                                                               "beta": 0.4}],
                         ids=lambda a: a and a["op"])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("qtype", ["u8", "i8"])
def test_fused_epilogue_quantized_equals_unfused_graph(name, act, residual, qtype):
    """The integer Conv requantized to the old conv output's grid, the core's integer ADD, then the
    activation's table: bit for bit the unfused quantized graph (compiled and numpy paths alike)."""
    from rknn_core.ops import conv
    from rknn_core.plugins import default_registry

    x_shape, w_shape, attrs = FUSED_CONVS[name]
    lo, hi, dtype = QTYPES[qtype]
    rng = np.random.default_rng(len(name) + len(qtype))
    x, w = (rng.integers(lo, hi + 1, s).astype(dtype) for s in (x_shape, w_shape))
    b = rng.integers(-500, 500, w_shape[0]).astype(np.int32)
    x_q, w_q = _q(qtype, 0.02, lo + 120), _q(qtype, 0.01, lo + 130)
    conv_q, r_q, add_q, out_q = _q(qtype, 0.05, lo + 100), _q(qtype, 0.04, lo + 90), _q(qtype, 0.08, lo + 110), \
        _q(qtype, 0.03, lo + 20)
    out_shape = conv.infer([TensorInfo(x_shape, np.float32), TensorInfo(w_shape, np.float32)], attrs)[0].shape
    r = rng.integers(lo, hi + 1, out_shape).astype(dtype)
    table_act = act is not None and act["op"] != "Relu"
    before_act = add_q if residual else conv_q
    final_q = out_q if table_act else before_act  # Relu keeps its input's grid
    fused = {**attrs, **({"activation": act} if act else {})}
    if residual:
        fused.update(fused_add=1, add_conv_q={"qtype": qtype, "scale": [0.05], "zero_point": [lo + 100]})
    if table_act:
        fused["act_in_q"] = {"qtype": qtype, "scale": list(before_act.scale), "zero_point": list(before_act.zero_point)}
    inputs, in_q = [x, w, b, r] if residual else [x, w, b], [x_q, w_q, None, r_q] if residual else [x_q, w_q, None]
    got = conv.quant_kernel(inputs, in_q, [final_q], fused)[0]

    registry = default_registry()
    want = conv.quant_kernel([x, w, b], [x_q, w_q, None], [conv_q], attrs)[0]
    if residual:
        want = registry.op("Add").quant_kernel([want, r], [conv_q, r_q], [add_q], {})[0]
    if act is not None:
        params = {k: v for k, v in act.items() if k != "op"}
        want = registry.op(act["op"]).quant_kernel([want], [before_act], [final_q], params)[0]
    np.testing.assert_array_equal(got, want)
    assert got.dtype == dtype and len(np.unique(got)) > 3


def test_fused_table_activation_needs_its_input_grid_when_quantized():
    from rknn_core.errors import RknnError
    from rknn_core.ops import conv

    x = np.zeros((1, 2, 4, 4), np.uint8)
    w = np.zeros((2, 2, 1, 1), np.uint8)
    q = _q("u8", 0.1, 0)
    with pytest.raises(RknnError, match="act_in_q"):
        conv.quant_kernel([x, w], [q, q], [q], {"activation": {"op": "HardSwish"}})


def test_quantized_conv_with_sums_beyond_float32_equals_exact_integers():
    """Weights whose sums leave float32's exact integers (float64 before): the 8-bit GEMM's int32 sums and
    requantization (where the CPU has it) give the exact integer convolution's codes."""
    from rknn_core.ops import conv
    from rknn_core.ops._quant import requantize_accumulator, weight_plan

    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (1, 256, 6, 6)).astype(np.uint8)
    w = rng.integers(0, 256, (16, 256, 3, 3)).astype(np.uint8)
    b = rng.integers(-5000, 5000, 16).astype(np.int32)
    x_q, w_q, o_q = _q("u8", 0.02, 120), _q("u8", 0.001, 131), _q("u8", 0.5, 128)
    attrs = {"pads": [1, 1, 1, 1]}
    assert weight_plan(w, w_q, x_q, 0)[1] is np.float64
    got = conv.quant_kernel([x, w, b], [x_q, w_q, None], [o_q], attrs)[0]
    centered_x = x.astype(np.float64) - 120
    centered_w = w.astype(np.float64) - 131
    acc = conv.kernel([centered_x, centered_w], attrs)[0]
    want = requantize_accumulator(acc, x_q, w_q, o_q, 1, None, b)
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) > 30
