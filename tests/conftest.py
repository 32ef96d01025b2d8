import importlib
import os
import sys

import pytest
from hypothesis import settings

from rknn_core.log import collect_records

sys.path.insert(0, os.path.dirname(__file__))

# The suite is deterministic (same examples every run, so CI cannot fail by chance);
# `HYPOTHESIS_PROFILE=explore` draws fresh random examples, as `nox -s explore` does.
settings.register_profile("deterministic", derandomize=True, deadline=None, database=None)
settings.register_profile("explore", deadline=None, max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


@pytest.fixture
def rknn_log():
    """Records logged on the ``rknn`` logger, all levels (it does not propagate, so caplog cannot see them)."""
    with collect_records() as records:
        yield records


@pytest.fixture(scope="module")
def compiled():
    """The compiled kernels (rknn_core._native); the test is skipped where they are not built."""
    try:
        return importlib.import_module("rknn_core._native")
    except ImportError:
        pytest.skip("the compiled kernels are not built here (nothing to compare the numpy kernels with)")


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request, compiled):
    """Both thread counts of the compiled kernels: the results must not depend on them."""
    old = compiled.get_threads()
    compiled.set_threads(request.param)
    yield request.param
    compiled.set_threads(old)
