"""The compiled 2-D MaxPool (rknn_core._native.maxpool2d), its numpy twin and the numpy path of
ops/pool.py give the same values bit for bit (NaN payloads, infinities and signed zeros included)
over random geometries and the four dtypes, on one thread and on the pool; onnxruntime agrees on
finite values; RKNN_NO_NATIVE runs the twin."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_util import run_ort, save_model, single_op

from rknn_core import native_numpy
from rknn_core.kernels_backend import FORCE_NUMPY, NumpyKernels, load_kernels
from rknn_core.ops import pool
from rknn_core.ops._spatial import pad_spatial

MAXPOOL = {o.name: o for o in pool.OPS}["MaxPool"]
DTYPES = [np.float32, np.uint8, np.int8, np.int16]
LOWEST = float(np.finfo(np.float32).min)




def random_case(rng: np.random.Generator, ort_safe: bool, big: bool = False) -> tuple[tuple, dict]:
    """An input shape and MaxPool attributes: kernel 1-5, strides 1-3, dilations 1-2, explicit pads (with
    ceil_mode) or auto_pad; ``ort_safe`` keeps to what onnxruntime computes as the ONNX spec says (pads
    below the kernel, SAME undilated and not negative), else pads may exceed the kernel (windows of
    padding only)."""
    while True:
        rank = 1 if rng.random() < 0.2 else 2
        kernel = [int(k) for k in rng.integers(1, 6, rank)]
        strides = [int(s) for s in rng.integers(1, 4, rank)]
        dilations = [int(d) for d in rng.integers(1, 3, rank)]
        auto_pad = str(rng.choice(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
        if auto_pad.startswith("SAME") and ort_safe:
            dilations = [1] * rank
        attrs = {"kernel_shape": kernel, "strides": strides, "dilations": dilations}
        pads = [0] * (2 * rank)
        if auto_pad == "NOTSET":
            pads = [int(rng.integers(0, k if ort_safe else 2 * k + 1)) for k in kernel * 2]
            attrs.update(pads=pads, ceil_mode=int(rng.integers(0, 2)))
        else:
            attrs["auto_pad"] = auto_pad
        eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
        top = 90 if big else 24
        spatial = [int(rng.integers(max(1, e - pads[i] - pads[i + rank]), top)) for i, e in enumerate(eff)]
        if auto_pad == "VALID" and any(s < e for s, e in zip(spatial, eff)):
            continue
        if auto_pad.startswith("SAME") and any((-(-i // s) - 1) * s + k < i
                                               for i, s, k in zip(spatial, strides, kernel)):
            continue  # onnxruntime fails on (or mis-handles) a negative SAME padding
        channels = int(rng.integers(8, 24)) if big else int(rng.integers(1, 4))
        return (int(rng.integers(1, 3)), channels, *spatial), attrs


def random_values(rng: np.random.Generator, shape: tuple, dtype, specials: bool) -> np.ndarray:
    """Integers over the dtype's whole range, or floats; with ``specials`` a fifth of them NaN (several
    payloads), infinities, signed zeros and the float32 extremes."""
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
    x = (rng.standard_normal(shape) * 10).astype(np.float32)
    if specials:
        special = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, LOWEST, -LOWEST], np.float32)
        pick = rng.random(shape) < 0.2
        x[pick] = rng.choice(special, int(pick.sum()))
        nans = x.view(np.uint32)[np.isnan(x)]
        x.view(np.uint32)[np.isnan(x)] = nans | rng.integers(0, 1 << 22, nans.size).astype(np.uint32)
    return x


def numpy_path(x: np.ndarray, attrs: dict) -> np.ndarray:
    """MaxPool as ops/pool.py computes it without the compiled kernel: padded with the lowest value,
    np.maximum axis by axis."""
    kernel, strides, dilations, begin, end, _, out = pool._geometry(x.shape, attrs, "MaxPool")
    xp = pad_spatial(x, begin, end, pool._lowest(x.dtype))
    return pool._separable(xp, kernel, strides, dilations, out, np.maximum)


def bits(a: np.ndarray) -> np.ndarray:
    """The values as integers, so that equality covers NaN payloads and the sign of zeros."""
    return a.view(np.uint32) if a.dtype == np.float32 else a


def pooled(kernels, x: np.ndarray, attrs: dict, monkeypatch) -> np.ndarray:
    """The MaxPool kernel's output with ``kernels`` behind ops/pool.py."""
    with monkeypatch.context() as patch:
        patch.setattr(pool, "_native", kernels)
        return MAXPOOL.kernel([x], attrs)[0]


@pytest.mark.parametrize("seed", range(48))
def test_compiled_and_twin_match_the_numpy_path_bit_for_bit(compiled, threads, monkeypatch, seed):
    rng = np.random.default_rng(seed)
    dtype = DTYPES[seed % 4]
    shape, attrs = random_case(rng, ort_safe=seed % 3 == 0, big=seed % 8 == 7)  # big: several pool tasks
    x = random_values(rng, shape, dtype, specials=seed % 2 == 0)
    if seed % 5 == 1:  # a strided view: the kernel takes a contiguous copy
        x = np.repeat(x, 2, axis=-1)[..., ::2]
    want = numpy_path(x, attrs)
    for kernels in (compiled, native_numpy):
        got = pooled(kernels, x, attrs, monkeypatch)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(bits(got), bits(want))


@pytest.mark.parametrize("dtype", DTYPES)
def test_planes_shared_over_the_pool_match(compiled, threads, monkeypatch, dtype):
    """A layer large enough for several pool tasks (over 800 kB of element operations)."""
    rng = np.random.default_rng(9)
    x = random_values(rng, (2, 32, 96, 100), dtype, specials=True)
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1}
    np.testing.assert_array_equal(bits(pooled(compiled, x, attrs, monkeypatch)), bits(numpy_path(x, attrs)))


@pytest.mark.parametrize("seed", range(12))
def test_matches_onnxruntime(compiled, tmp_path, seed):
    rng = np.random.default_rng(100 + seed)
    dtype = DTYPES[seed % 3]  # onnxruntime has no int16 MaxPool
    shape, attrs = random_case(rng, ort_safe=True)
    x = random_values(rng, shape, dtype, specials=False)
    ref = run_ort(save_model(single_op("MaxPool", {"x": x}, opset=12, **attrs), str(tmp_path)), {"x": x})[0]
    got = MAXPOOL.kernel([x], attrs)[0]
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("module", ["compiled", "numpy"])
def test_nan_infinities_and_padding(compiled, monkeypatch, module):
    """A NaN spreads to every window that holds it; +inf wins; a window of -inf and padding gives the
    lowest float (the padding value), one of -inf only gives -inf."""
    x = np.full((1, 1, 4, 4), -np.inf, np.float32)
    x[0, 0, 0, 3] = np.nan
    x[0, 0, 3, 0] = np.inf
    attrs = {"kernel_shape": [2, 2], "pads": [1, 1, 0, 0]}
    got = pooled(compiled if module == "compiled" else native_numpy, x, attrs, monkeypatch)[0, 0]
    want = np.full((4, 4), -np.inf, np.float32)
    want[0, :] = want[:, 0] = LOWEST
    want[:2, 3] = np.nan
    want[3, :2] = np.inf
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("module", ["compiled", "numpy"])
def test_integer_padding_never_wins(compiled, monkeypatch, module):
    """Storage integers all at the type's minimum pool to that minimum, padding or not."""
    for dtype in (np.uint8, np.int8, np.int16):
        x = np.full((1, 2, 3, 3), np.iinfo(dtype).min, dtype)
        got = pooled(compiled if module == "compiled" else native_numpy, x,
                     {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2]}, monkeypatch)
        np.testing.assert_array_equal(got, np.full((1, 2, 2, 2), np.iinfo(dtype).min, dtype))


def test_rknn_no_native_runs_the_numpy_twin(monkeypatch):
    monkeypatch.setenv(FORCE_NUMPY, "1")
    kernels = load_kernels()
    assert isinstance(kernels, NumpyKernels)
    assert kernels.maxpool2d is native_numpy.maxpool2d
    rng = np.random.default_rng(5)
    x = random_values(rng, (2, 3, 11, 9), np.float32, specials=True)
    attrs = {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 0, 1, 1], "ceil_mode": 1}
    np.testing.assert_array_equal(bits(pooled(kernels, x, attrs, monkeypatch)), bits(numpy_path(x, attrs)))


def test_other_ranks_dtypes_and_indices_keep_the_numpy_path(monkeypatch):
    """3-D pooling, float64 and the Indices output do not reach the compiled kernel."""
    rng = np.random.default_rng(6)
    cases = [(random_values(rng, (1, 2, 5, 6, 7), np.float32, False), {"kernel_shape": [2, 3, 2]}),
             (rng.standard_normal((1, 2, 6, 7)), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
             (random_values(rng, (1, 2, 6, 7), np.float32, False), {"kernel_shape": [2, 2], "_indices": True})]
    with monkeypatch.context() as patch:
        patch.setattr(pool, "_native", None)  # any use of the compiled kernels fails
        for x, attrs in cases:
            got = MAXPOOL.kernel([x], attrs)[0]
            np.testing.assert_array_equal(got, numpy_path(x, attrs))


@pytest.mark.parametrize("module", ["compiled", "numpy"])
def test_bad_arguments_raise_value_error(compiled, module):
    kernels = compiled if module == "compiled" else native_numpy
    x, y = np.zeros(16, np.float32), np.zeros(4, np.float32)
    geometry = [1, 4, 4, 2, 2, 2, 2, 2, 2, 1, 1, 0, 0]  # planes, h, w, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl
    kernels.maxpool2d(x, "f", y, *geometry)
    np.testing.assert_array_equal(y, 0)
    with pytest.raises(ValueError):  # unknown kind
        kernels.maxpool2d(x, "d", y, *geometry)
    with pytest.raises(ValueError):  # output smaller than the geometry's
        kernels.maxpool2d(x, "f", y[:3], *geometry)
    with pytest.raises(ValueError):  # input smaller than the geometry's
        kernels.maxpool2d(x[:15], "f", y, *geometry)
    with pytest.raises(ValueError):  # a zero stride
        kernels.maxpool2d(x, "f", y, *geometry[:7], 0, *geometry[8:])
    with pytest.raises(ValueError):  # sizes whose product wraps around in 64 bits
        kernels.maxpool2d(x, "f", y, 1 << 32, 1 << 32, 1 << 32, *geometry[3:])
