"""Byte kernels (rknn_core._native lookup8, upsample8, depth_to_space8) equal their numpy twins, and the
integer ops that run on them give the codes of their element-by-element forms bit for bit: Add/Sub/Mul/Div
by a small operand through per-row code tables, rescaling and table activations by one table, nearest
Resize by whole factors, and ConvTranspose whose kernel equals its strides as a 1x1 Conv woven into place."""

from __future__ import annotations

import numpy as np
import pytest

from rknn_core import native_numpy
from rknn_core.ir import QuantParams
from rknn_core.ops import _quant, elementwise, nn, pool, resize
from rknn_core.ops._quant import centered, requantize_accumulator, weight_plan
from rknn_core.quant.fixedpoint import multiply, quantize_multiplier
from rknn_core.quant.params import QTYPES

RNG = np.random.default_rng(7)
ELEMENTWISE = {o.name: o for o in elementwise.OPS}




def _codes(shape, qtype="u8") -> np.ndarray:
    lo, hi, dtype = QTYPES[qtype]
    return RNG.integers(lo, hi + 1, shape).astype(dtype)


@pytest.mark.parametrize("rows, inner, per_row", [(1, 1 << 19, False), (96, 3600, True), (3, 7, True), (5, 63, False),
                                                  (0, 5, True), (2, 0, False)])
def test_lookup8_equals_twin(compiled, threads, rows, inner, per_row):
    x = _codes(rows * inner)
    tables = _codes(256 * (rows if per_row else 1))
    got, want = np.empty_like(x), np.empty_like(x)
    compiled.lookup8(x, tables, got, rows, inner, per_row)
    native_numpy.lookup8(x, tables, want, rows, inner, per_row)
    np.testing.assert_array_equal(got, want)
    if rows and inner:
        np.testing.assert_array_equal(want.reshape(rows, inner)[-1], tables.reshape(-1, 256)[-1 if per_row else 0][
            x.reshape(rows, inner)[-1]])


@pytest.mark.parametrize("planes, h, w, fy, fx", [(96, 30, 30, 2, 2), (24, 15, 15, 8, 8), (24, 30, 30, 4, 4),
                                                  (3, 7, 17, 3, 5), (2, 5, 33, 1, 2), (1, 1, 1, 1, 1)])
def test_upsample8_equals_twin(compiled, threads, planes, h, w, fy, fx):
    x = _codes(planes * h * w)
    got, want = np.empty(x.size * fy * fx, np.uint8), np.empty(x.size * fy * fx, np.uint8)
    compiled.upsample8(x, got, planes, h, w, fy, fx)
    native_numpy.upsample8(x, want, planes, h, w, fy, fx)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(want.reshape(planes, h * fy, w * fx),
                                  x.reshape(planes, h, w).repeat(fy, axis=1).repeat(fx, axis=2))


@pytest.mark.parametrize("planes, kh, kw, h, w", [(24, 2, 2, 120, 120), (1, 2, 2, 37, 41), (3, 3, 3, 5, 17),
                                                  (2, 1, 2, 4, 35), (2, 2, 1, 3, 3)])
def test_depth_to_space8_equals_twin(compiled, threads, planes, kh, kw, h, w):
    x = _codes(planes * kh * kw * h * w)
    got, want = np.empty_like(x), np.empty_like(x)
    compiled.depth_to_space8(x, got, planes, kh, kw, h, w)
    native_numpy.depth_to_space8(x, want, planes, kh, kw, h, w)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(want.reshape(planes, h, kh, w, kw)[:, 1, 0, 2, kw - 1],
                                  x.reshape(planes, kh, kw, h, w)[:, 0, kw - 1, 1, 2])


def test_byte_kernels_refuse_short_buffers(compiled):
    x = np.zeros(10, np.uint8)
    with pytest.raises(ValueError):
        compiled.lookup8(x, np.zeros(256, np.uint8), np.empty(10, np.uint8), 2, 10, False)
    with pytest.raises(ValueError):
        compiled.upsample8(x, np.empty(20, np.uint8), 1, 2, 5, 2, 2)
    with pytest.raises(ValueError):
        compiled.depth_to_space8(x, np.empty(10, np.uint8), 1, 2, 2, 2, 2)


def _direct(monkeypatch):
    """Turn the code tables off: every op computes element by element."""
    monkeypatch.setattr(_quant, "lookup_by_code", lambda *args: None)
    monkeypatch.setattr(_quant, "TABLE_FRACTION", 10**12)


def _params(qtype, scale, zero):
    return QuantParams(qtype, (scale,), (zero,))


SMALL_SHAPES = [(1,), (1, 24, 1, 1), (24, 1, 1), (1, 1, 1, 1)]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul"])
@pytest.mark.parametrize("qtype", ["u8", "i8"])
@pytest.mark.parametrize("small_shape", SMALL_SHAPES)
@pytest.mark.parametrize("small_first", [False, True])
def test_binary_by_code_equals_direct(monkeypatch, op, qtype, small_shape, small_first):
    big = _codes((1, 24, 96, 96), qtype)
    small = _codes(small_shape, qtype)
    big_q, small_q = _params(qtype, 0.37, 3 if qtype == "u8" else -5), _params(qtype, 0.0021, 255 if qtype == "u8" else 9)
    out_q = _params(qtype, 0.3697, 2)
    inputs, in_q = ([small, big], [small_q, big_q]) if small_first else ([big, small], [big_q, small_q])
    kernel = ELEMENTWISE[op].quant_kernel
    got = kernel(inputs, in_q, [out_q], {})[0]
    again = kernel(inputs, in_q, [out_q], {})[0]  # the tables kept with the small operand
    _direct(monkeypatch)
    want = kernel(inputs, in_q, [out_q], {})[0]
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(again, want)


def test_div_by_code_equals_direct(monkeypatch):
    x = _codes((1, 3, 160, 160))
    divisor = np.asarray([0.229, 0.224, -0.225], np.float32).reshape(1, 3, 1, 1)
    in_q, out_q = [_params("u8", 1.079, 115), None], [_params("u8", 0.0186, 114)]
    got = elementwise._div_quant([x, divisor], in_q, out_q, {})[0]
    _direct(monkeypatch)
    np.testing.assert_array_equal(got, elementwise._div_quant([x, divisor], in_q, out_q, {})[0])


def test_rescale_and_activation_tables_equal_direct(monkeypatch):
    x = _codes((1, 24, 64, 64), "i8")
    src, dst = _params("i8", 0.074, 100 - 128), _params("u8", 0.045, 0)
    got = _quant.rescale(x, src, dst)
    relu = ELEMENTWISE["Relu"].quant_kernel([x], [src], [dst], {})[0]
    _direct(monkeypatch)
    np.testing.assert_array_equal(got, _quant._rescaled(x, src, dst))
    table = _quant.lut_table(lambda real: np.maximum(real, 0), src, dst)
    np.testing.assert_array_equal(relu, table[x.astype(np.int64) + 128])


@pytest.mark.parametrize("sizes, coord, nearest", [((1, 24, 120, 120), "asymmetric", "floor"),
                                                   ((1, 96, 30, 30), "asymmetric", "floor"),
                                                   ((1, 8, 45, 30), "half_pixel", "round_prefer_floor"),
                                                   ((1, 8, 30, 45), "half_pixel", "round_prefer_ceil"),
                                                   ((1, 8, 40, 40), "align_corners", "floor")])
def test_nearest_resize_by_copies_equals_gathers(monkeypatch, sizes, coord, nearest):
    x = _codes((1, 8, 15, 15) if sizes[1] == 8 else (1, sizes[1], 15, 15))
    q = _params("u8", 0.6, 151)
    attrs = {"mode": "nearest", "coordinate_transformation_mode": coord, "nearest_mode": nearest}
    inputs = [x, None, None, np.asarray(sizes, np.int64)]
    got = resize.quant_kernel(inputs, [q, None, None, None], [q], attrs)[0]
    monkeypatch.setattr(resize, "_by_copies", lambda *args: None)
    np.testing.assert_array_equal(got, resize.quant_kernel(inputs, [q, None, None, None], [q], attrs)[0])


@pytest.mark.parametrize("sizes, coord, nearest", [((1, 24, 120, 120), "asymmetric", "floor"),
                                                   ((1, 8, 45, 30), "half_pixel", "round_prefer_floor"),
                                                   ((1, 8, 30, 45), "half_pixel", "round_prefer_ceil")])
@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_float_nearest_resize_by_copies_equals_gathers(monkeypatch, sizes, coord, nearest, dtype):
    """4-byte elements (float32, int32) take the compiled copies too: the gathers' values bit for bit (NaN and -0
    included)."""
    x = np.random.default_rng(sizes[2]).normal(0, 3, (1, sizes[1], 15, 15)).astype(dtype)
    if dtype == np.float32:
        x[0, 0, 0, :3] = [np.nan, -0.0, np.inf]
    attrs = {"mode": "nearest", "coordinate_transformation_mode": coord, "nearest_mode": nearest}
    inputs = [x, None, None, np.asarray(sizes, np.int64)]
    got = resize.kernel(inputs, attrs)[0]
    monkeypatch.setattr(resize, "_by_copies", lambda *args: None)
    want = resize.kernel(inputs, attrs)[0]
    assert got.shape == tuple(sizes) and got.dtype == want.dtype
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def _deconv_reference(x, w, b, x_q, w_q, o_q, attrs):
    """The numpy path: exact centered sums scattered per tap, requantized per output channel."""
    wc, dtype = weight_plan(w, w_q, x_q, 1)
    acc = nn._deconv_kernel([centered(x, x_q, dtype), wc], attrs)[0]
    return requantize_accumulator(acc, x_q, w_q, o_q, 1, bias=b)


@pytest.mark.parametrize("qtype", ["u8", "i8"])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("pads", [[0, 0, 0, 0], [1, 0, 0, 1]])
def test_deconv_by_taps_equals_scatter(qtype, per_channel, bias, pads):
    c, m, h = 24, 6, 40
    x = _codes((1, c, h, h + 3), qtype)
    w = _codes((c, m, 2, 2), "u8" if qtype == "u8" else "i8")
    x_q = _params(qtype, 0.0085, 0 if qtype == "u8" else -3)
    if per_channel:
        w_q = QuantParams(qtype, tuple(RNG.uniform(0.004, 0.008, m).tolist()),
                          tuple(RNG.integers(120, 130, m).tolist()) if qtype == "u8" else (0,) * m, axis=1)
    else:
        w_q = _params(qtype, 0.0062, 127 if qtype == "u8" else 0)
    o_q = _params(qtype, 0.0072, 116 if qtype == "u8" else 10)
    b = RNG.integers(-2000, 2000, m).astype(np.int32) if bias else None
    attrs = {"dilations": [1, 1], "kernel_shape": [2, 2], "strides": [2, 2], "group": 1, "pads": pads}
    inputs = [x, w] + ([b] if bias else [])
    got = nn._deconv_quant(inputs, [x_q, w_q, None], [o_q], attrs)[0]
    assert nn._deconv_by_taps(x, w, b, x_q, w_q, o_q, attrs) is not None
    np.testing.assert_array_equal(got, _deconv_reference(x, w, b, x_q, w_q, o_q, attrs))


def test_deconv_with_overlapping_taps_keeps_the_scatter():
    x, w = _codes((1, 4, 9, 9)), _codes((4, 3, 3, 3))
    q = _params("u8", 0.01, 5)
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2]}
    assert nn._deconv_by_taps(x, w, None, q, q, q, attrs) is None
    np.testing.assert_array_equal(nn._deconv_quant([x, w], [q, q], [q], attrs)[0],
                                  _deconv_reference(x, w, None, q, q, q, attrs))


@pytest.mark.parametrize("kind, dtype", [("B", np.uint8), ("b", np.int8)])
@pytest.mark.parametrize("planes, size", [(96, 14400), (3, 17), (5, 1), (2, 0)])
def test_byte_plane_sums_equal_twin(compiled, kind, dtype, planes, size):
    info = np.iinfo(dtype)
    x = RNG.integers(info.min, info.max + 1, planes * size).astype(dtype)
    x[:size] = info.min  # a plane of the lowest code
    got, want = np.empty(planes, np.int64), np.empty(planes, np.int64)
    compiled.plane_sums(x, kind, got, planes, size)
    native_numpy.plane_sums(x, kind, want, planes, size)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(want, x.reshape(planes, size).astype(np.int64).sum(axis=1))


@pytest.mark.parametrize("rows, inner", [(40, 6625), (3, 17), (1, 1), (0, 4)])
def test_byte_histograms_equal_twin(compiled, threads, rows, inner):
    x = _codes(rows * inner)
    got, want = np.empty((rows, 256), np.int64), np.empty((rows, 256), np.int64)
    compiled.byte_histograms(x, got, rows, inner)
    native_numpy.byte_histograms(x, want, rows, inner)
    np.testing.assert_array_equal(got, want)
    for r in range(min(rows, 2)):
        np.testing.assert_array_equal(want[r], np.bincount(x.reshape(rows, inner)[r], minlength=256))


SOFTMAX_ATTRS = [{"axis": 2, "coerce_2d": True}, {"axis": -1}, {"axis": 1, "coerce_2d": True}, {"axis": 1}]


@pytest.mark.parametrize("qtype", ["u8", "i8"])
@pytest.mark.parametrize("attrs", SOFTMAX_ATTRS)
def test_softmax_by_histograms_equals_elementwise(monkeypatch, qtype, attrs):
    lo, hi, dtype = QTYPES[qtype]
    x = _codes((1, 6, 1500), qtype)
    x[0, 1] = lo  # a row of the lowest code only
    x[0, 2] = np.clip(RNG.integers(lo + 20, lo + 40, 1500), lo, hi)  # a narrow band, far below the top code
    x[0, 3, :7] = hi  # a few top codes
    x_q, o_q = _params(qtype, 0.114, 140 if qtype == "u8" else 12), _params(qtype, 1 / 256, lo)
    got = nn._softmax_quant([x], [x_q], [o_q], dict(attrs))[0]
    monkeypatch.setattr(nn, "_by_histograms", lambda *args: False)
    want = nn._softmax_quant([x], [x_q], [o_q], dict(attrs))[0]
    assert got.dtype == want.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n", [1 << 20, 37, 0])
def test_lookup8_pairs_equals_twin(compiled, threads, n):
    a, b = _codes(n), _codes(n)
    table = _codes(65536 + 3)
    got, want = np.empty(n, np.uint8), np.empty(n, np.uint8)
    compiled.lookup8_pairs(a, b, table, got, n)
    native_numpy.lookup8_pairs(a, b, table, want, n)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(want, table[a.astype(np.intp) * 256 + b])
    with pytest.raises(ValueError):
        compiled.lookup8_pairs(a, b, table[:65536], got, n)


ADD_SCALES = [(0.9874, 0.7752, 1.0747), (0.37, 0.37, 0.37), (0.5, 0.25, 2.0**-3), (0.004, 3.1, 0.05)]


@pytest.mark.parametrize("qtype", ["u8", "i8"])
@pytest.mark.parametrize("scales", ADD_SCALES)
@pytest.mark.parametrize("sign", [1, -1])
def test_add_by_code_pairs_equals_arithmetic(qtype, scales, sign):
    lo, hi, _ = QTYPES[qtype]
    a, b = _codes((1, 8, 128, 128), qtype), _codes((1, 8, 128, 128), qtype)
    a_q, b_q, o_q = (_params(qtype, s, int(z)) for s, z in zip(scales, RNG.integers(lo, hi + 1, 3)))
    assert a.size >= _quant.PAIR_TABLE_MIN
    got = _quant.quantized_add(a, b, a_q, b_q, o_q, sign)
    np.testing.assert_array_equal(got, _quant._compiled_add(a, b, a_q, b_q, o_q, sign))
    pairs = _quant._add_pair_table(_quant._params_key(a_q), _quant._params_key(b_q), _quant._params_key(o_q), sign)
    codes = _quant.CODES_BY_BYTE[qtype]
    want = _quant.quantized_add(np.repeat(codes, 256)[:4096], np.tile(codes, 256)[:4096], a_q, b_q, o_q, sign)
    np.testing.assert_array_equal(pairs[:4096], want.view(np.uint8))


@pytest.mark.parametrize("pads, include", [([0, 0, 0, 0], 0), ([1, 1, 0, 1], 0), ([1, 1, 0, 1], 1)])
def test_average_pool_of_one_count_equals_per_window_multipliers(pads, include):
    x = _codes((1, 16, 9, 80))
    x_q, o_q = _params("u8", 0.2925, 5), _params("u8", 0.1633, 8)
    attrs = {"kernel_shape": [3, 2], "strides": [3, 2], "pads": pads, "count_include_pad": include}
    total, div = pool.window_sums(centered(x, x_q, np.int64), attrs)
    got = pool._avgpool_quant([x], [x_q], [o_q], attrs)[0]
    m = np.where(div > 0, x_q.scale[0] / (o_q.scale[0] * np.maximum(div, 1)), 0.0) * np.ones(total.shape)
    mult, shift = quantize_multiplier(m)
    want = np.clip(multiply(total, mult, shift) + o_q.zero_point[0], 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(got, want)
