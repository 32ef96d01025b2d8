"""How many threads the compiled kernels use: OMP_NUM_THREADS if set (as for BLAS), else all cores."""

from __future__ import annotations

import functools
import os

# Below this many output elements a layer runs on one thread: starting threads would cost more.
MIN_PARALLEL_WORK = 50_000


@functools.lru_cache(maxsize=1)
def thread_count() -> int:
    value = os.environ.get("OMP_NUM_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def threads_for(work: int) -> int:
    """Threads for a kernel producing ``work`` output elements."""
    return thread_count() if work >= MIN_PARALLEL_WORK else 1
