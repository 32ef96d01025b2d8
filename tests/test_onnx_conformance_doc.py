"""docs/onnx-conformance.md holds the counts the installed onnx's backend suite gives (scripts/onnx_conformance.py)."""

from __future__ import annotations

import importlib.util
import pathlib

SCRIPT = pathlib.Path(__file__).resolve().parent.parent / "scripts" / "onnx_conformance.py"


def _script():
    spec = importlib.util.spec_from_file_location("onnx_conformance", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_conformance_counts_are_current():
    script = _script()
    counts = script.survey()
    text, wanted = script.current_document(counts)
    assert text == wanted, "docs/onnx-conformance.md is out of date: run scripts/onnx_conformance.py"
    # onnx ships its real-model tests as light models: every one of them runs
    assert counts["real"]["runs"] == sum(counts["real"].values()) == 9
    assert counts["node"]["runs"] > 700
