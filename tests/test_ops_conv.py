"""Conv against onnxruntime on random shapes and attributes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx_util import check_against_ort, single_op

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
