"""Shared by the benchmarks: median latency, and running a measurement in a fresh process whose
thread settings (OMP/OpenBLAS, onnxruntime intra-op) apply from the start."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def median_ms(run: Callable[[], object], runs: int, warmup: int = 3) -> float:
    """Median wall time of ``run()`` in milliseconds after ``warmup`` calls."""
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def in_subprocess(script: str, engine: str, model_path: str, threads: int, runs: int) -> float:
    """Run ``script --worker engine model_path threads runs`` with ``threads`` pinned (0: library
    defaults); its last stdout line is the JSON number returned (see ``serve_worker``)."""
    env = dict(os.environ)
    for var in THREAD_VARS:
        env.pop(var, None)
        if threads:
            env[var] = str(threads)
    args = [engine, model_path, str(threads), str(runs)]
    out = subprocess.run([sys.executable, script, "--worker", *args], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def serve_worker(worker_args: list[str], worker: Callable[[str, str, int, int], float]) -> None:
    """The ``--worker`` side of ``in_subprocess``: print ``worker(engine, model_path, threads, runs)``."""
    engine, path, threads, runs = worker_args
    print(json.dumps(worker(engine, path, int(threads), int(runs))))


def simulator_ms(rknn, runs: int) -> float:
    """Median latency of our simulator (``rknn`` after init_runtime) on the benchmark input, NCHW float32."""
    x = benchmark_input()
    return median_ms(lambda: rknn.inference([x], data_type="float32", data_format="nchw"), runs)


def paired_best(measure_peer: Callable[[], float], measure_ours: Callable[[], float], rounds: int
                ) -> tuple[float, float]:
    """Each side's lowest median over ``rounds`` alternating measurements: on a machine whose speed drifts
    (shared virtual CPUs come and go), both sides see the same conditions."""
    peer, ours = [], []
    for _ in range(rounds):
        peer.append(measure_peer())
        ours.append(measure_ours())
    return min(peer), min(ours)


def benchmark_input():
    """The 1x3x224x224 float input every latency benchmark feeds."""
    import numpy as np

    return np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)


def onnxruntime_ms(model_path: str, threads: int, runs: int) -> float:
    """Median float latency of onnxruntime on ``model_path`` with ``threads`` intra-op threads (0: default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    x = benchmark_input()
    return median_ms(lambda: session.run(None, {"input": x}), runs)
