"""Run a mutation corpus through the vendor flow in this (child) process and report each case as JSON.

    python tests/fuzz_runner.py <kind> <folder> <seed> <count>

Each case goes load -> build -> export_rknn -> init_runtime -> inference -> eval_perf as far as it gets.
A line ``{"start": name}`` precedes each case (so a crash names it), then one result line. A case is bad
when a failed step logs no ``E`` line, an ``E`` line is the facade's catch-all, or anything raises.
faulthandler ends a case that hangs (exit code 1 with the stacks on stderr); an address-space limit
turns runaway allocations into MemoryError (which the catch-all would then report).
"""

from __future__ import annotations

import faulthandler
import json
import os
import resource
import sys
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuzz_corpus  # noqa: E402

from rknn.api import RKNN  # noqa: E402
from rknn_core.log import collect_errors  # noqa: E402

CASE_TIMEOUT = float(os.environ.get("RKNN_FUZZ_CASE_TIMEOUT", "30"))
CATCH_ALL = "failed unexpectedly"


def _feeds(rknn: RKNN) -> tuple[list[np.ndarray], str]:
    model = rknn._tk.model
    arrays, layouts = [], set()
    for name in model.graph.inputs:
        t = model.graph.tensor(name)
        shape = (t.shape[0] * model.rknn_batch_size, *t.shape[1:]) if t.shape else ()
        arrays.append(np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32))
        layouts.add(t.layout)
    return arrays, "nhwc" if layouts == {"NHWC"} else "nchw"


def run_case(kind: str, path: str, work: str, errors: list[str]) -> dict:
    steps: list[list] = []
    problems: list[str] = []

    def step(name: str, call, failed=lambda r: r != 0) -> bool:
        before = len(errors)
        result = call()
        bad = failed(result)
        new = errors[before:]
        steps.append([name, "fail" if bad else "ok"])
        if bad and not new:
            problems.append(f"{name} failed without an E line")
        problems.extend(f"{name}: catch-all: {line}" for line in new if CATCH_ALL in line)
        return not bad

    rknn = RKNN()
    loads = {"onnx": lambda: rknn.load_onnx(path), "tflite": lambda: rknn.load_tflite(path),
             "pb": lambda: rknn.load_tensorflow(path, fuzz_corpus.PB_INPUTS, fuzz_corpus.PB_SIZES, fuzz_corpus.PB_OUTPUTS),
             "rknn": lambda: rknn.load_rknn(path)}
    ok = step("load", loads[kind])
    if ok and kind != "rknn":
        out = os.path.join(work, "out.rknn")
        ok = step("build", lambda: rknn.build(do_quantization=False)) and step("export_rknn", lambda: rknn.export_rknn(out))
    if ok and step("init_runtime", rknn.init_runtime):
        feeds, data_format = _feeds(rknn)
        step("inference", lambda: rknn.inference(feeds, data_type="float32", data_format=data_format),
             failed=lambda r: r is None)
        step("eval_perf", lambda: rknn.eval_perf(is_print=False), failed=lambda r: r is None)
    rknn.release()
    return {"steps": steps, "problems": problems}


def main(kind: str, folder: str, seed: int, count: int) -> None:
    limit = int(os.environ.get("RKNN_FUZZ_MEMORY", str(6 << 30)))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    paths = fuzz_corpus.CASES[kind](folder, seed, count)
    work = os.path.join(folder, "work")
    os.makedirs(work, exist_ok=True)
    with collect_errors() as errors:
        for path in paths:
            name = os.path.basename(path)
            print(json.dumps({"start": name}), flush=True)
            faulthandler.dump_traceback_later(CASE_TIMEOUT, exit=True)
            try:
                result = run_case(kind, path, work, errors)
            except BaseException:  # the facade must never let anything out
                result = {"steps": [], "problems": [f"raised: {traceback.format_exc()}"]}
            faulthandler.cancel_dump_traceback_later()
            print(json.dumps({"case": name, **result}), flush=True)


if __name__ == "__main__":
    faulthandler.enable()
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
