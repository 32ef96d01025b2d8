"""The chip performance model against published NPU latencies: fit, cross-validation, chip order, pre_compile.

    .venv/bin/python benchmarks/bench_chip.py          # rows, leave-one-model-out CV, in-sample, pre_compile
    .venv/bin/python benchmarks/bench_chip.py --fit    # only the calibration fitted on all rows (for chips.py)

The models are the published architectures written with onnx.helper (benchmarks/chip_models.py),
imported and built with this toolkit, and modelled as int8 builds (the published rows are int8). The
published rows and their sources are benchmarks/chip_published.py. Each NPU design (RK18xx; RV11xx:
RV1109 and RV1126 share one) has one Calibration of five physical parameters, fitted by least squares
on log latency. Generalisation is measured by leave-one-model-out cross-validation: every model's
rows are predicted by parameters fitted without that model. The shipped parameters (chips.py) are
the fit on all rows; the in-sample table uses them.
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
from chip_models import BUILDERS  # noqa: E402
from chip_published import PUBLISHED  # noqa: E402

from rknn.api import RKNN  # noqa: E402
from rknn_core import fileformat  # noqa: E402
from rknn_core.platforms import chip_for  # noqa: E402
from rknn_targets.npu.chip import Calibration  # noqa: E402
from rknn_targets.npu.perf import feature_matrix, layer_features, layer_times  # noqa: E402
from rknn_targets.npu.program import load_program  # noqa: E402

DESIGNS = {"rk18xx": ("rk1808",), "rv11xx": ("rv1109", "rv1126")}  # chips sharing one NPU design (one calibration)
START = [0.3, 0.1, 20000.0, 4.0, 8.0]  # Calibration.FIELDS
LOWER = [0.01, 0.002, 100.0, 0.25, 0.1]
UPPER = [1.0, 1.0, 500000.0, 64.0, 256.0]


@attrs.frozen
class ChipRows:
    """Every published model on one chip: the layers' feature rows, which model each belongs to, the published ms."""

    chip: object
    names: tuple[str, ...]
    rows: np.ndarray
    owner: np.ndarray
    published: np.ndarray

    def predict(self, calibration: Calibration) -> np.ndarray:
        """Modelled ms of every model at ``calibration``."""
        chip = attrs.evolve(self.chip, calibration=calibration)
        times = layer_times(self.rows, chip, "int8")[0]
        return np.bincount(self.owner, weights=times, minlength=len(self.names)) / 1000


def built_graphs(folder: str) -> tuple[dict, object]:
    """name -> built graph of every published model with an architecture; the session registry."""
    graphs, registry = {}, None
    for name in PUBLISHED:
        if name not in BUILDERS:
            continue
        path = os.path.join(folder, f"{name}.onnx")
        onnx.save(BUILDERS[name](), path)
        rknn = RKNN(verbose=False)
        if rknn.load_onnx(path) != 0 or rknn.build(do_quantization=False) != 0:
            raise SystemExit(f"{name}: the model could not be built")
        graphs[name], registry = rknn._tk.model.graph, rknn._tk.registry
    return graphs, registry


def chip_rows(graphs: dict, registry) -> dict[str, ChipRows]:
    """Per chip: the feature rows of every model published for it."""
    found = {}
    for chips in DESIGNS.values():
        for name in chips:
            chip = chip_for([name], registry)
            models = [m for m in graphs if name in PUBLISHED[m][1]]
            matrices = [feature_matrix(layer_features(graphs[m], chip, "int8")) for m in models]
            owner = np.concatenate([np.full(len(x), i) for i, x in enumerate(matrices)])
            found[name] = ChipRows(chip, tuple(models), np.concatenate(matrices), owner,
                                   np.array([PUBLISHED[m][1][name] for m in models]))
    return found


def fit(rows: dict[str, ChipRows], chips: tuple[str, ...], leave_out: str | None = None) -> Calibration:
    """Least squares on log(predicted / published) over the chips' rows (without model ``leave_out``)."""
    from scipy.optimize import least_squares

    keep = {c: np.array([n != leave_out for n in rows[c].names]) for c in chips}

    def residuals(logp):
        cal = Calibration(*np.exp(logp))
        return np.concatenate([np.log(rows[c].predict(cal) / rows[c].published)[keep[c]] for c in chips])

    result = least_squares(residuals, np.log(START), bounds=(np.log(LOWER), np.log(UPPER)))
    return Calibration(*(float(v) for v in np.exp(result.x)))


def table(title: str, rows: dict[str, ChipRows], predicted: dict[str, dict[str, float]]) -> tuple[float, int, int]:
    """Print predicted vs published per model and chip and the chips' order; (median abs error, orders right, models)."""
    print(f"\n{title}\n| model | chip | published ms | predicted ms | error |\n|---|---|---|---|---|")
    errors, right, models = [], 0, 0
    for name in PUBLISHED:
        published = {c: r.published[r.names.index(name)] for c, r in rows.items() if name in r.names}
        if not published:
            continue
        for c, ms in published.items():
            err = predicted[name][c] / ms - 1
            errors.append(abs(err))
            print(f"| {name} | {c} | {ms:.2f} | {predicted[name][c]:.2f} | {err:+.0%} |")
        order = sorted(published, key=published.get)
        guess = sorted(published, key=predicted[name].get)
        models, right = models + 1, right + (order == guess)
        print(f"| {name} | order fastest first | {' < '.join(order)} | {' < '.join(guess)} | "
              f"{'right' if order == guess else 'WRONG'} |")
    median = statistics.median(errors)
    print(f"median absolute error {median:.1%} over {len(errors)} rows; chip order right on {right} of {models} models")
    return median, right, models


def predictions(rows: dict[str, ChipRows], calibrations: dict[str, Calibration], only: str | None = None) -> dict:
    out: dict[str, dict[str, float]] = {}
    for design, chips in DESIGNS.items():
        for c in chips:
            for name, ms in zip(rows[c].names, rows[c].predict(calibrations[design])):
                if only in (None, name):
                    out.setdefault(name, {})[c] = float(ms)
    return out


def cross_validation(rows: dict[str, ChipRows]) -> dict:
    """Leave-one-model-out: each model's rows predicted by the calibrations fitted without it."""
    held: dict[str, dict[str, float]] = {}
    for name in {n for r in rows.values() for n in r.names}:
        calibrations = {d: fit(rows, chips, leave_out=name) for d, chips in DESIGNS.items()}
        held.update(predictions(rows, calibrations, only=name))
    return held


def show(calibration: Calibration) -> str:
    return ", ".join(f"{k}={getattr(calibration, k):.4g}" for k in Calibration.FIELDS)


def pre_compile(folder: str) -> None:
    """Size of a pre-compiled .rknn and the time saved loading its program instead of compiling it."""
    path = os.path.join(folder, "resnet50.onnx")
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
    parser.add_argument("--fit", action="store_true", help="only print the calibration fitted on all rows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        graphs, registry = built_graphs(folder)
        rows = chip_rows(graphs, registry)
        fitted = {d: fit(rows, chips) for d, chips in DESIGNS.items()}
        for design, chips in DESIGNS.items():
            shipped = rows[chips[0]].chip.calibration
            print(f"{design}: fitted on all rows Calibration({show(fitted[design])})\n"
                  f"{' ' * len(design)}  shipped (chips.py)    Calibration({show(shipped)})")
        if args.fit:
            return
        skipped = [n for n in PUBLISHED if n not in BUILDERS]
        print(f"{len(graphs)} published models, {sum(len(r.names) for r in rows.values())} rows"
              + (f"; no architecture for {', '.join(skipped)}" if skipped else ""))
        started = time.perf_counter()
        cv = table("Leave-one-model-out cross-validation (each model predicted without its own rows)", rows,
                   cross_validation(rows))
        shipped = {d: rows[chips[0]].chip.calibration for d, chips in DESIGNS.items()}
        fit_in = table("In-sample (the shipped calibration, fitted on all rows)", rows, predictions(rows, shipped))
        print(f"\nsummary: CV median abs error {cv[0]:.1%}, order right on {cv[1]} of {cv[2]} models; in-sample "
              f"{fit_in[0]:.1%}, {fit_in[1]} of {fit_in[2]} (cross-validation took {time.perf_counter() - started:.0f} s)")
        pre_compile(folder)


if __name__ == "__main__":
    main()
