"""Quantized simulator latency: our u8 (and dfp8/dfp16) simulator vs onnxruntime's FLOAT latency.

The goal (issue 3) is at most 2x onnxruntime's float latency on a MobileNetV2-sized model. Each
measurement runs in its own process so thread settings (OMP/OpenBLAS, onnxruntime intra-op) apply
from the start; "1" pins one thread, "default" leaves the libraries' defaults. The engines alternate for
``--rounds`` rounds and each keeps its best median. Prints one table:

    .venv/bin/python benchmarks/bench_quant_speed.py [--runs 30] [--rounds 3] [--models mobilenet_v2]
        [--dtypes asymmetric_quantized-u8 dynamic_fixed_point-8 dynamic_fixed_point-16]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
from functools import partial

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from timing import in_subprocess, onnxruntime_ms, paired_best, serve_worker, simulator_ms  # noqa: E402


def worker(engine: str, model_path: str, threads: int, runs: int) -> float:
    """Median latency (ms) of one engine: ``onnxruntime`` (float) or a quantized_dtype of ours."""
    if engine == "onnxruntime":
        return onnxruntime_ms(model_path, threads, runs)
    from rknn.api import RKNN

    folder = os.path.dirname(model_path)
    dataset = os.path.join(folder, "dataset.txt")
    rknn = RKNN()
    rknn.config(quantized_dtype=engine)
    assert rknn.load_onnx(model_path) == 0 and rknn.build(do_quantization=True, dataset=dataset) == 0
    assert rknn.init_runtime() == 0
    return simulator_ms(rknn, runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["mobilenet_v2"])
    parser.add_argument("--dtypes", nargs="+", default=["asymmetric_quantized-u8"])
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        serve_worker(args.worker, worker)
        return 0
    import numpy as np
    import onnx
    import zoo

    print(f"{'model':<14}{'dtype':<26}{'threads':>9}{'ort float ms':>14}{'ours quant ms':>15}{'ratio':>8}")
    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(0)
        with open(os.path.join(folder, "dataset.txt"), "w") as f:
            for i in range(4):
                np.save(os.path.join(folder, f"{i}.npy"), rng.random((224, 224, 3), dtype=np.float32))
                f.write(f"{i}.npy\n")
        for name in args.models:
            path = os.path.join(folder, f"{name}.onnx")
            onnx.save(getattr(zoo, name)(), path)
            for threads, label in ((1, "1"), (0, "default")):
                for dtype in args.dtypes:
                    ort_ms, ours_ms = paired_best(partial(in_subprocess, __file__, "onnxruntime", path, threads, args.runs),
                                                  partial(in_subprocess, __file__, dtype, path, threads, args.runs), args.rounds)
                    print(f"{name:<14}{dtype:<26}{label:>9}{ort_ms:>14.2f}{ours_ms:>15.2f}{ours_ms / ort_ms:>8.2f}",
                          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
