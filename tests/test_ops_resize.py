"""Resize (opsets 10/11/13/18/19) and Upsample (opsets 7/9) against onnxruntime.

onnxruntime and the ONNX reference both refuse coordinate_transformation_mode='tf_half_pixel_for_nearest'
(dropped from the spec at opset 13), so that mode is checked against a hand-computed expectation.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from onnx_util import check_against_ort, run_rknn, save_model, single_op

COORD_MODES = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"]
NEAREST_MODES = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
SCALES = [0.25, 0.3, 0.5, 0.6, 0.7, 0.75, 1.0, 1.3, 1.5, 1.7, 2.0, 2.5, 3.0, 4.0]
EMPTY = np.zeros(0, np.float32)


def _x(seed, shape, dtype=np.float32):
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, 255, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _resize(x, opset, scales=None, sizes=None, roi=None, **attrs):
    """A Resize model in the input form of ``opset`` (roi and scales required before 13)."""
    init = {}
    names = ["x"]
    if opset >= 11:
        if roi is not None or opset < 13 or scales is not None or sizes is not None:
            init["roi"] = EMPTY if roi is None else np.asarray(roi, np.float32)
        names.append("roi" if "roi" in init else "")
        if scales is not None:
            init["scales"] = np.asarray(scales, np.float32)
            names.append("scales")
        else:
            if opset < 13:
                init["scales"] = EMPTY
                names.append("scales")
            else:
                names.append("")
            init["sizes"] = np.asarray(sizes, np.int64)
            names.append("sizes")
    else:
        init["scales"] = np.asarray(scales, np.float32)
        names.append("scales")
    return single_op("Resize", {"x": x}, init, opset=opset, input_names=names, **attrs)


@st.composite
def nchw(draw, min_side=1):
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(min_side, 9)),
            draw(st.integers(min_side, 9)))


@settings(max_examples=150, deadline=None)
@given(shape=nchw(), sh=st.sampled_from(SCALES), sw=st.sampled_from(SCALES), mode=st.sampled_from(["nearest", "linear"]),
       coord=st.sampled_from(COORD_MODES), nearest=st.sampled_from(NEAREST_MODES), opset=st.sampled_from([11, 13, 18, 19]),
       seed=st.integers(0, 2**16))
def test_resize_scales(shape, sh, sw, mode, coord, nearest, opset, seed):
    assume(int(shape[2] * sh) > 0 and int(shape[3] * sw) > 0)
    x = _x(seed, shape)
    out = check_against_ort(_resize(x, opset, scales=[1, 1, sh, sw], mode=mode, coordinate_transformation_mode=coord,
                                    nearest_mode=nearest), {"x": x})
    assert out[0].shape[:2] == shape[:2]


@settings(max_examples=80, deadline=None)
@given(shape=nchw(), oh=st.integers(1, 14), ow=st.integers(1, 14), mode=st.sampled_from(["nearest", "linear", "cubic"]),
       coord=st.sampled_from(COORD_MODES + ["half_pixel_symmetric"]), nearest=st.sampled_from(NEAREST_MODES),
       opset=st.sampled_from([11, 13, 19]), seed=st.integers(0, 2**16))
def test_resize_sizes(shape, oh, ow, mode, coord, nearest, opset, seed):
    if coord == "half_pixel_symmetric":
        opset = 19
    x = _x(seed, shape)
    out = check_against_ort(_resize(x, opset, sizes=[*shape[:2], oh, ow], mode=mode, coordinate_transformation_mode=coord,
                                    nearest_mode=nearest), {"x": x})
    assert out[0].shape == (*shape[:2], oh, ow)


@settings(max_examples=80, deadline=None)
@given(shape=nchw(min_side=2), sh=st.sampled_from(SCALES), sw=st.sampled_from(SCALES),
       coord=st.sampled_from(COORD_MODES + ["half_pixel_symmetric"]), a=st.sampled_from([-0.75, -0.5]),
       exclude=st.sampled_from([0, 1]), seed=st.integers(0, 2**16))
def test_resize_cubic(shape, sh, sw, coord, a, exclude, seed):
    assume(int(shape[2] * sh) > 0 and int(shape[3] * sw) > 0)
    x = _x(seed, shape)
    check_against_ort(_resize(x, 19, scales=[1, 1, sh, sw], mode="cubic", coordinate_transformation_mode=coord,
                              cubic_coeff_a=a, exclude_outside=exclude), {"x": x})


@settings(max_examples=80, deadline=None)
@given(c=st.integers(1, 3), h=st.integers(1, 8), w=st.integers(1, 8), s=st.lists(st.sampled_from(SCALES), min_size=3,
       max_size=3), mode=st.sampled_from(["nearest", "linear"]), coord=st.sampled_from(COORD_MODES),
       nearest=st.sampled_from(NEAREST_MODES), outer=st.booleans(), seed=st.integers(0, 2**16))
def test_resize_3d(c, h, w, s, mode, coord, nearest, outer, seed):
    """3-D input: the last two axes scale (and, with ``outer``, the first one too)."""
    scales = [s[0] if outer else 1.0, s[1], s[2]]
    assume(all(int(n * f) > 0 for n, f in zip((c, h, w), scales)))
    x = _x(seed, (c, h, w))
    check_against_ort(_resize(x, 13, scales=scales, mode=mode, coordinate_transformation_mode=coord,
                              nearest_mode=nearest), {"x": x})


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=5), data=st.data(), nearest=st.sampled_from(NEAREST_MODES),
       coord=st.sampled_from(COORD_MODES), seed=st.integers(0, 2**16))
def test_resize_nearest_any_rank_any_axis(shape, data, nearest, coord, seed):
    scales = data.draw(st.lists(st.sampled_from(SCALES), min_size=len(shape), max_size=len(shape)))
    assume(all(int(n * f) > 0 for n, f in zip(shape, scales)))
    x = _x(seed, tuple(shape))
    check_against_ort(_resize(x, 13, scales=scales, mode="nearest", coordinate_transformation_mode=coord,
                              nearest_mode=nearest), {"x": x})


@settings(max_examples=60, deadline=None)
@given(shape=nchw(), oh=st.integers(1, 14), ow=st.integers(1, 14), policy=st.sampled_from(["stretch", "not_larger",
       "not_smaller"]), mode=st.sampled_from(["nearest", "linear"]), coord=st.sampled_from(COORD_MODES),
       negative=st.booleans(), seed=st.integers(0, 2**16))
def test_resize_opset18_axes_and_aspect_policy(shape, oh, ow, policy, mode, coord, negative, seed):
    ratios = [oh / shape[2], ow / shape[3]]
    r = min(ratios) if policy == "not_larger" else max(ratios)
    assume(policy == "stretch" or min(shape[2] * r, shape[3] * r) >= 0.5)  # empty outputs are refused
    x = _x(seed, shape)
    # onnxruntime ignores negative axes under not_larger/not_smaller (the output keeps the input's
    # shape, against its own shape inference), so negative axes are checked with stretch only
    axes = [-2, -1] if negative and policy == "stretch" else [2, 3]
    check_against_ort(_resize(x, 18, sizes=[oh, ow], axes=axes, keep_aspect_ratio_policy=policy, mode=mode,
                              coordinate_transformation_mode=coord), {"x": x})


@settings(max_examples=20, deadline=None)
@given(shape=nchw(), sh=st.sampled_from(SCALES), sw=st.sampled_from(SCALES), mode=st.sampled_from(["nearest", "linear"]),
       seed=st.integers(0, 2**16))
def test_resize_opset18_axes_scales(shape, sh, sw, mode, seed):
    assume(int(shape[2] * sh) > 0 and int(shape[3] * sw) > 0)
    x = _x(seed, shape)
    check_against_ort(_resize(x, 18, scales=[sh, sw], axes=[2, 3], mode=mode), {"x": x})


@settings(max_examples=80, deadline=None)
@given(shape=nchw(), sh=st.sampled_from(SCALES), sw=st.sampled_from(SCALES), mode=st.sampled_from(["nearest", "linear"]),
       seed=st.integers(0, 2**16))
def test_resize_opset10(shape, sh, sw, mode, seed):
    """Opset-10 Resize: asymmetric; nearest floors upscaled axes and ceils downscaled ones."""
    assume(int(shape[2] * sh) > 0 and int(shape[3] * sw) > 0)
    x = _x(seed, shape)
    check_against_ort(_resize(x, 10, scales=[1, 1, sh, sw], mode=mode), {"x": x})


UP_SCALES = [1.0, 1.3, 1.5, 1.7, 2.0, 2.5, 3.0, 4.0]


@settings(max_examples=80, deadline=None)
@given(shape=nchw(), sh=st.sampled_from(UP_SCALES), sw=st.sampled_from(UP_SCALES),
       mode=st.sampled_from(["nearest", "linear", "bilinear"]), opset=st.sampled_from([7, 9]),
       seed=st.integers(0, 2**16))
def test_upsample(shape, sh, sw, mode, opset, seed):
    if mode == "bilinear":
        opset = 7  # 'bilinear' is the opset-7 spelling onnxruntime still accepts there
        mode = "linear"
    x = _x(seed, shape)
    scales = [1.0, 1.0, sh, sw]
    if opset == 7:
        model = single_op("Upsample", {"x": x}, opset=7, scales=scales, mode=mode)
    else:
        model = single_op("Upsample", {"x": x}, {"scales": np.asarray(scales, np.float32)}, opset=9, mode=mode)
    check_against_ort(model, {"x": x})


def test_upsample_nearest_scales_channels():
    x = _x(1, (1, 2, 3, 4))
    check_against_ort(single_op("Upsample", {"x": x}, opset=7, scales=[1.0, 2.0, 2.0, 3.0]), {"x": x})


def test_resize_opset10_mixed_down_and_up_nearest():
    x = np.arange(10 * 10, dtype=np.float32).reshape(1, 1, 10, 10)
    out = check_against_ort(_resize(x, 10, scales=[1, 1, 0.6, 1.7]), {"x": x})
    np.testing.assert_array_equal(out[0][0, 0, :, 0], [0, 20, 40, 50, 70, 90])  # ceil of 0, 1.67, 3.33, ...


def test_resize_uint8_nearest():
    x = _x(2, (1, 3, 5, 6), np.uint8)
    out = check_against_ort(_resize(x, 13, scales=[1, 1, 2.0, 0.5], mode="nearest"), {"x": x})
    assert out[0].dtype == np.uint8


def _round(x, mode):
    if mode == "floor":
        return np.floor(x)
    if mode == "ceil":
        return np.ceil(x)
    away = np.floor(x + 0.5)  # x >= 0 here
    return np.where(x - np.floor(x) == 0.5, np.floor(x), away) if mode == "round_prefer_floor" else away


@pytest.mark.parametrize("nearest", NEAREST_MODES)
@pytest.mark.parametrize("scale", [0.5, 0.6, 1.5, 2.0, 3.0])
def test_resize_tf_half_pixel_for_nearest(nearest, scale, tmp_path):
    """Resize-11's tf_half_pixel_for_nearest: source = (i + 0.5) / scale in float32, rounded, clamped.

    Neither onnxruntime nor the ONNX reference implement it, so the expectation is computed here.
    """
    n = 7
    x = np.arange(n, dtype=np.float32).reshape(1, 1, 1, n) * 10
    model = _resize(x, 11, scales=[1, 1, 1, scale], mode="nearest",
                    coordinate_transformation_mode="tf_half_pixel_for_nearest", nearest_mode=nearest)
    out = run_rknn(save_model(model, str(tmp_path)), {"x": x})[0]
    src = ((np.arange(int(n * scale), dtype=np.float32) + np.float32(0.5)) / np.float32(scale)).astype(np.float64)
    expect = np.clip(_round(src, nearest), 0, n - 1) * 10
    np.testing.assert_array_equal(out.reshape(-1), expect)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("roi", [[0, 0, 0.2, 0.1, 1, 1, 0.8, 0.9], [0, 0, -0.3, 0.4, 1, 1, 1.2, 0.6]])
def test_resize_tf_crop_and_resize(mode, roi):
    x = _x(4, (1, 2, 6, 7))
    for sizes in ([1, 2, 4, 5], [1, 2, 9, 1]):
        check_against_ort(_resize(x, 13, sizes=sizes, roi=roi, mode=mode, coordinate_transformation_mode="tf_crop_and_resize",
                                  extrapolation_value=-7.0), {"x": x})
    # with scales, onnxruntime sizes the output as floor(input * scale), ignoring the roi extent
    out = check_against_ort(_resize(x, 13, scales=[1, 1, 0.5, 1.5], roi=roi, mode=mode,
                                    coordinate_transformation_mode="tf_crop_and_resize"), {"x": x})
    assert out[0].shape == (1, 2, 3, 10)


def test_resize_refusals(tmp_path, caplog):
    x = _x(5, (1, 1, 4, 4))
    cases = [
        (_resize(x, 18, scales=[1, 1, 0.5, 0.5], mode="linear", antialias=1), "antialias"),
        (_resize(x, 13, scales=[1, 1, 2, 2, 2], mode="nearest"), "scales has 5 values"),
        (_resize(x, 13, scales=[1, 1, 0.2, 1], mode="nearest"), "is empty"),
    ]
    for model, message in cases:
        path = save_model(model, str(tmp_path))
        caplog.clear()
        with pytest.raises(AssertionError, match="failed"):
            run_rknn(path, {"x": x})
        assert message in caplog.text
