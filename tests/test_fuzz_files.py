"""Fuzzing the importers and the .rknn loader with a seeded mutation corpus (tests/fuzz_corpus.py).

Every mutated .onnx, .tflite, .pb and .rknn (raw, and with an edited description and a recomputed
checksum) must end each step in 0 or -1 with a specific ``E`` line: never the facade's catch-all
("failed unexpectedly"), never a traceback, hang or crash. The cases run in a child process
(tests/fuzz_runner.py) with faulthandler, so a crash or hang fails the test naming the case.
``nox -s fuzz`` runs the same with ``RKNN_FUZZ_SCALE`` times more cases (``RKNN_FUZZ_SEED`` picks another corpus).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_runner.py")
FORMATS = {"onnx": ("rknn_onnx", 60), "tflite": ("rknn_tflite", 40), "pb": ("rknn_tf", 30), "rknn": ("rknn_onnx", 40)}


def run_corpus(kind: str, folder: str, seed: int, count: int) -> tuple[list[dict], str]:
    """The child's result lines and its stderr; fails naming the case that crashed or hung."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    scale = int(os.environ.get("RKNN_FUZZ_SCALE", "1"))
    proc = subprocess.run([sys.executable, RUNNER, kind, folder, str(seed), str(count)], capture_output=True,
                          text=True, env=env, timeout=600 * scale)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    started = [line["start"] for line in lines if "start" in line]
    results = [line for line in lines if "case" in line]
    if proc.returncode != 0:
        last = started[-1] if started else "(before the first case)"
        pytest.fail(f"the fuzz runner died (exit {proc.returncode}) at {last} in {folder}: "
                    f"a crash or a hang\n{proc.stderr[-4000:]}")
    return results, proc.stderr


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_mutated_files_end_in_clear_errors(kind, tmp_path):
    plugin, count = FORMATS[kind]
    pytest.importorskip(plugin, reason=f"{plugin} is not installed")
    results, stderr = run_corpus(kind, str(tmp_path), seed=int(os.environ.get("RKNN_FUZZ_SEED", "1")), count=count)
    assert len(results) == count * int(os.environ.get("RKNN_FUZZ_SCALE", "1"))
    bad = {r["case"]: r["problems"] for r in results if r["problems"]}
    assert not bad, f"{len(bad)} of {len(results)} {kind} cases in {tmp_path}: {json.dumps(bad, indent=1)[:6000]}"
    assert "Traceback" not in stderr, stderr[-4000:]
    # the corpus is worth running: some cases get past the importer, most are refused
    loaded = sum(1 for r in results if r["steps"] and r["steps"][0][1] == "ok")
    refused = sum(1 for r in results if r["steps"] and r["steps"][0][1] == "fail")
    assert loaded and refused, (loaded, refused)
