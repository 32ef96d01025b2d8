"""Against real mxnet: Gluon model-zoo architectures with fixed random weights, and small symbols exercising
every converted op, written and run by mxnet 1.9.1 in its own virtual environment (make_reference.py); here
(no mxnet) our plugin loads the same files and must agree within 1e-4 relative."""

from __future__ import annotations

import time

import numpy as np
import pytest
from mxnet_util import assert_relative, npz_list, reference_case, run_ours

from rknn_mxnet.params import read_params

OP_CASES = ["ops_conv", "ops_pool", "ops_shape", "ops_math", "ops_dense", "ops_resample"]
ZOO = ["resnet18_v1", "mobilenet1.0", "mobilenetv2_1.0", "squeezenet1.1", "resnext_like", "vgg11"]
HEAVY = {"vgg11"}  # 500 MB of weights, 17 s


def _check(name: str, tmp_path) -> float:
    folder, sizes = reference_case(name)
    inputs, ref = npz_list(folder / "inputs.npz"), npz_list(folder / "outputs.npz")
    start = time.perf_counter()
    got = run_ours(str(folder / "model-symbol.json"), str(folder / "model-0000.params"), inputs, sizes,
                   str(tmp_path))
    assert_relative(got, ref)
    return time.perf_counter() - start


@pytest.mark.parametrize("name", OP_CASES)
def test_op_symbols_match_mxnet(tmp_path, name):
    _check(name, tmp_path)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.heavy) if n in HEAVY else n for n in ZOO])
def test_model_zoo_matches_mxnet(tmp_path, name):
    seconds = _check(name, tmp_path)
    print(f"{name}: {seconds:.1f} s")


def test_op_cases_cover_every_output_with_values_that_differ(tmp_path):
    """The op cases are not vacuous: many outputs, none constant, several of each case's outputs differ."""
    for name in OP_CASES:
        folder, _ = reference_case(name)
        outputs = npz_list(folder / "outputs.npz")
        assert len(outputs) >= 5, name
        assert all(np.ptp(o) > 0 for o in outputs), name


@pytest.mark.parametrize("name", OP_CASES)
def test_params_reader_matches_mxnet_load(name):
    """Our reader gives the arrays mx.nd.load gives for the same file (names with their arg:/aux: prefixes)."""
    folder, _ = reference_case(name)
    ours = read_params(str(folder / "model-0000.params"))
    with np.load(folder / "params.npz") as ref:
        assert sorted(ours) == sorted(ref.files)
        for key in ref.files:
            np.testing.assert_array_equal(ours[key], ref[key])
