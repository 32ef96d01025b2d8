"""The numpy kernels (rknn_core.native_numpy) against the compiled ones (rknn_core._native) on random
inputs: integer results bit for bit, float results to float32 rounding (exactly on integer-valued
data); and a vendor flow run with RKNN_NO_NATIVE=1 that gives the compiled run's outputs and says once
that it is slower."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rknn_core import native_numpy
from rknn_core.ops._quant import _add_out_plan, _add_plan, requant_plan
from rknn_core.quant.params import QTYPES

STORAGE = {"B": "u8", "b": "i8", "h": "i16"}
SEEDS = range(6)




def both(compiled, name: str, outputs: list[np.ndarray], *args) -> tuple[list, list]:
    """Call the compiled and the numpy kernel ``name`` with the same arguments, ``outputs`` standing for
    the in-place outputs (each gets its own copy, prefilled with garbage); the filled outputs of each."""
    results = []
    for module in (compiled, native_numpy):
        copies = [np.full_like(o, 77) for o in outputs]
        it = iter(copies)
        getattr(module, name)(*[next(it) if a is OUT else a for a in args])
        results.append(copies)
    return results[0], results[1]


OUT = object()  # marks where an in-place output goes in ``both``'s arguments


def storage(rng, kind: str, shape) -> np.ndarray:
    lo, hi, dtype = QTYPES[STORAGE[kind]]
    return rng.integers(lo, hi + 1, size=shape).astype(dtype)


def multipliers(rng, count: int, pot: bool) -> tuple[np.ndarray, np.ndarray]:
    """(mult, shift) int64: powers of two (``pot``), else fixed-point multipliers around 2**-30..2**4
    with exact halves (mult 2**30) among them, so rounding ties occur."""
    if pot:
        return np.zeros(count, np.int64), rng.integers(-20, 8, count).astype(np.int64)
    mult = rng.integers(1 << 30, 1 << 31, count).astype(np.int64)
    mult[::3] = 1 << 30
    return mult, rng.integers(-30, 5, count).astype(np.int64)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("acc_kind", ["f", "d", "i", "q"])
def test_requantize_is_bit_identical(compiled, threads, seed, acc_kind):
    rng = np.random.default_rng(seed)
    out_kind = "Bbh"[seed % 3]
    pot = acc_kind != "f" and seed % 2 == 1
    outer, c, inner = int(rng.integers(1, 3)), int(rng.integers(1, 6)), int(rng.integers(1, 70))
    bound = {"f": 2**23, "d": 2**40, "i": 2**31, "q": 2**40}[acc_kind] if not pot else 2**36
    acc = rng.integers(-bound, bound, (outer, c, inner)).astype(native_numpy.ACCUMULATORS[acc_kind])
    acc.reshape(-1)[:4] = [0, 2, -2, 6]  # ties of the halving multipliers
    mult, shift = multipliers(rng, c if seed % 2 else 1, pot)
    bias = rng.integers(-2**20, 2**20, c).astype(np.int64) if seed % 3 else None
    lo, hi, dtype = QTYPES[STORAGE[out_kind]]
    zp = int(rng.integers(lo, hi + 1))
    out = np.empty(acc.shape, dtype)
    (want,), (got,) = both(compiled, "requantize", [out], acc, acc_kind, bias, mult, shift, pot, OUT, out_kind,
                           outer, c, inner, zp, lo + 3, hi - 3)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("acc_kind", ["i", "q"])
@pytest.mark.parametrize("out_kind", ["B", "b", "h"])
def test_requantize_saturates_alike(compiled, acc_kind, out_kind):
    """Accumulators past int32 and left shifts saturate the fixed-point multiply; the bounds clamp."""
    big = 2**31 - 1 if acc_kind == "i" else 2**40
    acc = np.array([[[-big, big, 5, -5, 3, -3]]], native_numpy.ACCUMULATORS[acc_kind])
    mult, shift = np.array([1 << 30], np.int64), np.array([3], np.int64)  # x 4: 5 -> 20, 3 -> 12
    lo, hi, dtype = QTYPES[STORAGE[out_kind]]
    out = np.empty(acc.shape, dtype)
    (want,), (got,) = both(compiled, "requantize", [out], acc, acc_kind, None, mult, shift, False, OUT, out_kind,
                           1, 1, 6, 0, lo + 1, min(hi, 15))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(want.reshape(-1), [lo + 1, min(hi, 15), min(hi, 15), max(lo + 1, -20), 12,
                                                     max(lo + 1, -12)])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", ["B", "b", "h"])
def test_quantized_add_is_bit_identical(compiled, threads, seed, kind):
    rng = np.random.default_rng(seed)
    qtype = STORAGE[kind]
    lo, hi, dtype = QTYPES[qtype]
    scales = rng.uniform(0.01, 1.0, 3)
    if seed == 0:
        scales[2] = 2 * max(scales[:2]) / 2**10  # a power-of-two output multiplier (the shift mode)
    shift, ma, sa, mb, sb, m_out = _add_plan(*scales, qtype)
    pot, mo, so = _add_out_plan(m_out)
    n = 20000 if seed < 2 else int(rng.integers(1, 100))  # threaded / vector tails
    a, b = storage(rng, kind, n), storage(rng, kind, n)
    za, zb, zo = (int(rng.integers(lo, hi + 1)) for _ in range(3))
    sign = 1 if seed % 2 else -1
    out = np.empty(n, dtype)
    (want,), (got,) = both(compiled, "quantized_add", [out], a, b, OUT, kind, n, za, zb, shift, ma, sa, mb, sb, sign,
                           int(mo), int(so), pot, zo, lo, hi)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("x_kind", ["f", "d"])
def test_quantize_is_bit_identical(compiled, threads, seed, x_kind):
    rng = np.random.default_rng(seed)
    out_kind = "Bbh"[seed % 3]
    lo, hi, dtype = QTYPES[STORAGE[out_kind]]
    scale = float(2.0 ** rng.integers(-8, 2)) if seed % 2 else float(rng.uniform(0.001, 0.5))
    zero = int(rng.integers(lo, hi + 1))
    x = (rng.standard_normal(70000 if seed == 0 else 257) * scale * (hi - lo) / 4)
    x[:6] = [np.nan, np.inf, -np.inf, 2.5 * scale, -2.5 * scale, 1e300 if x_kind == "d" else 3e38]  # ties, NaN
    x = x.astype(native_numpy.ACCUMULATORS[x_kind])
    out = np.empty(x.shape, dtype)
    (want,), (got,) = both(compiled, "quantize", [out], x, x_kind, scale, zero, OUT, out_kind, lo, hi)
    np.testing.assert_array_equal(got, want)
    assert want[0] == np.clip(zero, lo, hi) and want[1] == hi and want[2] == lo


@pytest.mark.parametrize("kind", ["B", "b", "h"])
def test_center_and_plane_sums_are_bit_identical(compiled, kind):
    rng = np.random.default_rng(3)
    x = storage(rng, kind, (4, 3, 5, 7))
    zero = int(rng.integers(*QTYPES[STORAGE[kind]][:2]))
    (want,), (got,) = both(compiled, "center", [np.empty(x.shape, np.float32)], x, kind, zero, OUT)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(want, x.astype(np.float32) - zero)
    (want,), (got,) = both(compiled, "plane_sums", [np.empty(12, np.int64)], x, kind, OUT, 12, 35)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(want, x.reshape(12, 35).sum(axis=1))


@pytest.mark.parametrize("planes", [1, 8, 13])
def test_float_plane_sums_add_in_order_in_float64(compiled, planes):
    """Kind f: each plane's float32 values added one after the other in float64, in the twin too."""
    x = np.random.default_rng(planes).standard_normal((planes, 3137)).astype(np.float32) * 1e3
    (want,), (got,) = both(compiled, "plane_sums", [np.empty(planes, np.float64)], x, "f", OUT, planes, 3137)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(want, np.add.accumulate(x.astype(np.float64), axis=1)[:, -1])


@pytest.mark.parametrize(("h", "w", "pt", "pl", "sh", "sw"),
                         [(9, 11, 1, 0, 2, 2), (7, 7, 3, 2, 3, 2), (4, 6, 0, 0, 1, 3), (151, 160, 0, 1, 2, 2)])
def test_phase_planes_is_bit_identical(compiled, threads, h, w, pt, pl, sh, sw):
    """Zero-bordered planes split into their stride phases (the bordered extent rounded up to whole phases);
    the largest case takes several tasks, each a band of rows of every plane."""
    rng = np.random.default_rng(h * w)
    x = rng.normal(0, 1, (3, h, w)).astype(np.float32)
    qh, qw = -(-(h + pt + 1) // sh), -(-(w + pl + 1) // sw)
    (want,), (got,) = both(compiled, "phase_planes", [np.empty((3, sh, sw, qh, qw), np.float32)], x, OUT, 3, h, w,
                           pt, pl, qh, qw, sh, sw)
    np.testing.assert_array_equal(got, want)
    padded = np.zeros((3, qh * sh, qw * sw), np.float32)
    padded[:, pt:pt + h, pl:pl + w] = x[:, :qh * sh - pt, :qw * sw - pl]
    np.testing.assert_array_equal(want, padded.reshape(3, qh, sh, qw, sw).transpose(0, 2, 4, 1, 3))


@pytest.mark.parametrize("size", [1, 4])
@pytest.mark.parametrize(("images", "pixels", "channels"), [(1, 7 * 9, 3), (2, 5, 4), (1, 300 * 300, 3)])
def test_planes8_is_bit_identical(compiled, threads, size, images, pixels, channels):
    """Channels-last bytes to planes through a table per channel, byte or float32 entries (the large picture
    runs on the pool)."""
    rng = np.random.default_rng(pixels)
    x = rng.integers(0, 256, (images, pixels, channels)).astype(np.uint8)
    tables = rng.integers(0, 256, (channels, 256)).astype(np.uint8) if size == 1 else \
        rng.normal(0, 50, (channels, 256)).astype(np.float32)
    (want,), (got,) = both(compiled, "planes8", [np.empty((images, channels, pixels), tables.dtype)], x, tables, OUT,
                           images, pixels, channels, size)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(want, np.take_along_axis(tables[None], x.transpose(0, 2, 1).astype(np.intp), axis=2))


@pytest.mark.parametrize("kind", ["B", "h"])
def test_softmax_lut_is_bit_identical(compiled, kind):
    """The integer softmax along the middle axis of (2, 5, 3) storage: exp table entries per distance, the
    probabilities (2**30 for 1) to u8 codes of 1/256."""
    rng = np.random.default_rng(len(kind))
    x = rng.integers(0, 60 if kind == "B" else 6000, (2, 5, 3)).astype(np.uint8 if kind == "B" else np.int16)
    steps = np.arange(256 if kind == "B" else 65536)
    table = np.round(2.0**20 * np.exp(-steps * (0.05 if kind == "B" else 0.0005))).astype(np.int64)
    plan = requant_plan(2.0**-30 * 256, "u8", None, 1, None)
    (want,), (got,) = both(compiled, "softmax_lut", [np.empty(x.shape, np.uint8)], x, kind, table, plan.mult,
                           plan.shift, plan.pot, OUT, "B", 2, 5, 3, 0, 0, 255)
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) > 10


@pytest.mark.parametrize("kind", ["f", "B", "b", "h"])
def test_pad_planes_is_bit_identical(compiled, threads, kind):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 5, 7)).astype(np.float32) if kind == "f" else storage(rng, kind, (6, 5, 7))
    out = np.empty((6, 8, 11), np.float32)
    (want,), (got,) = both(compiled, "pad_planes", [out], x, kind, 3, OUT, 6, 5, 7, 1, 2, 8, 11)
    np.testing.assert_array_equal(got, want)
    assert (want[:, 0] == 0).all() and (want[:, :, :2] == 0).all() and (want[:, 6:] == 0).all()


def _gemm_case(rng, k: int, n: int):
    """Implicit im2col offsets (k taps, n origins) into a flat b, and the length of b."""
    koff = rng.integers(0, 40, k).astype(np.int64)
    poff = rng.integers(0, 60, n).astype(np.int64)
    return koff, poff, 100


@pytest.mark.parametrize("seed", SEEDS)
def test_qconv_gemm_is_bit_identical(compiled, threads, seed):
    rng = np.random.default_rng(seed)
    m, k, n = int(rng.integers(1, 40)), int(rng.integers(1, 80)), int(rng.integers(1, 300))
    koff, poff, size = _gemm_case(rng, k, n)
    b_kind, out_kind = "fBb"[seed % 3], "Bbh"[seed % 3]
    a = rng.integers(-127, 128, (m, k)).astype(np.float32)
    b = rng.integers(-255, 256, size).astype(np.float32) if b_kind == "f" else storage(rng, b_kind, size)
    b_zero = int(rng.integers(-20, 20))
    pot = seed == 4
    mult, shift = multipliers(rng, m if seed % 2 else 1, pot)
    shift = shift - 8 if not pot else shift - 10  # sums reach ~2**21: bring them into the output range
    bias = rng.integers(-2**16, 2**16, m).astype(np.int64) if seed % 3 else None
    lo, hi, dtype = QTYPES[STORAGE[out_kind]]
    zo = int(rng.integers(lo, hi + 1))
    out = np.empty((m, n), dtype)
    (want,), (got,) = both(compiled, "qconv_gemm", [out], a, b, b_kind, b_zero, koff, poff, bias, mult, shift, pot,
                           OUT, out_kind, zo, lo, hi, m, k, n)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("out_kind", "zo", "lo", "hi"), [("b", 3, 0, 127), ("b", -5, -128, 100), ("B", 10, 10, 200)])
@pytest.mark.parametrize("n", [31, 32, 33, 100])
def test_qconv_gemm_rows_with_tighter_bounds_are_bit_identical(compiled, out_kind, zo, lo, hi, n):
    """The requantization rows pack 32 values at a time (unsigned packs when no bound is negative, signed ones
    else) and finish 8 and then 1 at a time: bounds inside the storage type, and row lengths around 32."""
    rng = np.random.default_rng(n)
    m, k = 6, 50
    koff, poff, size = _gemm_case(rng, k, n)
    a = rng.integers(-127, 128, (m, k)).astype(np.float32)
    b = storage(rng, "B", size)
    mult, shift = rng.integers(1 << 30, 1 << 31, m).astype(np.int64), np.full(m, -8, np.int64)  # sums of ~40000
    out = np.empty((m, n), QTYPES[STORAGE[out_kind]][2])
    (want,), (got,) = both(compiled, "qconv_gemm", [out], a, b, "B", 128, koff, poff, None, mult, shift, False,
                           OUT, out_kind, zo, lo, hi, m, k, n)
    np.testing.assert_array_equal(got, want)
    assert want.min() == lo and want.max() == hi  # both bounds reached


@pytest.mark.parametrize("seed", SEEDS)
def test_conv_gemm_matches(compiled, threads, seed):
    """Exactly on integer-valued data (sums exact in any order); to float32 rounding on random floats."""
    rng = np.random.default_rng(seed)
    m, k, n = int(rng.integers(1, 50)), int(rng.integers(1, 90)), int(rng.integers(1, 300))
    koff, poff, size = _gemm_case(rng, k, n)
    lo, hi = (-np.inf, np.inf) if seed % 2 else (-3.0, 5.0)
    for integers in (True, False):
        draw = (lambda *s: rng.integers(-9, 10, s).astype(np.float32)) if integers else \
            (lambda *s: rng.standard_normal(s).astype(np.float32))
        a, b, bias = draw(m, k), draw(size), draw(m) if seed % 3 else None
        b[0] = np.nan if not integers else b[0]
        (want,), (got,) = both(compiled, "conv_gemm", [np.empty((m, n), np.float32)], a, b, koff, poff, bias, OUT,
                               m, k, n, lo, hi)
        if integers:
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
            assert (np.isnan(got) == np.isnan(want)).all()


GEOMETRIES = [  # kh, kw, sh, sw, dh, dw, pt, pl, pb, pr: 3x3 / 5x5 / 7x7 at strides 1 and 2, dilated, odd shapes
    (3, 3, 1, 1, 1, 1, 1, 1, 1, 1), (3, 3, 2, 2, 1, 1, 1, 1, 1, 1), (3, 3, 2, 2, 1, 1, 0, 0, 1, 1),
    (5, 5, 1, 2, 1, 1, 2, 2, 2, 2), (3, 3, 1, 1, 2, 2, 2, 2, 2, 2), (1, 1, 1, 1, 1, 1, 0, 0, 0, 0),
    (2, 3, 2, 1, 1, 1, 0, 1, 1, 1), (5, 5, 1, 1, 1, 1, 2, 2, 2, 2), (5, 5, 2, 2, 1, 1, 1, 1, 2, 2),
    (7, 7, 1, 1, 1, 1, 3, 3, 3, 3), (7, 7, 2, 2, 1, 1, 3, 2, 3, 4), (3, 3, 3, 3, 1, 1, 1, 0, 1, 2),
    (5, 5, 2, 2, 2, 2, 4, 4, 4, 4),
]
PLANES = [(9, 12), (7, 7), (14, 14), (18, 35), (40, 37)]  # small planes (whole-plane sweeps), wide rows (row kernels),
# and planes tall enough for the float depthwise's bands of rows on two threads


def _dw_geometry(geometry, h: int, w: int) -> tuple[int, ...]:
    kh, kw, sh, sw, dh, dw, pt, pl, pb, pr = geometry
    oh = (h + pt + pb - (kh - 1) * dh - 1) // sh + 1
    ow = (w + pl + pr - (kw - 1) * dw - 1) // sw + 1
    return h, w, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("plane", PLANES)
def test_depthwise_conv2d_matches(compiled, threads, geometry, plane):
    rng = np.random.default_rng(sum(geometry))
    n, c = 2, 5
    geo = _dw_geometry(geometry, *plane)
    kh, kw, oh, ow = geo[2], geo[3], geo[4], geo[5]
    for integers in (True, False):
        draw = (lambda *s: rng.integers(-9, 10, s).astype(np.float32)) if integers else \
            (lambda *s: rng.standard_normal(s).astype(np.float32))
        x, w, bias = draw(n, c, *plane), draw(c, kh, kw), draw(c)
        (want,), (got,) = both(compiled, "depthwise_conv2d", [np.empty((n, c, oh, ow), np.float32)], x, w, bias, OUT,
                               n, c, *geo, -4.0, 6.0)
        if integers:
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        assert want.min() >= -4.0 and want.max() <= 6.0


EPILOGUES = [(None, 0, 0.0, 0.0), ("residual", 0, 0.0, 0.0), (None, 1, 0.2, 0.5), ("residual", 2, 1 / 6, 0.5),
             (None, 3, 0.0, 0.0), ("residual", 3, 0.0, 0.0)]
EPILOGUE_IDS = ["clamp", "residual", "hardsigmoid", "residual-hardswish", "prelu", "residual-prelu"]


def _slopes(rng, act: int, channels: int) -> np.ndarray | None:
    """PRelu's per-channel slopes (activation 3), exact binary fractions and one negative, else None."""
    if act != 3:
        return None
    slopes = rng.integers(-4, 9, channels).astype(np.float32) / 8
    slopes[0] = -0.5
    return slopes


@pytest.mark.parametrize("epilogue", EPILOGUES, ids=EPILOGUE_IDS)
@pytest.mark.parametrize("plane", PLANES)
def test_depthwise_conv2d_epilogue_is_bit_identical(compiled, threads, epilogue, plane):
    """Integer-valued data: exact sums, then the same float32 operations (no FMA) in both."""
    rng = np.random.default_rng(len(plane))
    residual, act, alpha, beta = epilogue
    n, c = 2, 3
    geo = _dw_geometry((3, 3, 1, 1, 1, 1, 1, 1, 1, 1), *plane)
    x, w, bias = (rng.integers(-9, 10, s).astype(np.float32) for s in ((n, c, *plane), (c, 3, 3), (c,)))
    r = rng.integers(-20, 20, (n, c, geo[4], geo[5])).astype(np.float32) if residual else None
    slopes = _slopes(rng, act, c)
    (want,), (got,) = both(compiled, "depthwise_conv2d", [np.empty((n, c, geo[4], geo[5]), np.float32)], x, w, bias,
                           OUT, n, c, *geo, -4.0, 6.0, r, act, alpha, beta, slopes)
    np.testing.assert_array_equal(got, want)
    if act == 2:
        assert want.min() >= -0.375 and (want > 6).any()  # HardSwish, not the clamp
    if act == 3:  # each plane's negatives scaled by its channel's slope
        sums = np.empty_like(want)
        compiled.depthwise_conv2d(x, w, bias, sums, n, c, *geo, -np.inf, np.inf, r)
        np.testing.assert_array_equal(want, np.where(sums < 0, sums * slopes[None, :, None, None], sums))
        assert (sums < 0).any()


@pytest.mark.parametrize("geometry", [(3, 3, 1, 1, 1, 1, 1, 1, 1, 1), (3, 3, 2, 2, 1, 1, 0, 0, 1, 1),
                                      (5, 5, 2, 2, 1, 1, 2, 2, 2, 2), (3, 3, 1, 1, 2, 2, 2, 2, 2, 2),
                                      (3, 3, 1, 1, 1, 1, -1, -1, 0, 0)],
                         ids=["3x3", "3x3-s2", "5x5-s2", "3x3-dilated", "3x3-cropped"])
def test_depthwise_conv2d_bands_equal_whole_planes(compiled, geometry):
    """With two threads a tall plane is cut into bands of output rows (each task every plane, so the next
    layer's task of the same number finds its part of the image in its own cache); the values are those of
    one task over whole planes, bit for bit, epilogue and residual included, and of the numpy twin."""
    rng = np.random.default_rng(sum(geometry) + 5)
    n, c = 1, 24
    geo = _dw_geometry(geometry, 67, 40)
    assert geo[4] >= 32  # tall enough for bands at two threads (8 tasks of at least 4 rows)
    x = rng.standard_normal((n, c, 67, 40)).astype(np.float32)
    w, bias = rng.standard_normal((c, geometry[0], geometry[1])).astype(np.float32), rng.standard_normal(c).astype(
        np.float32)
    r = rng.standard_normal((n, c, geo[4], geo[5])).astype(np.float32)
    old = compiled.get_threads()
    results = []
    try:
        for count in (1, 2):
            compiled.set_threads(count)
            y = np.full((n, c, geo[4], geo[5]), 77, np.float32)
            compiled.depthwise_conv2d(x, w, bias, y, n, c, *geo, -4.0, 6.0, r, 2, 1 / 6, 0.5)
            results.append(y)
    finally:
        compiled.set_threads(old)
    np.testing.assert_array_equal(results[1], results[0])
    want = np.full_like(results[0], 77)
    native_numpy.depthwise_conv2d(x, w, bias, want, n, c, *geo, -4.0, 6.0, r, 2, 1 / 6, 0.5)
    np.testing.assert_allclose(results[1], want, rtol=1e-5, atol=1e-5)
    assert results[1].min() >= -0.375 and (results[1] > 6).any()  # HardSwish of the sum plus the residual


@pytest.mark.parametrize("epilogue", EPILOGUES, ids=EPILOGUE_IDS)
def test_conv_gemm_epilogue_is_bit_identical(compiled, threads, epilogue):
    rng = np.random.default_rng(7)
    residual, act, alpha, beta = epilogue
    m, k, n = 21, 40, 300
    koff, poff, size = _gemm_case(rng, k, n)
    a, b, bias = (rng.integers(-3, 4, s).astype(np.float32) for s in ((m, k), size, m))
    r = rng.integers(-20, 20, (m, n)).astype(np.float32) if residual else None
    slopes = _slopes(rng, act, m)
    (want,), (got,) = both(compiled, "conv_gemm", [np.empty((m, n), np.float32)], a, b, koff, poff, bias, OUT, m, k,
                           n, -4.0, 6.0, r, act, alpha, beta, slopes)
    np.testing.assert_array_equal(got, want)
    if act == 1:
        assert want.min() >= 0 and want.max() <= 1 and 0 < want.mean() < 1
    if act == 3:  # row i's negatives scaled by slope i
        sums = np.empty_like(want)
        compiled.conv_gemm(a, b, koff, poff, bias, sums, m, k, n, -np.inf, np.inf, r)
        np.testing.assert_array_equal(want, np.where(sums < 0, sums * slopes[:, None], sums))
        assert (sums < 0).any()


@pytest.mark.parametrize("kernel", ["conv_gemm", "depthwise_conv2d"])
def test_post_ops_after_the_activation_are_bit_identical(compiled, threads, kernel):
    """Mul and Add by one value after the activation (HardSwish here), each rounded on its own (integer-valued
    data: exact sums)."""
    rng = np.random.default_rng(11)
    post = np.array([0, 1.7, 1, -0.4, 0, 0.3], np.float32)  # * 1.7, + -0.4, * 0.3
    if kernel == "conv_gemm":
        m, k, n = 9, 20, 150
        koff, poff, size = _gemm_case(rng, k, n)
        a, b = (rng.integers(-3, 4, s).astype(np.float32) for s in ((m, k), size))
        args, shape = (a, b, koff, poff, None), (m, n)
        tail = (m, k, n, -np.inf, np.inf, None, 2, 1 / 6, 0.5)
    else:
        n, c, plane = 1, 5, (9, 11)
        geo = _dw_geometry((3, 3, 1, 1, 1, 1, 1, 1, 1, 1), *plane)
        x, w = (rng.integers(-3, 4, s).astype(np.float32) for s in ((n, c, *plane), (c, 3, 3)))
        args, shape = (x, w, None), (n, c, geo[4], geo[5])
        tail = (n, c, *geo, -np.inf, np.inf, None, 2, 1 / 6, 0.5)
    (want,), (got,) = both(compiled, kernel, [np.empty(shape, np.float32)], *args, OUT, *tail, None, post)
    np.testing.assert_array_equal(got, want)
    plain = np.empty(shape, np.float32)
    getattr(compiled, kernel)(*args, plain, *tail)
    np.testing.assert_array_equal(want, (plain * np.float32(1.7) + np.float32(-0.4)) * np.float32(0.3))


def test_post_ops_that_are_not_pairs_of_mul_or_add_are_refused(compiled):
    one = (np.ones((1, 1), np.float32), np.ones(1, np.float32), np.zeros(1, np.int64), np.zeros(1, np.int64), None,
           np.empty(1, np.float32), 1, 1, 1, -np.inf, np.inf, None, 0, 0.0, 0.0, None)
    for post in (np.array([2, 1.0], np.float32), np.array([0, 1.0, 1], np.float32), np.zeros(10, np.float32)):
        with pytest.raises(ValueError, match="post"):
            compiled.conv_gemm(*one, post)


def test_prelu_epilogue_without_slopes_is_refused(compiled):
    with pytest.raises(ValueError, match="slopes"):
        compiled.conv_gemm(np.ones((1, 1), np.float32), np.ones(1, np.float32), np.zeros(1, np.int64),
                           np.zeros(1, np.int64), None, np.empty(1, np.float32), 1, 1, 1, -np.inf, np.inf, None, 3)


def _quant_epilogue(rng, kind: str, count: int, stages: str, channels: int = 1) -> tuple:
    """(add, table) arguments of the integer kernels for ``stages`` ("add", "table" or "tables" joined by
    "+"): quantized_add's constants for a random residual of ``count`` values, a random lookup table or
    one per channel."""
    with_add, tables = "add" in stages.split("+"), {"table": 1, "tables": channels}.get(stages.split("+")[-1])
    qtype = STORAGE[kind]
    lo, hi, dtype = QTYPES[qtype]
    add = table = None
    if with_add:
        shift, ma, sa, mb, sb, m_out = _add_plan(0.05, 0.03, 0.07, qtype)
        pot, mo, so = _add_out_plan(m_out)
        residual = storage(rng, kind, count)
        add = (residual, int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1)), shift, ma, sa, mb, sb, int(mo),
               int(so), bool(pot), int(rng.integers(lo, hi + 1)), lo + 3, hi - 5)
    if tables:
        table = rng.integers(lo, hi + 1, (tables, hi - lo + 1)).astype(dtype)
    return add, table


@pytest.mark.parametrize("kind", ["B", "b", "h"])
@pytest.mark.parametrize("stages", ["add", "table", "add+table", "tables", "add+tables"])
def test_qconv_gemm_epilogue_is_bit_identical(compiled, threads, kind, stages):
    rng = np.random.default_rng(len(stages))
    m, k, n = 19, 30, 290
    koff, poff, size = _gemm_case(rng, k, n)
    a = rng.integers(-127, 128, (m, k)).astype(np.float32)
    b = rng.integers(-255, 256, size).astype(np.float32)
    mult, shift = multipliers(rng, m, False)
    lo, hi, dtype = QTYPES[STORAGE[kind]]
    add, table = _quant_epilogue(rng, kind, m * n, stages, m)
    (want,), (got,) = both(compiled, "qconv_gemm", [np.empty((m, n), dtype)], a, b, "f", 0, koff, poff, None, mult,
                           shift - 8, False, OUT, kind, 3, lo, hi, m, k, n, add, table)
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) > 10
    if stages == "tables":  # row i looked up in table i
        codes = np.empty((m, n), dtype)
        compiled.qconv_gemm(a, b, "f", 0, koff, poff, None, mult, shift - 8, False, codes, kind, 3, lo, hi, m, k, n)
        np.testing.assert_array_equal(want, table[np.arange(m)[:, None], codes.astype(np.int64) - lo])


@pytest.mark.parametrize("b_kind", ["B", "b"])
@pytest.mark.parametrize("stages", ["", "add+table", "tables"])
def test_qconv_gemm_u8_is_bit_identical(compiled, threads, b_kind, stages):
    if not compiled.int8_gemm():
        pytest.skip("this CPU has neither AVX-512 VNNI nor AVX2: qconv_gemm_u8 does not run compiled")
    from rknn_core.ops._quant import int8_operands

    rng = np.random.default_rng(len(stages))
    m, k, n = 13, 1100, 70  # k across two blocks of the kernel
    koff, poff, size = rng.permutation(3000)[:k].astype(np.int64), np.arange(n, dtype=np.int64), 3100
    wc = rng.integers(-20, 200, (m, k)).astype(np.float32)
    b = storage(rng, b_kind, size)
    zero = 30 + (128 if b_kind == "b" else 0)
    operands = int8_operands(wc, zero)
    u = b[koff[:, None] + poff[None, :]].astype(np.int64) + (128 if b_kind == "b" else 0)
    largest = np.abs(wc.astype(np.int64) @ (u - zero)).max()
    mult, shift = np.array([1 << 30], np.int64), np.array([1 + int(np.floor(np.log2(100 / largest)))], np.int64)
    add, table = _quant_epilogue(rng, "B", m * n, stages, m)
    (want,), (got,) = both(compiled, "qconv_gemm_u8", [np.empty((m, n), np.uint8)], *operands, b, b_kind, koff, poff,
                           None, mult, shift, False, OUT, "B", 128, 0, 255, m, k, n, add, table)
    np.testing.assert_array_equal(got, want)
    assert operands[2] is not None and len(np.unique(want)) > 10


@pytest.mark.parametrize("kind", ["B", "b", "h"])
@pytest.mark.parametrize("stages", ["add", "table", "add+table", "add+tables"])
@pytest.mark.parametrize("plane", PLANES)
def test_qdepthwise_conv2d_epilogue_is_bit_identical(compiled, threads, kind, stages, plane):
    rng = np.random.default_rng(len(stages))
    n, c = 2, 3
    geo = _dw_geometry((5, 5, 1, 1, 1, 1, 2, 2, 2, 2), *plane)
    x = storage(rng, kind, (n, c, *plane))
    w = rng.integers(-127, 128, (c, 5, 5)).astype(np.float32)
    mult, shift = multipliers(rng, c, False)
    lo, hi, dtype = QTYPES[STORAGE[kind]]
    add, table = _quant_epilogue(rng, kind, n * c * geo[4] * geo[5], stages, c)
    (want,), (got,) = both(compiled, "qdepthwise_conv2d", [np.empty((n, c, geo[4], geo[5]), dtype)], x, kind, 0, w,
                           None, mult, shift - (10 if kind == "h" else 4), False, OUT, kind, 1, lo, hi, n, c, *geo,
                           add, table)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("kinds", ["BB", "bb", "hh", "Bh"])
@pytest.mark.parametrize("plane", PLANES)  # (18, 35): the row kernels, whose stride-2 rows center 8-bit codes
def test_qdepthwise_conv2d_is_bit_identical(compiled, threads, geometry, kinds, plane):
    rng = np.random.default_rng(sum(geometry))
    x_kind, out_kind = kinds
    n, c = 2, 4
    geo = _dw_geometry(geometry, *plane)
    kh, kw, oh, ow = geo[2], geo[3], geo[4], geo[5]
    x = storage(rng, x_kind, (n, c, *plane))
    w = rng.integers(-127, 128, (c, kh, kw)).astype(np.float32)
    zx = int(rng.integers(*QTYPES[STORAGE[x_kind]][:2])) if x_kind != "h" else 0
    pot = kinds == "hh"
    mult, shift = multipliers(rng, c, pot)
    shift = shift - (10 if x_kind == "h" else 4)
    bias = rng.integers(-2**12, 2**12, c).astype(np.int64)
    lo, hi, dtype = QTYPES[STORAGE[out_kind]]
    zo = int(rng.integers(lo, hi + 1))
    out = np.empty((n, c, oh, ow), dtype)
    (want,), (got,) = both(compiled, "qdepthwise_conv2d", [out], x, x_kind, zx, w, bias, mult, shift, pot, OUT,
                           out_kind, zo, lo, hi, n, c, *geo)
    np.testing.assert_array_equal(got, want)


# EfficientNet-Lite0's depthwise layers (kh, kw, sh, sw, dh, dw, pt, pl, pb, pr; input plane): stride 2 with
# TF "SAME" pads folded in (begin 0/1, end 1/2), 5x5 and 3x3 on 7x7 and 14x14 planes
LITE0 = [((3, 3, 2, 2, 1, 1, 0, 0, 1, 1), (28, 28)), ((5, 5, 2, 2, 1, 1, 1, 1, 2, 2), (56, 56)),
         ((5, 5, 2, 2, 1, 1, 1, 1, 2, 2), (14, 14)), ((5, 5, 1, 1, 1, 1, 2, 2, 2, 2), (7, 7)),
         ((3, 3, 1, 1, 1, 1, 1, 1, 1, 1), (7, 7)), ((5, 5, 1, 1, 1, 1, 2, 2, 2, 2), (14, 14)),
         ((3, 3, 2, 2, 1, 1, 0, 0, 1, 1), (112, 112))]


@pytest.mark.parametrize("geometry, plane", LITE0)
def test_depthwise_many_planes_are_bit_identical(compiled, threads, geometry, plane):
    """Many channels (planes taken 16 at a time, a group straddling the batch), float and integer."""
    rng = np.random.default_rng(plane[0] + sum(geometry))
    n, c = 2, 37
    geo = _dw_geometry(geometry, *plane)
    kh, kw, oh, ow = geo[2], geo[3], geo[4], geo[5]
    x, w, bias = (rng.integers(-9, 10, s).astype(np.float32) for s in ((n, c, *plane), (c, kh, kw), (c,)))
    (want,), (got,) = both(compiled, "depthwise_conv2d", [np.empty((n, c, oh, ow), np.float32)], x, w, bias, OUT,
                           n, c, *geo, 0.0, 6.0)
    np.testing.assert_array_equal(got, want)
    assert 0 < (want == 6).mean() < 1 and 0 < (want == 0).mean() < 1  # ReLU6 clips both ends
    xq = storage(rng, "B", (n, c, *plane))
    wq = rng.integers(-127, 128, (c, kh, kw)).astype(np.float32)
    mult, shift = multipliers(rng, c, False)
    bq = rng.integers(-2**12, 2**12, c).astype(np.int64)
    (want,), (got,) = both(compiled, "qdepthwise_conv2d", [np.empty((n, c, oh, ow), np.uint8)], xq, "B", 128, wq,
                           bq, mult, shift - 4, False, OUT, "B", 3, 0, 255, n, c, *geo)
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) > 10


@pytest.mark.parametrize("module", ["compiled", "numpy"])
def test_bad_arguments_raise_value_error_in_both(compiled, module):
    kernels = compiled if module == "compiled" else native_numpy
    with pytest.raises(ValueError):
        kernels.set_threads(0)
    with pytest.raises(ValueError):  # output smaller than m*n
        kernels.conv_gemm(np.ones(4, np.float32), np.ones(4, np.float32), np.zeros(2, np.int64),
                          np.zeros(2, np.int64), None, np.empty(3, np.float32), 2, 2, 2, -1.0, 1.0)
    with pytest.raises(ValueError):  # unknown storage kind
        kernels.center(np.zeros(4, np.uint8), "x", 0, np.empty(4, np.float32))
    with pytest.raises(ValueError):  # koff/poff read past the end of b
        kernels.conv_gemm(np.ones(4, np.float32), np.ones(4, np.float32), np.array([0, 3], np.int64),
                          np.array([0, 1], np.int64), None, np.empty(4, np.float32), 2, 2, 2, -1.0, 1.0)


def test_numpy_thread_count_follows_set_threads():
    old = native_numpy.get_threads()
    try:
        native_numpy.set_threads(3)
        assert native_numpy.get_threads() == 3
        native_numpy.set_threads(1000)
        assert native_numpy.get_threads() == native_numpy.MAX_THREADS
    finally:
        native_numpy.set_threads(old)


FLOW = Path(__file__).with_name("vendor_flow.py")
WARNING = "W the compiled kernels (rknn_core._native) are not available"


def _flow(folder: Path, *args: str, **env: str) -> tuple[dict, str]:
    run = subprocess.run([sys.executable, str(FLOW), str(folder), *args], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "OMP_NUM_THREADS": "2", **env})
    assert run.returncode == 0, run.stderr
    with np.load(folder / "outputs.npz") as outputs:
        return dict(outputs), run.stderr


def test_vendor_flow_without_compiled_kernels_matches_and_warns_once(tmp_path):
    """Float outputs to 1e-5; the integer run of one quantized .rknn exactly (a model quantized on each
    side may differ: calibration ranges come from float runs that agree to rounding only)."""
    default_out, default_err = _flow(tmp_path / "default", RKNN_NO_NATIVE="0")
    numpy_out, numpy_err = _flow(tmp_path / "numpy", str(tmp_path / "default" / "u8.rknn"), RKNN_NO_NATIVE="1")
    assert numpy_err.count(WARNING) == 1 and "RKNN_NO_NATIVE is set" in numpy_err
    has_compiled = importlib.util.find_spec("rknn_core._native") is not None
    assert (WARNING in default_err) != has_compiled, default_err
    np.testing.assert_allclose(numpy_out["float"], default_out["float"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(numpy_out["given"], default_out["u8"])
    np.testing.assert_allclose(numpy_out["u8"], default_out["u8"], atol=0.02)
    ort = pytest.importorskip("onnxruntime")
    image = ((np.load(tmp_path / "numpy" / "0.npy").astype(np.float32) - 127.5) / 127.5).transpose(2, 0, 1)[None]
    want = ort.InferenceSession(str(tmp_path / "numpy" / "model.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"x": image})[0]
    np.testing.assert_allclose(numpy_out["float"], want, rtol=1e-4, atol=1e-5)
    assert np.abs(numpy_out["u8"] - want).max() < 0.05 * np.abs(want).max()


@pytest.mark.parametrize("kind", ["B", "b"])
@pytest.mark.parametrize("b_step", [0, 1, 2])
def test_quantized_mul_prelu_is_bit_identical(compiled, threads, kind, b_step):
    rng = np.random.default_rng(b_step)
    rows, inner = 5, 300
    a, b = storage(rng, kind, rows * inner), storage(rng, kind, (1, rows, rows * inner)[b_step])
    lo, hi, dtype = QTYPES[STORAGE[kind]]
    slope = (np.array([(1 << 30) + 9], np.int64), np.array([-8], np.int64))
    positive = (np.array([(1 << 30) + 77], np.int64), np.array([0], np.int64), False)
    (want,), (got,) = both(compiled, "quantized_mul", [np.empty(rows * inner, dtype)], a, b, OUT, kind, rows, inner,
                           b_step, (lo + hi) // 2, lo, *slope, False, 3, lo, hi, *positive)
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) > 30


@pytest.mark.parametrize("kind", ["B", "b"])
@pytest.mark.parametrize("b_step", [0, 1, 2])
def test_quantized_mul_is_bit_identical(compiled, threads, kind, b_step):
    rng = np.random.default_rng(b_step)
    rows, inner = 37, 2000
    a, b = storage(rng, kind, rows * inner), storage(rng, kind, (1, rows, rows * inner)[b_step])
    mult, shift = np.array([(1 << 30) + 12345], np.int64), np.array([-8], np.int64)  # products near the type
    lo, hi, dtype = QTYPES[STORAGE[kind]]
    b[0] = hi  # with zb = lo: a large factor even when b is one value
    (want,), (got,) = both(compiled, "quantized_mul", [np.empty(rows * inner, dtype)], a, b, OUT, kind, rows, inner,
                           b_step, int(rng.integers(lo, hi + 1)), lo, mult, shift, False, 3, lo, hi)
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) > 30


@pytest.mark.parametrize("shapes", [((2, 3, 9, 11), (1, 3, 1, 1)), ((1, 3, 1, 1), (1, 3, 9, 11)), ((4, 5, 6), ()),
                                    ((4, 5, 6), (4, 5, 6)), ((4, 5, 6), (6,))],
                         ids=["per-channel", "broadcast-first", "scalar", "same", "last-axis (numpy)"])
def test_quantized_mul_gives_the_fixed_point_rules_codes(shapes):
    """Every broadcast: the compiled kernel where it applies, else numpy: the codes of the fixed-point rules."""
    from rknn_core.ir import QuantParams
    from rknn_core.ops._quant import quantized_mul
    from rknn_core.quant.fixedpoint import requantize

    rng = np.random.default_rng(6)
    a, b = storage(rng, "B", shapes[0]), storage(rng, "B", shapes[1])
    a_q, b_q, o_q = QuantParams("u8", (0.03,), (100,)), QuantParams("u8", (0.05,), (140,)), \
        QuantParams("u8", (0.04,), (90,))
    got = quantized_mul(a, b, a_q, b_q, o_q)
    want = requantize((a.astype(np.int64) - 100) * (b.astype(np.int64) - 140), 0.03 * 0.05 / 0.04, 90, "u8")
    np.testing.assert_array_equal(got, want)
    assert got.shape == np.broadcast_shapes(*shapes) and len(np.unique(got)) > 20


@pytest.mark.parametrize("op", ["Mul", "PRelu"])
def test_mul_and_prelu_give_the_fixed_point_rules_codes(op):
    """Quantized Mul and PRelu requantize on the compiled kernel: the codes of quant/fixedpoint.py's rules."""
    from rknn_core.ir import QuantParams
    from rknn_core.plugins import default_registry
    from rknn_core.quant.fixedpoint import requantize

    rng = np.random.default_rng(5)
    a, b = storage(rng, "B", (2, 3, 9, 11)), storage(rng, "B", (1, 3, 1, 1))
    a_q, b_q, o_q = QuantParams("u8", (0.03,), (100,)), QuantParams("u8", (0.01,), (140,)), QuantParams("u8", (0.02,),
                                                                                                      (90,))
    got = default_registry().op(op).quant_kernel([a, b], [a_q, b_q], [o_q], {})[0]
    ac, bc = a.astype(np.int64) - 100, b.astype(np.int64) - 140
    product = requantize(ac * bc, 0.03 * 0.01 / 0.02, 90, "u8")
    want = product if op == "Mul" else np.where(ac < 0, product, requantize(ac, 0.03 / 0.02, 90, "u8"))
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(got)) > 20


@pytest.mark.parametrize("per_channel", [False, True])
def test_quantized_matmul_with_a_weight_matrix_gives_exact_integer_codes(per_channel):
    """MatMul by a 2-D B sums in float32 where B's actual columns allow it (its centered form cached):
    the codes of the exact integer products."""
    from rknn_core.ir import QuantParams
    from rknn_core.ops import matmul as matmul_module
    from rknn_core.ops._quant import weight_plan
    from rknn_core.quant.fixedpoint import requantize

    rng = np.random.default_rng(8)
    a, b = storage(rng, "B", (3, 1280)), rng.normal(128, 12, (1280, 50)).clip(0, 255).astype(np.uint8)
    a_q, o_q = QuantParams("u8", (0.02,), (120,)), QuantParams("u8", (0.1,), (128,))
    b_q = QuantParams("u8", tuple(rng.uniform(0.001, 0.003, 50)), (128,) * 50, axis=1) if per_channel else \
        QuantParams("u8", (0.002,), (128,))
    matmul = {o.name: o for o in matmul_module.OPS}["MatMul"]
    got = matmul.quant_kernel([a, b], [a_q, b_q], [o_q], {})[0]
    acc = (a.astype(np.int64) - 120) @ (b.astype(np.int64) - 128)
    want = requantize(acc, 0.02 * np.asarray(b_q.scale) / 0.1, 128, "u8")
    np.testing.assert_array_equal(got, want)
    assert weight_plan(b, b_q, a_q, 1)[1] is np.float32 and len(np.unique(want)) > 40
