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
