"""Tests for _native.conv_gemm (run: python -m pytest test_gemm.py)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from rknn_core import _native

RNG = np.random.default_rng(1234)


def ref_gemm(a, bcols, bias, lo, hi):
    z = a.astype(np.float64) @ bcols.astype(np.float64)
    if bias is not None:
        z += bias.astype(np.float64)[:, None]
    return np.minimum(np.maximum(z, lo), hi)


def check(y, a, bcols, bias, lo, hi):
    ref = ref_gemm(a, bcols, bias, lo, hi)
    # float32 accumulation error bound scales with sum |a||b|.
    scale = np.abs(a).astype(np.float64) @ np.abs(bcols).astype(np.float64)
    if bias is not None:
        scale += np.abs(bias)[:, None]
    tol = 1e-5 * (scale + 1e-3)
    bad = np.abs(y.astype(np.float64) - ref) > tol
    assert not bad.any(), f"max err {np.abs(y - ref).max()}"


def run_1x1(m, k, n, bias=True, lo=-np.inf, hi=np.inf):
    a = RNG.standard_normal((m, k), dtype=np.float32)
    b = RNG.standard_normal((k, n), dtype=np.float32)
    bi = RNG.standard_normal(m).astype(np.float32) if bias else None
    koff = np.arange(k, dtype=np.int64) * n
    poff = np.arange(n, dtype=np.int64)
    y = np.full((m, n), np.nan, np.float32)
    _native.conv_gemm(a, b, koff, poff, bi, y, m, k, n, lo, hi)
    check(y, a, b, bi, lo, hi)
    return a, b, bi, koff, poff, y


def im2col(x, kh, kw, stride, pad):
    """Return (padded flat input, koff, poff, explicit im2col matrix)."""
    c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    hp, wp = xp.shape[1:]
    oh = (hp - kh) // stride + 1
    ow = (wp - kw) // stride + 1
    cc, ki, kj = np.meshgrid(np.arange(c), np.arange(kh), np.arange(kw), indexing="ij")
    koff = (cc * hp * wp + ki * wp + kj).reshape(-1).astype(np.int64)
    oi, oj = np.meshgrid(np.arange(oh), np.arange(ow), indexing="ij")
    poff = (oi * stride * wp + oj * stride).reshape(-1).astype(np.int64)
    cols = np.empty((c * kh * kw, oh * ow), np.float32)
    for ci in range(c):
        for i in range(kh):
            for j in range(kw):
                patch = xp[ci, i:i + stride * oh:stride, j:j + stride * ow:stride]
                cols[(ci * kh + i) * kw + j] = patch.reshape(-1)
    return np.ascontiguousarray(xp).reshape(-1), koff, poff, cols


@pytest.fixture(params=[1, 2], autouse=True)
def threads(request):
    old = _native.get_threads()
    _native.set_threads(request.param)
    yield request.param
    _native.set_threads(old)


EDGE = [1, 2, 3, 5, 7, 8, 9, 13, 16, 17, 31, 32, 33, 47, 64, 97]


@pytest.mark.parametrize("m", [1, 7, 8, 9, 23, 64])
@pytest.mark.parametrize("n", [1, 5, 7, 8, 16, 17, 23, 24, 31, 32, 33, 40, 49, 100, 196, 257])
@pytest.mark.parametrize("k", [1, 3, 16, 17, 256, 257, 600])
def test_edges(m, k, n):
    run_1x1(m, k, n, bias=(m + k + n) % 2 == 0)


@pytest.mark.parametrize(("m", "k", "n", "row"), [(16, 32, 12544, 12544), (24, 300, 100, 100), (8, 1, 64, 64),
                                                  (20, 17, 1000, 1037)])
def test_b_rows_read_in_place_give_the_packed_sums(m, k, n, row):
    """A 1x1 convolution with few output rows reads its input rows where they lie (no packing): each output is
    the one a many-row GEMM computes from packed panels, bit for bit (the same rows of a 64-row A); rows may lie
    further apart than n, the last panel may be partial, k may span several k blocks."""
    rng = np.random.default_rng(m + k + n)
    a = rng.standard_normal((64, k), dtype=np.float32)
    b = rng.standard_normal((k, row), dtype=np.float32)
    bias = rng.standard_normal(64, dtype=np.float32)
    koff, poff = np.arange(k, dtype=np.int64) * row, np.arange(n, dtype=np.int64)
    packed, in_place = np.empty((64, n), np.float32), np.empty((m, n), np.float32)
    _native.conv_gemm(a, b, koff, poff, bias, packed, 64, k, n, -1.0, 2.0)
    _native.conv_gemm(np.ascontiguousarray(a[:m]), b, koff, poff, bias[:m], in_place, m, k, n, -1.0, 2.0)
    np.testing.assert_array_equal(in_place, packed[:m])
    check(in_place, a[:m], b[:, :n], bias[:m], -1.0, 2.0)


def test_random_shapes():
    for _ in range(60):
        m, n = (int(RNG.choice(EDGE)) * int(RNG.integers(1, 4)) for _ in range(2))
        k = int(RNG.integers(1, 1200))
        run_1x1(m, k, n, bias=bool(RNG.integers(2)), lo=0.0, hi=6.0)


@pytest.mark.parametrize("shape", [(32, 16, 12544), (96, 24, 3136), (1280, 320, 49),
                                   (512, 4608, 49), (1000, 1280, 1), (64, 576, 784)])
def test_network_shapes(shape):
    run_1x1(*shape, bias=True, lo=0.0, hi=6.0)


def test_clamp_and_nobias():
    run_1x1(40, 50, 70, bias=False, lo=0.0, hi=6.0)
    run_1x1(40, 50, 70, bias=True, lo=-0.5, hi=0.25)
    _, _, _, _, _, y = run_1x1(40, 50, 70, bias=True, lo=0.0, hi=6.0)
    assert y.min() >= 0.0 and y.max() <= 6.0


def test_k_zero():
    m, n = 9, 40
    bias = np.arange(m, dtype=np.float32) - 4
    y = np.full((m, n), np.nan, np.float32)
    _native.conv_gemm(np.zeros(0, np.float32), np.zeros(1, np.float32),
                    np.zeros(0, np.int64), np.zeros(n, np.int64), bias, y, m, 0, n, -1.0, 2.0)
    np.testing.assert_array_equal(y, np.clip(bias, -1, 2)[:, None].repeat(n, 1))


@pytest.mark.parametrize("n", [3, 40])
def test_nan_propagates(n):
    m, k = 10, 20
    a = RNG.standard_normal((m, k), dtype=np.float32)
    b = RNG.standard_normal((k, n), dtype=np.float32)
    a[3, 5] = np.nan
    b[7, 2] = np.nan
    y = np.zeros((m, n), np.float32)
    _native.conv_gemm(a, b, np.arange(k, dtype=np.int64) * n, np.arange(n, dtype=np.int64),
                    None, y, m, k, n, 0.0, 6.0)
    ref = ref_gemm(a, b, None, 0.0, 6.0)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    assert np.isnan(y[3]).all() and np.isnan(y[:, 2]).all()
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(y[ok], ref[ok], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("c,h,w,kk,stride,pad,m", [
    (3, 17, 19, 3, 2, 1, 32), (16, 14, 14, 3, 1, 1, 24), (8, 9, 7, 3, 2, 0, 5),
    (5, 28, 28, 3, 1, 1, 40), (4, 15, 15, 5, 2, 2, 9), (64, 7, 7, 3, 1, 1, 70),
    (32, 56, 56, 1, 2, 0, 16), (3, 40, 40, 7, 2, 3, 17)])
def test_im2col(c, h, w, kk, stride, pad, m):
    x = RNG.standard_normal((c, h, w), dtype=np.float32)
    bflat, koff, poff, cols = im2col(x, kk, kk, stride, pad)
    k, n = cols.shape
    a = RNG.standard_normal((m, k), dtype=np.float32)
    bias = RNG.standard_normal(m).astype(np.float32)
    y = np.empty((m, n), np.float32)
    _native.conv_gemm(a, bflat, koff, poff, bias, y, m, k, n, 0.0, 6.0)
    check(y, a, cols, bias, 0.0, 6.0)


@pytest.mark.parametrize("shape", [(64, 576, 3136), (960, 160, 49), (24, 144, 3136),
                                   (1000, 1280, 1), (333, 77, 101), (5, 7, 3)])
def test_threads_identical(shape):
    m, k, n = shape
    a = RNG.standard_normal((m, k), dtype=np.float32)
    b = RNG.standard_normal((k, n), dtype=np.float32)
    bias = RNG.standard_normal(m).astype(np.float32)
    koff, poff = np.arange(k, dtype=np.int64) * n, np.arange(n, dtype=np.int64)
    out = []
    for t in (1, 2, 3):
        _native.set_threads(t)
        y = np.empty((m, n), np.float32)
        _native.conv_gemm(a, b, koff, poff, bias, y, m, k, n, -np.inf, np.inf)
        out.append(y)
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[0], out[2])


def test_concurrent_python_threads():
    import threading
    m, k, n = 64, 200, 900
    a = RNG.standard_normal((m, k), dtype=np.float32)
    b = RNG.standard_normal((k, n), dtype=np.float32)
    koff, poff = np.arange(k, dtype=np.int64) * n, np.arange(n, dtype=np.int64)
    want = np.empty((m, n), np.float32)
    _native.conv_gemm(a, b, koff, poff, None, want, m, k, n, -np.inf, np.inf)
    errors = []

    def work():
        y = np.empty((m, n), np.float32)
        for _ in range(20):
            _native.conv_gemm(a, b, koff, poff, None, y, m, k, n, -np.inf, np.inf)
            if not np.array_equal(y, want):
                errors.append(1)

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors


def test_after_fork():
    code = (
        "import os, numpy as np\nfrom rknn_core import _native\n"
        "_native.set_threads(2)\n"
        "m,k,n=64,100,3000\n"
        "a=np.ones((m,k),np.float32); b=np.ones((k,n),np.float32); y=np.empty((m,n),np.float32)\n"
        "ko=np.arange(k,dtype=np.int64)*n; po=np.arange(n,dtype=np.int64)\n"
        "_native.conv_gemm(a,b,ko,po,None,y,m,k,n,-1e9,1e9)\n"
        "pid=os.fork()\n"
        "if pid==0:\n"
        "    y[:]=0; _native.conv_gemm(a,b,ko,po,None,y,m,k,n,-1e9,1e9)\n"
        "    os._exit(0 if (y==k).all() else 3)\n"
        "_,st=os.waitpid(pid,0); assert os.waitstatus_to_exitcode(st)==0\n"
        "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, cwd=os.path.dirname(os.path.abspath(__file__)))
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_errors():
    m, k, n = 4, 5, 6
    a = np.zeros((m, k), np.float32)
    b = np.zeros(k * n, np.float32)
    koff = np.arange(k, dtype=np.int64) * n
    poff = np.arange(n, dtype=np.int64)
    y = np.zeros((m, n), np.float32)
    bias = np.zeros(m, np.float32)
    _native.conv_gemm(a, b, koff, poff, bias, y, m, k, n, 0.0, 1.0)
    bad = [
        dict(a=a[:3]), dict(y=y[:3]), dict(koff=koff[:4]), dict(poff=poff[:5]),
        dict(bias=bias[:3]), dict(b=b[:-1]), dict(koff=koff - 1),
        dict(poff=poff + 1), dict(m=-1),
    ]
    for over in bad:
        args = dict(a=a, b=b, koff=koff, poff=poff, bias=bias, y=y, m=m, k=k, n=n)
        args.update(over)
        with pytest.raises(ValueError):
            _native.conv_gemm(args["a"], args["b"], args["koff"], args["poff"], args["bias"],
                            args["y"], args["m"], args["k"], args["n"], 0.0, 1.0)
    with pytest.raises(ValueError):
        _native.set_threads(0)
    with pytest.raises(TypeError):  # read-only output
        ro = y.copy()
        ro.flags.writeable = False
        _native.conv_gemm(a, b, koff, poff, bias, ro, m, k, n, 0.0, 1.0)


def test_default_threads_env():
    here = os.path.dirname(os.path.abspath(__file__))
    for env_val, want in (("1", "1"), ("3", "3")):
        env = dict(os.environ, OMP_NUM_THREADS=env_val)
        r = subprocess.run([sys.executable, "-c", "from rknn_core import _native; print(_native.get_threads())"],
                           env=env, cwd=here, capture_output=True, text=True, timeout=60)
        assert r.stdout.strip() == want
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    r = subprocess.run([sys.executable, "-c", "from rknn_core import _native; print(_native.get_threads())"],
                       env=env, cwd=here, capture_output=True, text=True, timeout=60)
    assert int(r.stdout) == len(os.sched_getaffinity(0))


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux /proc")
def test_idle_workers_sleep():
    """After a call, pool workers stop using CPU (short spin, then sleep)."""
    import time

    def cpu_ns(tids):
        out = {}
        for t in tids:
            with open(f"/proc/self/task/{t}/schedstat") as f:
                out[t] = int(f.read().split()[0])
        return out

    before = set(os.listdir("/proc/self/task"))
    _native.set_threads(1)  # drop the pool; it is recreated by the next call
    _native.set_threads(2)
    m, k, n = 64, 300, 3000
    a = np.ones((m, k), np.float32)
    b = np.ones((k, n), np.float32)
    y = np.empty((m, n), np.float32)
    _native.conv_gemm(a, b, np.arange(k, dtype=np.int64) * n, np.arange(n, dtype=np.int64),
                    None, y, m, k, n, -np.inf, np.inf)
    workers = set(os.listdir("/proc/self/task")) - before
    assert len(workers) == 1
    time.sleep(0.05)
    c0 = cpu_ns(workers)
    time.sleep(0.3)
    c1 = cpu_ns(workers)
    used = max(c1[t] - c0[t] for t in workers)
    assert used < 5e6, f"an idle worker used {used / 1e6:.1f} ms of CPU"


INT8_SHAPES = [(1, 1, 1), (7, 9, 49), (9, 33, 300), (23, 96, 196), (16, 1500, 40), (40, 2100, 33), (5, 40, 50), (3, 17, 10)]


@pytest.mark.skipif(not _native.int8_gemm(), reason="this CPU has neither AVX-512 VNNI nor AVX2: the 8-bit GEMM is not used")
@pytest.mark.parametrize("m, k, n", INT8_SHAPES)
@pytest.mark.parametrize("kind, span", [("B", 120), ("B", 255), ("b", 255), ("b", 60)])
def test_int8_gemm_equals_float_gemm(m, k, n, kind, span):
    """qconv_gemm_u8 (VNNI or AVX2, int32 lanes) gives qconv_gemm's (float32) results bit for bit: weights within a
    byte or shifted per row (span 255: u8 weights with any zero point), u8 and i8 storage, tails of rows
    and columns (on AVX2 one or two columns past a multiple of 8 as dot products: n = 49, 33, 50, 10), k across
    the blocks, whatever the thread count."""
    from rknn_core.ops._quant import int8_operands

    rng = np.random.default_rng(m * k * n + span)
    low = rng.integers(-span, 1, (m, 1))
    wc = (low + rng.integers(0, span + 1, (m, k))).astype(np.float32)
    lo, hi, dtype = (0, 255, np.uint8) if kind == "B" else (-128, 127, np.int8)
    b = rng.integers(lo, hi + 1, k * 3 + n + 7).astype(dtype)
    koff = (rng.permutation(k * 3)[:k]).astype(np.int64)
    poff = np.arange(n, dtype=np.int64) + rng.integers(0, 8)
    zx = int(rng.integers(lo, hi + 1))
    operands = int8_operands(wc, zx + (128 if kind == "b" else 0))
    sums = wc.astype(np.int64) @ (b[koff[:, None] + poff[None, :]].astype(np.int64) - zx)
    mult = np.array([1 << 30], np.int64)  # times 2**(shift - 1): the largest sum near 100
    shift = np.array([1 + int(np.floor(np.log2(100 / max(1, np.abs(sums).max()))))], np.int64)
    bias = np.zeros(m, np.int64)
    args = (b, kind, koff, poff, bias, mult, shift, False)
    want, got = np.empty((m, n), np.uint8), np.empty((m, n), np.uint8)
    _native.qconv_gemm(wc, b, kind, zx, koff, poff, bias, mult, shift, False, want, "B", 128, 0, 255, m, k, n)
    _native.qconv_gemm_u8(*operands, *args, got, "B", 128, 0, 255, m, k, n)
    np.testing.assert_array_equal(got, want)
    assert operands[2] is None if span < 128 else (operands[2] is not None or k < 9)  # shifted rows
    assert len(np.unique(want)) > min(m * n // 4, 20)
    pairs, again = _native.int8_pairs(operands[0], *operands[0].shape), np.empty((m, n), np.uint8)
    _native.qconv_gemm_u8(*operands, *args, again, "B", 128, 0, 255, m, k, n, None, None, pairs)  # made once
    np.testing.assert_array_equal(again, want)


def test_int8_pairs_are_the_weights_as_this_cpu_reads_them():
    """On AVX2 without VNNI, the weights sign-extended to 16 bits (pairs of consecutive ones); elsewhere None. A
    buffer too small for the weights is refused."""
    from rknn_core.ops._quant import int8_operands

    a8 = np.array([[1, -2, 3, -128, 127, 0, -5, 6]], np.int8)
    pairs = _native.int8_pairs(a8, 1, 8)
    if pairs is None:
        pytest.skip("this CPU's 8-bit kernels read the bytes themselves (VNNI) or there are none")
    np.testing.assert_array_equal(np.frombuffer(pairs, np.int16), [1, -2, 3, -128, 127, 0, -5, 6])
    with pytest.raises(ValueError, match="int8_pairs"):
        _native.int8_pairs(a8, 1, 6)
    operands = int8_operands(np.ones((2, 8), np.float32), 0)
    b, offsets = np.zeros(8 * 3, np.uint8), (np.arange(8, dtype=np.int64) * 3, np.arange(3, dtype=np.int64))
    one = (np.zeros(2, np.int64), np.array([1 << 30], np.int64), np.array([0], np.int64), False)
    with pytest.raises(ValueError, match="pairs do not match"):
        _native.qconv_gemm_u8(*operands, b, "B", *offsets, *one, np.empty((2, 3), np.uint8), "B", 0, 0, 255, 2, 8, 3,
                              None, None, bytearray(8))


@pytest.mark.skipif(not _native.int8_gemm(), reason="this CPU has neither AVX-512 VNNI nor AVX2: the 8-bit GEMM is not used")
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("ow", [5, 20, 40, 75])
@pytest.mark.parametrize("kind", ["B", "b"])
@pytest.mark.parametrize("m", [8, 40])
def test_int8_gemm_gathers_strided_window_rows(stride, ow, kind, m):
    """The 8-bit GEMM's explicit im2col of a 3x3 window of ``stride`` over 3-channel planes (a stem conv):
    each output row is one run of offsets in equal steps (stride 2 copied 32 bytes at a time); the sums are
    the float GEMM's bit for bit. With more rows than columns, two threads split the rows and share panels
    packed once."""
    from rknn_core.ops._quant import int8_operands

    rng = np.random.default_rng(stride * 100 + ow)
    oh, channels = 4, 3
    h, w = (oh - 1) * stride + 3, (ow - 1) * stride + 3
    lo, hi, dtype = (0, 255, np.uint8) if kind == "B" else (-128, 127, np.int8)
    b = rng.integers(lo, hi + 1, channels * h * w).astype(dtype)
    koff = np.array([(c * h + i) * w + j for c in range(channels) for i in range(3) for j in range(3)], np.int64)
    poff = np.array([(y * stride) * w + x * stride for y in range(oh) for x in range(ow)], np.int64)
    k, n = koff.size, poff.size
    wc = rng.integers(-100, 101, (m, k)).astype(np.float32)
    zx = int(rng.integers(lo, hi + 1))
    operands = int8_operands(wc, zx + (128 if kind == "b" else 0))
    mult, shift, bias = np.array([1 << 30], np.int64), np.array([-6], np.int64), np.zeros(m, np.int64)
    want, got = np.empty((m, n), np.uint8), np.empty((m, n), np.uint8)
    _native.qconv_gemm(wc, b, kind, zx, koff, poff, bias, mult, shift, False, want, "B", 128, 0, 255, m, k, n)
    _native.qconv_gemm_u8(*operands, b, kind, koff, poff, bias, mult, shift, False, got, "B", 128, 0, 255, m, k, n)
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) > 20


def test_int8_operands_refuse_what_bytes_cannot_hold():
    from rknn_core.ops._quant import int8_operands

    assert int8_operands(np.array([[-200.0, 100.0]], np.float32), 0) is None  # spans 300
    assert int8_operands(np.zeros((1, 70000), np.float32), 0) is None  # int32 lanes could overflow
    a8, terms, d = int8_operands(np.array([[250.0, 5.0, 0.0]], np.float32), 7)
    assert a8.shape == (1, 4) and list(a8[0]) == [122, -123, -128, 0] and list(d) == [128]  # lowest to -128
    assert list(terms) == [-7 * (122 - 123 - 128) - 3 * 128 * 7]


@pytest.mark.parametrize(("c", "h", "w", "kernel", "strides", "pads"), [
    (3, 224, 224, (3, 3), (2, 2), (0, 0, 1, 1)),  # EfficientNet's stem (TF "SAME" as explicit pads)
    (3, 31, 29, (3, 3), (2, 2), (1, 1, 1, 1)),
    (4, 17, 20, (5, 5), (2, 2), (2, 2, 2, 2)),
    (2, 13, 14, (3, 2), (3, 2), (1, 0, 2, 1)),
])
def test_strided_conv_on_stride_phases_equals_the_bordered_planes(monkeypatch, c, h, w, kernel, strides, pads):
    """A strided float convolution reads its input split into stride phases (contiguous im2col runs): the same
    taps in the same order, so the same bits as from the zero-bordered planes."""
    from rknn_core.ops import conv

    rng = np.random.default_rng(h)
    x = rng.normal(0, 1, (1, c, h, w)).astype(np.float32)
    wts, b = rng.normal(0, 0.3, (8, c, *kernel)).astype(np.float32), rng.normal(0, 0.1, 8).astype(np.float32)

    def run() -> np.ndarray:
        attrs = {"kernel_shape": list(kernel), "strides": list(strides), "pads": list(pads),
                 "activation": {"op": "Clip", "min": 0.0, "max": 6.0}}  # a fresh dict: a fresh per-node plan
        return conv.kernel([x, wts, b], attrs)[0]

    assert conv._phased(conv._geometry(x.shape, wts.shape, {"kernel_shape": list(kernel), "strides": list(strides),
                                                           "pads": list(pads)}), (h, w), 1, 1, False) is not None
    phased = run()
    monkeypatch.setattr(conv, "_phased", lambda *args: None)
    bordered = run()
    assert phased.shape == bordered.shape and len(np.unique(phased)) > 50
    np.testing.assert_array_equal(phased.view(np.uint32), bordered.view(np.uint32))
