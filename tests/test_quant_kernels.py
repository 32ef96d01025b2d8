"""Integer kernels equal plain integer references (explicit loops, Python / int64 arithmetic).

The references use only the documented rounding rules: ``fixedpoint.quantize_multiplier`` picks the
int32 multiplier; ``ref_multiply`` applies it with Python ints (itself checked against exact
fractions); dynamic fixed point (power-of-two multipliers) is a rounding shift, ties away from zero.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rknn_core import _native
from rknn_core.ir import QuantParams
from rknn_core.ops import _quant, conv, elementwise, matmul, nn, pool, reduce, resize, tensor
from rknn_core.quant import fixedpoint
from rknn_core.quant.params import QTYPES
from rknn_core.quant.params import quantize as params_quantize

SCHEMES = ["u8", "i8", "i16"]
INT32 = (-(2**31), 2**31 - 1)


# ---------------------------------------------------------------- references
def sat(v: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, v))


def round_away(f: Fraction) -> int:
    """Round half away from zero."""
    n = math.floor(abs(f) + Fraction(1, 2))
    return n if f >= 0 else -n


def ref_multiply(acc: int, mult: int, shift: int) -> int:
    """TFLite MultiplyByQuantizedMultiplier with Python ints: saturating left shift, doubling high
    multiply rounding half up (nudge), rounding right shift half away from zero."""
    a = sat(sat(acc, *INT32) * 2 ** max(min(shift, 32), 0), *INT32)
    ab = a * mult
    total = ab + (2**30 if ab >= 0 else 1 - 2**30)
    high = abs(total) // 2**31 * (1 if total >= 0 else -1)  # truncate toward zero
    return round_away(Fraction(high, 2 ** max(-shift, 0)))


def ref_requant(acc: int, m: float, zp: int, lo: int, hi: int, fixed: bool = False) -> int:
    """One accumulator to storage: rounding shift for powers of two (unless ``fixed``), else the
    int32 multiplier."""
    mantissa, exponent = math.frexp(m)
    if mantissa == 0.5 and not fixed:
        value = round_away(Fraction(acc) * Fraction(2) ** (exponent - 1))
    else:
        mult, shift = fixedpoint.quantize_multiplier(np.float64(m))
        value = ref_multiply(acc, int(mult), int(shift))
    return sat(value + zp, lo, hi)


def params(draw_or_rng, qtype: str, per_channel: int | None = None, axis: int = 0) -> QuantParams:
    """Random parameters of the scheme of ``qtype`` (u8 asymmetric, i8/i16 dynamic fixed point)."""
    rng = draw_or_rng
    lo, hi, _ = QTYPES[qtype]
    n = per_channel or 1
    if qtype == "u8":
        scale = rng.uniform(0.005, 0.1, n)
        zero = rng.integers(0, 256, n)
        scheme = "asymmetric_affine"
    else:
        scale = 2.0 ** -rng.integers(3 if qtype == "i8" else 10, 9 if qtype == "i8" else 15, n).astype(float)
        zero = np.zeros(n, dtype=np.int64)
        scheme = "dynamic_fixed_point"
    return QuantParams(qtype, tuple(scale), tuple(int(z) for z in zero), axis=axis if per_channel else None,
                       scheme=scheme)


def storage(rng, q: QuantParams, shape) -> np.ndarray:
    lo, hi, dtype = QTYPES[q.qtype]
    return rng.integers(lo, hi + 1, size=shape).astype(dtype)


def zp_of(q: QuantParams, channel: int = 0) -> int:
    return int(q.zero_point[channel if len(q.zero_point) > 1 else 0])


def sc_of(q: QuantParams, channel: int = 0) -> float:
    return float(q.scale[channel if len(q.scale) > 1 else 0])


seeds = st.integers(0, 2**32 - 1)


# ---------------------------------------------------------------- fixed point
@settings(max_examples=30)
@given(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=20), st.floats(1e-9, 60.0))
def test_multiply_equals_exact_fraction_reference(accs, m):
    mult, shift = fixedpoint.quantize_multiplier(np.float64(m))
    got = fixedpoint.multiply(np.array(accs, dtype=np.int64), mult, shift)
    assert [int(v) for v in got] == [ref_multiply(a, int(mult), int(shift)) for a in accs]
    # the multiplier itself is m to 31 bits, and the product is acc * m rounded (up to a double rounding)
    assert abs(Fraction(int(mult)) * Fraction(2) ** (int(shift) - 31) - Fraction(m)) <= Fraction(m) * 2**-30
    for a, g in zip(accs, got):
        a32 = sat(a, *INT32) * 2 ** max(min(int(shift), 32), 0)
        if INT32[0] <= a32 <= INT32[1]:
            exact = Fraction(sat(a, *INT32)) * Fraction(int(mult)) * Fraction(2) ** (int(shift) - 31)
            assert abs(Fraction(int(g)) - exact) <= 1


@settings(max_examples=30)
@given(seeds, st.sampled_from(["f", "d", "i", "q"]), st.sampled_from(SCHEMES), st.booleans(), st.booleans())
def test_compiled_requantize_equals_numpy_rules(seed, kind, qtype, pot, per_channel):
    rng = np.random.default_rng(seed)
    dtype = {"f": np.float32, "d": np.float64, "i": np.int32, "q": np.int64}[kind]
    limit = {"f": 2**24, "d": 2**50, "i": 2**31 - 2**22, "q": 2**40}[kind]
    acc = (rng.integers(-limit, limit, size=(2, 6, 41)) >> rng.integers(0, 30)).astype(dtype)  # 41: 16-lane blocks + tail
    channels = 6 if per_channel else 1
    m = 2.0 ** rng.integers(-30, 6, channels) if pot else rng.uniform(0.5, 1, channels) * 10.0 ** rng.integers(-9, 2, channels)
    bias = rng.integers(-(2**21), 2**21, 6)
    zp = int(rng.integers(-3, 4))
    bounds = (int(rng.integers(-40000, 10)), int(rng.integers(20, 40000)))
    got = _quant.requantize_channels(acc, m, zp, qtype, bounds, 1, bias)
    lo, hi, _ = QTYPES[qtype]
    lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    total = acc.astype(np.int64) + bias.reshape(1, 6, 1)
    mm = np.broadcast_to(m.reshape(1, -1, 1), acc.shape)
    want = [ref_requant(int(a), float(mi), zp, lo, hi) if not pot else
            sat(round_away(Fraction(int(a)) * Fraction(float(mi))) + zp, lo, hi)
            for a, mi in zip(total.reshape(-1), mm.reshape(-1))]
    assert got.reshape(-1).tolist() == want


@settings(max_examples=30)
@given(seeds, st.sampled_from(SCHEMES), st.sampled_from([1, -1]))
def test_add_sub_equal_integer_reference(seed, qtype, sign):
    rng = np.random.default_rng(seed)
    a_q, b_q, o_q = (params(rng, qtype) for _ in range(3))
    a, b = storage(rng, a_q, (2, 3, 7)), storage(rng, b_q, (2, 3, 7))  # 42: 16-lane blocks and a tail
    got = _quant.quantized_add(a, b, a_q, b_q, o_q, sign)
    shift = _quant.ADD_LEFT_SHIFT[qtype]
    twice = 2 * max(a_q.scale[0], b_q.scale[0])
    (ma, sa), (mb, sb) = [fixedpoint.quantize_multiplier(np.float64(q.scale[0] / twice)) for q in (a_q, b_q)]
    lo, hi, _ = QTYPES[qtype]
    for x, y, g in zip(a.reshape(-1), b.reshape(-1), got.reshape(-1)):
        ta = ref_multiply((int(x) - zp_of(a_q)) * 2**shift, int(ma), int(sa))
        tb = ref_multiply((int(y) - zp_of(b_q)) * 2**shift, int(mb), int(sb))
        assert int(g) == ref_requant(ta + sign * tb, twice / (2**shift * o_q.scale[0]), zp_of(o_q), lo, hi)


# ---------------------------------------------------------------- convolution family
ACTS = [None, {"op": "Relu"}, {"op": "Clip", "min": 0.0, "max": 0.9}, {"op": "LeakyRelu", "alpha": 0.25}]


def finish(acc: int, m: float, o_q: QuantParams, act: dict | None, x_real_neg: bool) -> int:
    """Reference requantization with a fused activation (Relu/Clip as bounds, LeakyRelu as a
    second multiplier on negative sums)."""
    lo, hi, _ = QTYPES[o_q.qtype]
    bounds = _quant.activation_bounds(act, o_q)
    if bounds:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    if act and act["op"] == "LeakyRelu" and acc < 0:
        m = m * act["alpha"]
    return ref_requant(acc, m, zp_of(o_q), lo, hi)


@settings(max_examples=30)
@given(seeds, st.sampled_from(SCHEMES), st.booleans(), st.sampled_from(range(len(ACTS))), st.sampled_from([1, 2]),
       st.sampled_from(["plain", "depthwise", "pointwise"]))
def test_conv_equals_integer_loops(seed, qtype, per_channel, act_index, stride, kind):
    rng = np.random.default_rng(seed)
    c = 4
    m_out, group, k = {"plain": (3, 1, 3), "depthwise": (4, 4, 3), "pointwise": (5, 1, 1)}[kind]
    x_q, o_q = params(rng, qtype), params(rng, qtype)
    w_q = params(rng, qtype, m_out if per_channel else None, axis=0)
    x = storage(rng, x_q, (1, c, 6, 7))
    w = storage(rng, w_q, (m_out, c // group, k, k))
    b = rng.integers(-2000, 2000, m_out).astype(np.int32)
    pad = k // 2
    act = ACTS[act_index]
    attrs = {"strides": [stride, stride], "pads": [pad] * 4, "group": group, "kernel_shape": [k, k]}
    if act:
        attrs["activation"] = act
    b_q = QuantParams("i32", tuple(sc_of(x_q) * np.asarray(w_q.scale)), axis=0 if per_channel else None)
    got = conv.quant_kernel([x, w, b], [x_q, w_q, b_q], [o_q], attrs)[0]
    oh, ow = (6 + 2 * pad - k) // stride + 1, (7 + 2 * pad - k) // stride + 1
    assert got.shape == (1, m_out, oh, ow)
    cg = c // group
    mg = m_out // group
    for mo in range(m_out):
        g = mo // mg
        for oy in range(oh):
            for ox in range(ow):
                acc = int(b[mo])
                for ci in range(cg):
                    for ky in range(k):
                        for kx in range(k):
                            iy, ix = oy * stride - pad + ky, ox * stride - pad + kx
                            if 0 <= iy < 6 and 0 <= ix < 7:
                                acc += (int(x[0, g * cg + ci, iy, ix]) - zp_of(x_q)) * (int(w[mo, ci, ky, kx]) - zp_of(w_q, mo))
                m = sc_of(x_q) * sc_of(w_q, mo) / sc_of(o_q)
                assert int(got[0, mo, oy, ox]) == finish(acc, m, o_q, act, acc < 0), (mo, oy, ox)


@settings(max_examples=30)
@given(seeds, st.sampled_from(SCHEMES), st.booleans(), st.booleans(), st.booleans(),
       st.sampled_from([(1.0, 1.0), (0.5, 1.0), (1.0, 0.25), (2.0, 3.0)]))
def test_gemm_equals_integer_loops(seed, qtype, trans_a, trans_b, per_channel, alpha_beta):
    rng = np.random.default_rng(seed)
    m_rows, k, n = 3, 5, 4
    alpha, beta = alpha_beta
    a_q, o_q = params(rng, qtype), params(rng, qtype)
    b_q = params(rng, qtype, n if per_channel else None, axis=0 if trans_b else 1)
    a = storage(rng, a_q, (k, m_rows) if trans_a else (m_rows, k))
    b = storage(rng, b_q, (n, k) if trans_b else (k, n))
    c = rng.integers(-3000, 3000, n).astype(np.int32)
    attrs = {"transA": int(trans_a), "transB": int(trans_b), "alpha": alpha, "beta": beta}
    got = nn._gemm_quant([a, b, c], [a_q, b_q, None], [o_q], attrs)[0]
    lo, hi, _ = QTYPES[qtype]
    for i in range(m_rows):
        for j in range(n):
            acc = sum((int(a[kk, i] if trans_a else a[i, kk]) - zp_of(a_q)) *
                      (int(b[j, kk] if trans_b else b[kk, j]) - zp_of(b_q, j)) for kk in range(k))
            acc += round_away(Fraction(int(c[j])) * Fraction(beta) / Fraction(alpha))
            m = alpha * sc_of(a_q) * sc_of(b_q, j) / sc_of(o_q)
            assert int(got[i, j]) == ref_requant(acc, m, zp_of(o_q), lo, hi)


@settings(max_examples=30)
@given(seeds, st.sampled_from(SCHEMES), st.booleans())
def test_matmul_equals_integer_loops(seed, qtype, per_channel):
    rng = np.random.default_rng(seed)
    a_q, o_q = params(rng, qtype), params(rng, qtype)
    b_q = params(rng, qtype, 3 if per_channel else None, axis=1)
    a, b = storage(rng, a_q, (2, 4, 6)), storage(rng, b_q, (6, 3))
    got = matmul._quant_kernel([a, b], [a_q, b_q], [o_q], {})[0]
    lo, hi, _ = QTYPES[qtype]
    for idx in np.ndindex(2, 4, 3):
        acc = sum((int(a[idx[0], idx[1], kk]) - zp_of(a_q)) * (int(b[kk, idx[2]]) - zp_of(b_q, idx[2])) for kk in range(6))
        assert int(got[idx]) == ref_requant(acc, sc_of(a_q) * sc_of(b_q, idx[2]) / sc_of(o_q), zp_of(o_q), lo, hi)


@settings(max_examples=30)
@given(seeds, st.sampled_from(SCHEMES), st.booleans(), st.sampled_from([1, 2]))
def test_conv_transpose_equals_scatter_loops(seed, qtype, per_channel, stride):
    rng = np.random.default_rng(seed)
    c, m_out, k, pad = 3, 2, 3, 1
    x_q, o_q = params(rng, qtype), params(rng, qtype)
    w_q = params(rng, qtype, m_out if per_channel else None, axis=1)
    x, w = storage(rng, x_q, (1, c, 4, 3)), storage(rng, w_q, (c, m_out, k, k))
    b = rng.integers(-500, 500, m_out).astype(np.int32)
    attrs = {"strides": [stride, stride], "pads": [pad] * 4}
    got = nn._deconv_quant([x, w, b], [x_q, w_q, None], [o_q], attrs)[0]
    full = [(4 - 1) * stride + k, (3 - 1) * stride + k]
    acc = np.zeros((m_out, *full), dtype=object)
    for ci in range(c):
        for iy in range(4):
            for ix in range(3):
                for mo in range(m_out):
                    for ky in range(k):
                        for kx in range(k):
                            acc[mo, iy * stride + ky, ix * stride + kx] += \
                                (int(x[0, ci, iy, ix]) - zp_of(x_q)) * (int(w[ci, mo, ky, kx]) - zp_of(w_q, mo))
    lo, hi, _ = QTYPES[qtype]
    assert got.shape == (1, m_out, full[0] - 2 * pad, full[1] - 2 * pad)
    for mo, oy, ox in np.ndindex(*got.shape[1:]):
        total = int(acc[mo, oy + pad, ox + pad]) + int(b[mo])
        assert int(got[0, mo, oy, ox]) == ref_requant(total, sc_of(x_q) * sc_of(w_q, mo) / sc_of(o_q), zp_of(o_q), lo, hi)


# ---------------------------------------------------------------- pooling, reductions, resize
@settings(max_examples=30)
@given(seeds, st.sampled_from(SCHEMES), st.booleans(), st.booleans())
def test_average_pool_equals_window_loops(seed, qtype, include_pad, ceil):
    rng = np.random.default_rng(seed)
    x_q, o_q = params(rng, qtype), params(rng, qtype)
    x = storage(rng, x_q, (1, 2, 5, 6))
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": int(include_pad),
             "ceil_mode": int(ceil)}
    got = pool._avgpool_quant([x], [x_q], [o_q], attrs)[0]
    lo, hi, _ = QTYPES[qtype]
    for ch, oy, ox in np.ndindex(*got.shape[1:]):
        total, count = 0, 0
        for ky in range(3):
            for kx in range(3):
                iy, ix = oy * 2 - 1 + ky, ox * 2 - 1 + kx
                inside = 0 <= iy < 5 and 0 <= ix < 6
                declared = -1 <= iy <= 5 and -1 <= ix <= 6  # the declared padding, not the ceil extension
                if inside:
                    total += int(x[0, ch, iy, ix]) - zp_of(x_q)
                count += inside or (include_pad and declared)
        want = ref_requant(total, sc_of(x_q) / (sc_of(o_q) * count), zp_of(o_q), lo, hi, fixed=True)
        assert int(got[0, ch, oy, ox]) == want


@settings(max_examples=30)
@given(seeds, st.sampled_from(SCHEMES), st.sampled_from([((3, 2), (3, 2), (1, 1), (3, 80)), ((3, 3), (2, 2), (1, 1), (9, 8)),
                                                          ((2, 2), (1, 1), (1, 2), (5, 7)), ((1, 4), (1, 3), (1, 1), (2, 13))]))
def test_average_pool_inside_the_image_equals_window_loops(seed, qtype, geometry):
    """Windows that all lie inside the image (no padding, floor sizes): 8-bit storage runs one compiled pass (a
    depthwise convolution by ones, then the window count's multiplier), which gives the window loops' values."""
    kernel, strides, dilations, size = geometry
    rng = np.random.default_rng(seed)
    x_q, o_q = params(rng, qtype), params(rng, "u8")
    x = storage(rng, x_q, (2, 3, *size))
    attrs = {"kernel_shape": list(kernel), "strides": list(strides), "dilations": list(dilations)}
    got = pool._avgpool_quant([x], [x_q], [o_q], attrs)[0]
    out = [(n - d * (k - 1) - 1) // s + 1 for n, k, s, d in zip(size, kernel, strides, dilations)]
    assert got.shape == (2, 3, *out)
    count, (lo, hi, _) = math.prod(kernel), QTYPES["u8"]
    for i, ch, oy, ox in np.ndindex(*got.shape):
        total = sum(int(x[i, ch, oy * strides[0] + ky * dilations[0], ox * strides[1] + kx * dilations[1]]) - zp_of(x_q)
                    for ky in range(kernel[0]) for kx in range(kernel[1]))
        assert int(got[i, ch, oy, ox]) == ref_requant(total, sc_of(x_q) / (sc_of(o_q) * count), zp_of(o_q), lo, hi,
                                                      fixed=True)


@settings(max_examples=30)
@given(seeds, st.sampled_from(SCHEMES), st.sampled_from(["gap", "mean", "sum"]))
def test_global_average_and_reductions_equal_sums(seed, qtype, op):
    rng = np.random.default_rng(seed)
    x_q, o_q = params(rng, qtype), params(rng, qtype)
    x = storage(rng, x_q, (2, 3, 4, 5))
    if op == "gap":
        got = pool._global_avg_quant([x], [x_q], [o_q], {})[0]
        axes, count = (2, 3), 20
    else:
        opdef = {o.name: o for o in reduce.OPS}["ReduceMean" if op == "mean" else "ReduceSum"]
        got = opdef.quant_kernel([x, np.array([1, 3])], [x_q, None], [o_q], {"keepdims": 1})[0]
        axes, count = (1, 3), 15 if op == "mean" else 1
    lo, hi, _ = QTYPES[qtype]
    xc = x.astype(np.int64) - zp_of(x_q)
    sums = xc.sum(axis=axes, keepdims=True)
    assert got.shape == sums.shape
    for s, g in zip(sums.reshape(-1), got.reshape(-1)):
        assert int(g) == ref_requant(int(s), sc_of(x_q) / (sc_of(o_q) * count), zp_of(o_q), lo, hi, fixed=op == "gap")


@settings(max_examples=30)
@given(seeds, st.sampled_from(SCHEMES), st.sampled_from(["half_pixel", "align_corners", "asymmetric"]))
def test_resize_linear_uses_integer_weights(seed, qtype, coord):
    rng = np.random.default_rng(seed)
    x_q = params(rng, qtype)
    x = storage(rng, x_q, (1, 2, 3, 4))
    attrs = {"mode": "linear", "coordinate_transformation_mode": coord}
    scales = np.array([1, 1, 2.0, 1.5], np.float32)
    got = resize.quant_kernel([x, None, scales], [x_q, None, None], [x_q], attrs)[0]
    lo, hi, _ = QTYPES[qtype]

    def taps(n_in, n_out, s):
        out = []
        for o in range(n_out):
            if coord == "half_pixel":
                pos = (o + 0.5) / s - 0.5
            elif coord == "align_corners":
                pos = o * (n_in - 1) / (n_out - 1)
            else:
                pos = o / s
            pos = min(max(pos, 0.0), n_in - 1)
            i0 = math.floor(pos)
            w1 = round_away(Fraction(pos - i0) * 1024)
            out.append(((i0, 1024 - w1), (min(i0 + 1, n_in - 1), w1)))
        return out

    rows, cols = taps(3, 6, 2.0), taps(4, 6, 1.5)
    assert got.shape == (1, 2, 6, 6)
    for ch, oy, ox in np.ndindex(2, 6, 6):
        total = sum(wy * wx * (int(x[0, ch, iy, ix]) - zp_of(x_q)) for iy, wy in rows[oy] for ix, wx in cols[ox])
        assert int(got[0, ch, oy, ox]) == sat(round_away(Fraction(total, 2**20)) + zp_of(x_q), lo, hi)


# ---------------------------------------------------------------- elementwise and data movement
@settings(max_examples=30)
@given(seeds, st.sampled_from(SCHEMES))
def test_prelu_equals_two_multipliers(seed, qtype):
    rng = np.random.default_rng(seed)
    x_q, s_q, o_q = params(rng, qtype), params(rng, qtype), params(rng, qtype)
    x, slope = storage(rng, x_q, (1, 3, 2, 2)), storage(rng, s_q, (3, 1, 1))
    got = elementwise._prelu_quant([x, slope], [x_q, s_q], [o_q], {})[0]
    lo, hi, _ = QTYPES[qtype]
    for n, ch, i, j in np.ndindex(*x.shape):
        xc = int(x[n, ch, i, j]) - zp_of(x_q)
        if xc >= 0:
            want = ref_requant(xc, sc_of(x_q) / sc_of(o_q), zp_of(o_q), lo, hi)
        else:
            sc = int(slope[ch, 0, 0]) - zp_of(s_q)
            want = ref_requant(xc * sc, sc_of(x_q) * sc_of(s_q) / sc_of(o_q), zp_of(o_q), lo, hi)
        assert int(got[n, ch, i, j]) == want


@settings(max_examples=30)
@given(seeds, st.sampled_from(SCHEMES))
def test_softmax_equals_lut_reference(seed, qtype):
    rng = np.random.default_rng(seed)
    x_q, o_q = params(rng, qtype), params(rng, qtype)
    x = storage(rng, x_q, (3, 7))
    got = nn._softmax_quant([x], [x_q], [o_q], {"axis": -1})[0]
    lo, hi, _ = QTYPES[qtype]
    for r in range(3):
        row = [int(v) for v in x[r]]
        e = [round_away(Fraction(math.exp(-(max(row) - v) * x_q.scale[0])) * 2**20) for v in row]
        total = sum(e)
        for v, g in zip(e, got[r]):
            p = (v * 2**30 + total // 2) // total
            assert int(g) == ref_requant(p, 2.0**-30 / sc_of(o_q), zp_of(o_q), lo, hi)
    real = (got.astype(np.float64) - zp_of(o_q)) * o_q.scale[0]
    xr = (x.astype(np.float64) - zp_of(x_q)) * x_q.scale[0]
    ref = np.exp(xr - xr.max(axis=1, keepdims=True))
    ref /= ref.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(real, np.clip(ref, (lo - zp_of(o_q)) * o_q.scale[0], (hi - zp_of(o_q)) * o_q.scale[0]),
                               atol=o_q.scale[0] * 1.01 + 1e-4)


@settings(max_examples=30)
@given(seeds, st.sampled_from(SCHEMES))
def test_concat_rescales_each_input(seed, qtype):
    rng = np.random.default_rng(seed)
    qs = [params(rng, qtype) for _ in range(3)]
    o_q = qs[0] if seed % 2 else params(rng, qtype)
    xs = [storage(rng, q, (1, 2, 3)) for q in qs]
    got = tensor._concat_quant(xs, qs, [o_q], {"axis": 1})[0]
    lo, hi, _ = QTYPES[qtype]
    want = []
    for x, q in zip(xs, qs):
        same = q.scale == o_q.scale and q.zero_point == o_q.zero_point
        want.append([[int(v) if same else ref_requant(int(v) - zp_of(q), sc_of(q) / sc_of(o_q), zp_of(o_q), lo, hi)
                      for v in row] for row in x[0]])
    assert got[0].tolist() == [row for part in want for row in part]


@pytest.mark.parametrize("qtype", SCHEMES)
def test_pad_constant_is_the_zero_point_and_maxpool_pads_with_the_minimum(qtype):
    rng = np.random.default_rng(3)
    x_q = params(rng, qtype)
    x = storage(rng, x_q, (1, 1, 2, 2))
    padded = tensor._pad_quant([x, np.array([0, 0, 1, 1, 0, 0, 1, 1])], [x_q, None], [x_q], {"mode": "constant"})[0]
    assert padded[0, 0, 0, 0] == zp_of(x_q) and padded.dtype == x.dtype
    lo = QTYPES[qtype][0]
    maxpool = {o.name: o for o in pool.OPS}["MaxPool"]
    assert maxpool.quant_same_scale
    low = np.full((1, 1, 2, 2), lo, dtype=x.dtype)  # every real value is the type minimum
    out = maxpool.kernel([low], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]})[0]
    assert (out == lo).all()


def test_every_integer_kernel_is_registered():
    quantized = {o.name for mod in (conv, nn, matmul, pool, reduce, resize, tensor, elementwise) for o in mod.OPS if o.quantizable}
    for name in ("Conv", "ConvTranspose", "Gemm", "MatMul", "AveragePool", "GlobalAveragePool", "MaxPool",
                 "GlobalMaxPool", "Concat", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Slice",
                 "Gather", "Split", "DepthToSpace", "SpaceToDepth", "Tile", "Expand", "Pad", "Resize", "ReduceMean",
                 "ReduceSum", "ReduceMax", "PRelu", "LeakyRelu", "Softmax", "Add", "Mul", "Max", "Min"):
        assert name in quantized, name
    assert hasattr(_native, "requantize") and hasattr(_native, "quantized_add")


@settings(max_examples=30)
@given(seeds, st.sampled_from(SCHEMES), st.sampled_from([np.float32, np.float64]))
def test_compiled_quantize_equals_the_rounding_rule(seed, qtype, dtype):
    """quantize (compiled for per-tensor float input) equals the numpy formula: round(x / scale) ties away
    from zero (exact ties with a power-of-two scale), + zero point, saturated both ways; NaN gives the
    zero point."""
    rng = np.random.default_rng(seed)
    lo, hi, _ = QTYPES[qtype]
    scale = 2.0 ** -int(rng.integers(1, 8)) if rng.random() < 0.5 else float(rng.uniform(0.001, 0.5))
    zero = int(rng.integers(lo, hi + 1)) if qtype == "u8" else 0
    ties = (rng.integers(-300, 300, 40) + 0.5) * scale
    x = np.concatenate([rng.normal(0, scale * (hi - lo) / 3, 200), ties, [scale * 1e6, -scale * 1e6, 0.0]])
    x = x.astype(dtype)
    q = QuantParams(qtype, scale, zero)
    got = params_quantize(x, q)
    v = x.astype(np.float64) / scale
    numpy_rule = np.clip(np.where(v >= 0, np.floor(v + 0.5), np.ceil(v - 0.5)) + zero, lo, hi)
    assert got.tolist() == numpy_rule.astype(np.int64).tolist()
    if scale == 2.0 ** round(math.log2(scale)):  # exact ties round away from zero
        k = np.floor(ties / scale)
        assert got[200:240].tolist() == np.clip(np.where(ties > 0, k + 1, k) + zero, lo, hi).astype(np.int64).tolist()
    assert params_quantize(np.array([np.nan], dtype), q).tolist() == [min(max(zero, lo), hi)]


@settings(max_examples=10)
@given(seeds, st.sampled_from(["u8", "i8", "i16"]))
def test_fully_connected_too_wide_for_float32_equals_integer_sums(seed, qtype):
    """A fully connected layer whose sums exceed float32's exact range runs as several exact float32 runs
    of the inner axis (summed in float64): equal to int64 sums."""
    rng = np.random.default_rng(seed)
    a_q, o_q, b_q = params(rng, qtype), params(rng, qtype), params(rng, qtype, 7, axis=0)
    k = 3000  # beyond 2**24 / (255 * 128): several float32 runs
    a, b = storage(rng, a_q, (3, k)), storage(rng, b_q, (7, k))
    assert len(_quant.exact_chunks(_quant.weight_plan(b, b_q, a_q, 0)[0], a_q)) > 1
    got = nn._gemm_quant([a, b, None], [a_q, b_q, None], [o_q], {"transB": 1})[0]
    acc = (a.astype(np.int64) - zp_of(a_q)) @ (b.astype(np.int64) - np.array([zp_of(b_q, j) for j in range(7)])[:, None]).T
    lo, hi, _ = QTYPES[qtype]
    for i, j in np.ndindex(3, 7):
        assert int(got[i, j]) == ref_requant(int(acc[i, j]), sc_of(a_q) * sc_of(b_q, j) / sc_of(o_q), zp_of(o_q), lo, hi)


@settings(max_examples=10)
@given(seeds, st.sampled_from(["u8", "i8"]), st.booleans())
def test_pointwise_conv_reading_storage_equals_integer_sums(seed, qtype, per_channel):
    """A 1x1 convolution over whole 32-column panels (the GEMM converts 8-bit storage while packing)
    equals int64 sums, requantized per channel."""
    rng = np.random.default_rng(seed)
    x_q, o_q = params(rng, qtype), params(rng, qtype)
    w_q = params(rng, qtype, 6 if per_channel else None, axis=0)
    x, w = storage(rng, x_q, (1, 8, 16, 16)), storage(rng, w_q, (6, 8, 1, 1))
    b = rng.integers(-2000, 2000, 6).astype(np.int32)
    b_q = QuantParams("i32", tuple(sc_of(x_q) * np.asarray(w_q.scale)), axis=0 if per_channel else None)
    got = conv.quant_kernel([x, w, b], [x_q, w_q, b_q], [o_q], {"kernel_shape": [1, 1]})[0]
    wz = np.array([zp_of(w_q, j) for j in range(6)])
    acc = np.einsum("oc,chw->ohw", w[:, :, 0, 0].astype(np.int64) - wz[:, None], x[0].astype(np.int64) - zp_of(x_q))
    acc += b[:, None, None]
    lo, hi, _ = QTYPES[qtype]
    for o, i, j in np.ndindex(6, 16, 16):
        want = ref_requant(int(acc[o, i, j]), sc_of(x_q) * sc_of(w_q, o) / sc_of(o_q), zp_of(o_q), lo, hi)
        assert int(got[0, o, i, j]) == want
