"""Real trained ONNX models that ship inside PyPI packages (fetched by scripts/fetch_models.py)."""

from __future__ import annotations

import pathlib

import pytest

MODELS = pathlib.Path(__file__).resolve().parent.parent / ".cache" / "models"


def real_model(relative: str) -> str:
    """Path of a fetched model; a clear failure (not a skip) when set-up has not fetched it."""
    path = MODELS / relative
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `bash scripts/setup.sh` (it runs scripts/fetch_models.py)")
    return str(path)
