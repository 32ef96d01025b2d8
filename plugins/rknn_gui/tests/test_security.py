"""Who gets in: the token, the Host header, the bind address; what is reachable: the workspace only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BASE, TOKEN
from starlette.testclient import TestClient

from rknn_gui.errors import GuiError
from rknn_gui.security import allowed_hosts, check_bind_host
from rknn_gui.workspace import Workspace

ROUTES = [("GET", "/"), ("GET", "/api/state"), ("GET", "/static/app.js"), ("GET", "/api/files"), ("GET", "/api/graph"),
          ("GET", "/api/script"), ("POST", "/api/call/config"), ("POST", "/api/files?path=x.txt"), ("POST", "/api/reset")]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_refuses_requests_without_the_token(app, method, path):
    with TestClient(app, base_url=BASE) as anonymous:
        response = anonymous.request(method, path)
        assert response.status_code == 403
        assert response.json()["error"].startswith("E a valid token is needed")
        wrong = anonymous.request(method, path, headers={"x-rknn-token": TOKEN + "x"})
        assert wrong.status_code == 403


def test_nothing_is_written_without_the_token(app, workspace: Path):
    with TestClient(app, base_url=BASE) as anonymous:
        anonymous.post("/api/files?path=dropped.txt", content=b"data")
    assert not (workspace / "dropped.txt").exists()


def test_the_token_in_the_url_sets_a_cookie_the_page_then_uses(app):
    with TestClient(app, base_url=BASE) as browser:
        page = browser.get(f"/?token={TOKEN}")
        assert page.status_code == 200 and "<title>rknn gui</title>" in page.text
        assert "HttpOnly" in page.headers["set-cookie"] and "SameSite=Strict" in page.headers["set-cookie"]
        assert browser.get("/static/app.js").status_code == 200  # the cookie, no token in the URL
        assert browser.get("/api/state").json()["workspace"]


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8808", "127.0.0.1.evil.example", "192.168.1.5"])
def test_foreign_host_headers_are_refused_even_with_the_token(client, host):
    response = client.get("/api/state", headers={"host": host})
    assert response.status_code == 403
    assert "DNS rebinding" in response.json()["error"]


@pytest.mark.parametrize("host", ["127.0.0.1:8808", "localhost:8808", "[::1]:8808", "LOCALHOST"])
def test_loopback_names_are_served(client, host):
    assert client.get("/api/state", headers={"host": host}).status_code == 200


def test_a_non_loopback_bind_serves_only_its_own_name():
    assert allowed_hosts("192.168.1.5") == frozenset({"192.168.1.5"})
    assert "localhost" in allowed_hosts("127.0.0.1")


def test_non_loopback_binds_need_an_explicit_host():
    check_bind_host("127.0.0.1", explicit=False)
    check_bind_host("::1", explicit=False)
    with pytest.raises(GuiError, match="give --host 0.0.0.0 explicitly"):
        check_bind_host("0.0.0.0", explicit=False)
    check_bind_host("0.0.0.0", explicit=True)


def test_cli_help_through_rknn_and_the_default_bind(tmp_path: Path):
    result = subprocess.run([sys.executable, "-m", "rknn_core.cli", "gui", "--help"], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "usage: rknn gui" in result.stdout and "default 127.0.0.1" in result.stdout


# the workspace -------------------------------------------------------------------------------------------
def test_paths_outside_the_workspace_are_refused(workspace: Path, tmp_path: Path):
    ws = Workspace(workspace)
    outside = tmp_path / "secret.onnx"
    outside.write_bytes(b"x")
    (workspace / "link_out.onnx").symlink_to(outside)
    (workspace / "sub").mkdir()
    (workspace / "sub" / "link_in.onnx").symlink_to(workspace / "tiny.onnx")
    for name in ("../secret.onnx", str(outside), "link_out.onnx", "sub/../../secret.onnx", "/etc/passwd"):
        with pytest.raises(GuiError, match="outside the workspace"):
            ws.resolve(name)
    assert ws.resolve("sub/link_in.onnx") == workspace / "tiny.onnx"
    assert ws.relative(str(workspace / "tiny.onnx")) == "tiny.onnx"
    assert ws.relative("./sub/../img0.png", must_exist=True) == "img0.png"
    with pytest.raises(GuiError, match="does not exist"):
        ws.resolve("missing.onnx", must_exist=True)
    listed = ws.files()
    assert "tiny.onnx" in listed and "sub/link_in.onnx" in listed and "link_out.onnx" not in listed


def test_requests_for_files_outside_are_refused(client, workspace: Path, tmp_path: Path):
    outside = tmp_path / "outside.onnx"
    outside.write_bytes((workspace / "tiny.onnx").read_bytes())
    os.symlink(outside, workspace / "escape.onnx")
    for name in ("../outside.onnx", str(outside), "escape.onnx"):
        response = client.post("/api/call/load_onnx", json={"values": {"model": name}})
        assert response.status_code == 400 and "outside the workspace" in response.json()["error"], name
    response = client.post("/api/call/export_rknn", json={"values": {"export_path": "../out.rknn"}})
    assert response.status_code == 400
    response = client.post("/api/files", params={"path": "../dropped.png"}, content=b"data")
    assert response.status_code == 400 and not (tmp_path / "dropped.png").exists()
    response = client.post("/api/files", params={"path": "escape.onnx"}, content=b"data")
    assert response.status_code == 400 and outside.read_bytes() == (workspace / "tiny.onnx").read_bytes()
