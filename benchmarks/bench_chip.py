"""The chip performance model against published NPU latencies, and what pre_compile saves.

    .venv/bin/python benchmarks/bench_chip.py          # predicted vs published, errors, chip order, pre_compile
    .venv/bin/python benchmarks/bench_chip.py --fit    # fit each NPU design's calibration to the CALIBRATION rows

The models are the published architectures written with onnx.helper (benchmarks/chip_models.py),
imported and built with this toolkit, and modelled as int8 builds (the published rows are int8).
Fitting uses only the CALIBRATION rows (issue 9); the VALIDATION rows (Rockchip model zoo: detection
and face models) are never fitted: their median absolute error and chip order are the model's test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import attrs
import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chip_models import CALIBRATION, VALIDATION  # noqa: E402

from rknn.api import RKNN  # noqa: E402
from rknn_core import fileformat  # noqa: E402
from rknn_core.platforms import chip_for  # noqa: E402
from rknn_targets.npu.perf import layer_features, layer_time  # noqa: E402
from rknn_targets.npu.program import load_program  # noqa: E402

DESIGNS = {"rk18xx": ("rk1808",), "rv11xx": ("rv1109", "rv1126")}  # chips sharing one NPU design (one calibration)


def built_models(table: dict, folder: str) -> dict:
    """name -> (RknnModel, published {chip: ms}) for every row of ``table``."""
    found = {}
    for name, (build, rows) in table.items():
        path = os.path.join(folder, f"{name}.onnx")
        onnx.save(build(), path)
        rknn = RKNN()
        if rknn.load_onnx(path) != 0 or rknn.build(do_quantization=False) != 0:
            raise SystemExit(f"{name}: the model could not be built")
        found[name] = (rknn._tk.model, rows, rknn._tk.registry)
    return found


def predict(model, chip) -> float:
    """Modelled int8 latency in ms."""
    return sum(layer_time(f, chip, "int8")[0] for f in layer_features(model.graph, chip, "int8")) / 1000


def fit(models: dict) -> None:
    """Least squares on log(predicted / published) over the CALIBRATION rows, per NPU design."""
    from scipy.optimize import least_squares

    registry = next(iter(models.values()))[2]
    for design, chips in DESIGNS.items():
        base = {c: chip_for([c], registry) for c in chips}
        cases = [(base[c], layer_features(m.graph, base[c], "int8"), rows[c])
                 for m, rows, _ in models.values() for c in chips if c in rows]

        def residuals(p, base=base, cases=cases):
            cal = attrs.evolve(next(iter(base.values())).calibration, utilisation=p[0], depthwise_efficiency=p[1],
                               layer_overhead_cycles=p[2], ddr_efficiency=p[3])
            out = []
            for chip, feats, ms in cases:
                tuned = attrs.evolve(chip, calibration=cal)
                out.append(np.log(sum(layer_time(f, tuned, "int8")[0] for f in feats) / 1000 / ms))
            return out

        result = least_squares(residuals, [0.3, 0.1, 20000, 0.6], x_scale=[0.1, 0.05, 5000, 0.1],
                               bounds=([0.02, 0.01, 500, 0.1], [1, 1, 200000, 1]))
        u, d, o, e = result.x
        print(f"{design}: Calibration(utilisation={u:.3f}, depthwise_efficiency={d:.3f}, layer_overhead_cycles={o:.0f}, "
              f"ddr_efficiency={e:.3f})  rms log error {np.sqrt(np.mean(result.fun ** 2)):.3f}")


def report(models: dict, title: str) -> list[float]:
    """Print predicted vs published per model and chip, and whether the chips' order is right; the errors."""
    print(f"\n{title}\n| model | chip | published ms | predicted ms | error |\n|---|---|---|---|---|")
    errors, orders = [], []
    for name, (model, rows, registry) in models.items():
        predicted = {c: predict(model, chip_for([c], registry)) for c in rows}
        for c, ms in rows.items():
            err = predicted[c] / ms - 1
            errors.append(abs(err))
            print(f"| {name} | {c} | {ms:.2f} | {predicted[c]:.2f} | {err:+.0%} |")
        right = sorted(rows, key=rows.get) == sorted(predicted, key=predicted.get)
        orders.append(right)
        print(f"| {name} | order fastest first | {' < '.join(sorted(rows, key=rows.get))} | "
              f"{' < '.join(sorted(predicted, key=predicted.get))} | {'right' if right else 'WRONG'} |")
    print(f"median absolute error {statistics.median(errors):.1%} over {len(errors)} rows; chip order right on "
          f"{sum(orders)} of {len(orders)} models")
    return errors


def pre_compile(folder: str) -> None:
    """Size of a pre-compiled .rknn and the time saved loading its program instead of compiling it."""
    build, _rows = CALIBRATION["resnet50"]
    path = os.path.join(folder, "r50.onnx")
    onnx.save(build(), path)
    sizes, loads = {}, {}
    for flag in (False, True):
        rknn = RKNN()
        rknn.load_onnx(path)
        rknn.build(do_quantization=False, pre_compile=flag)
        out = os.path.join(folder, f"r50_{flag}.rknn")
        rknn.export_rknn(out)
        sizes[flag] = os.path.getsize(out)
        chip = chip_for(["rk1808"], rknn._tk.registry)
        model = fileformat.load(out)
        start = time.perf_counter()
        load_program(model, "rk1808") if flag else chip.lower(model)
        loads[flag] = time.perf_counter() - start
    print(f"\npre_compile (resnet50, rk1808): .rknn {sizes[False] / 2**20:.1f} MiB plain, {sizes[True] / 2**20:.1f} MiB "
          f"with the program (blocked weights stored beside the graph's); after reading the file, compiling takes "
          f"{loads[False] * 1000:.1f} ms, loading the stored program {loads[True] * 1000:.2f} ms "
          f"({loads[False] / max(loads[True], 1e-9):.0f}x less)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="fit the calibration of each NPU design")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        calibration = built_models(CALIBRATION, folder)
        if args.fit:
            fit(calibration)
            return
        report(calibration, "Calibration rows (fitted)")
        report(built_models(VALIDATION, folder), "Validation rows (held out, never fitted)")
        pre_compile(folder)


if __name__ == "__main__":
    main()
