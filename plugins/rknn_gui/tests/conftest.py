"""Fixtures: a workspace with a small classifier, pictures and datasets; a TestClient on the app."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import gui_models  # noqa: E402

TOKEN = "test-token"
BASE = "http://127.0.0.1:8808"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return gui_models.workspace(tmp_path / "ws")


@pytest.fixture
def app(workspace: Path, monkeypatch: pytest.MonkeyPatch):
    from rknn_gui.app import create_app
    from rknn_gui.workspace import Workspace

    monkeypatch.chdir(workspace)  # as `rknn gui` runs: hybrid step 1 writes into the working directory
    guard = create_app(Workspace(workspace), TOKEN)
    yield guard
    guard.app.state.routes.session.release()


@pytest.fixture
def client(app):
    from starlette.testclient import TestClient

    with TestClient(app, base_url=BASE, headers={"x-rknn-token": TOKEN}, raise_server_exceptions=False) as c:
        yield c


def run(client, method: str, values: dict | None = None, wait: float = 60) -> dict:
    """Start a step and wait for its end; returns the job's final snapshot."""
    response = client.post(f"/api/call/{method}", json={"values": values or {}})
    assert response.status_code == 200, response.text
    return client.get(f"/api/jobs/{response.json()['job']}", params={"wait": wait}).json()


def keep_float(client, layers: list[str], dataset: str = "dataset.txt") -> dict:
    response = client.post("/api/keep_float", json={"layers": layers, "dataset": dataset})
    assert response.status_code == 200, response.text
    return client.get(f"/api/jobs/{response.json()['job']}", params={"wait": 60}).json()


PREPROCESS = {"channel_mean_value": "127.5 127.5 127.5 127.5", "reorder_channel": "0 1 2"}
