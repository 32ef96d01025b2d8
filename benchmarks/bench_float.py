"""Float latency: our simulator vs onnxruntime on MobileNetV2- and ResNet18-sized models.

Each measurement runs in its own process so thread settings (OMP/OpenBLAS, onnxruntime intra-op)
apply from the start; the two engines alternate for ``--rounds`` rounds and each keeps its best median.
Prints one table with the ratio ours / onnxruntime per model and thread count.

    .venv/bin/python benchmarks/bench_float.py [--runs 30] [--rounds 3] [--models mobilenet_v2 resnet18]
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
    if engine == "onnxruntime":
        return onnxruntime_ms(model_path, threads, runs)
    from rknn.api import RKNN

    rknn = RKNN()
    rknn.config(optimization_level=3)
    assert rknn.load_onnx(model_path) == 0 and rknn.build(do_quantization=False) == 0 and rknn.init_runtime() == 0
    return simulator_ms(rknn, runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["mobilenet_v2", "resnet18"])
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        serve_worker(args.worker, worker)
        return 0
    import onnx
    import zoo

    print(f"{'model':<14}{'threads':>9}{'onnxruntime ms':>16}{'ours ms':>10}{'ours/ort':>10}")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            path = os.path.join(folder, f"{name}.onnx")
            onnx.save(getattr(zoo, name)(), path)
            for threads, label in ((1, "1"), (0, "default")):
                ort_ms, ours_ms = paired_best(partial(in_subprocess, __file__, "onnxruntime", path, threads, args.runs),
                                              partial(in_subprocess, __file__, "ours", path, threads, args.runs), args.rounds)
                print(f"{name:<14}{label:>9}{ort_ms:>16.2f}{ours_ms:>10.2f}{ours_ms / ort_ms:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
