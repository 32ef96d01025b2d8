"""End to end in a real browser: Debian's chromium driven by Playwright, the server in a subprocess on
127.0.0.1 (a free port). The flow converts the classifier, quantizes it, shows the graph with the
error overlay, keeps a layer in float by clicking it, rebuilds, exports, and checks the .rknn against
the equivalent script the page shows. Screenshots of every step are kept in the test's tmp folder."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import gui_models
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install -y chromium)")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright for Python (requirements-dev.txt)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(workspace: Path):
    """``rknn gui`` in the workspace; yields the URL it printed (with the token)."""
    process = subprocess.Popen([sys.executable, "-m", "rknn_gui", "--port", str(_free_port()), "--no-browser"],
                               cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        for line in process.stdout:
            found = re.search(r"open (http://\S+)", line)
            if found:
                url = found.group(1)
                break
        assert url, "the server printed no URL"
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def page(server: str, tmp_path: Path):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server)
        page.wait_for_selector("body[data-ready='1']")
        shots = tmp_path / "screenshots"
        shots.mkdir()
        page.shot = lambda name: page.screenshot(path=str(shots / f"{name}.png"))
        yield page
        browser.close()
        assert not errors, errors


def _open(box) -> None:
    if not box.evaluate("b => b.open"):
        box.locator("summary").first.click()


def _step(page, method: str, values: dict, checks: dict | None = None) -> None:
    """Fill a step's form, run it and wait until the job has ended; it must end done."""
    if method.startswith("load_"):
        _open(page.locator("details[data-method='load']"))
        page.select_option("#loader", method)
    _open(page.locator(f"details[data-method='{method}']"))
    form = page.locator(f"form[data-method='{method}']")
    for name, value in values.items():
        form.locator(f"[name='{name}']").fill(value)
    for name, value in (checks or {}).items():
        form.locator(f"[name='{name}']").set_checked(value)
    form.locator("button.run").click()
    _finished(page)


def _finished(page) -> None:
    """Wait until the step's end is shown; it must have succeeded."""
    page.wait_for_function("document.body.dataset.step && document.body.dataset.step !== 'running'", timeout=60000)
    assert page.evaluate("document.body.dataset.step") == "done", (page.locator("#job-error").text_content()
                                                                   + page.locator("#tab-log").text_content())


def test_quantize_inspect_keep_float_and_match_the_script(page, workspace: Path, tmp_path: Path):
    _step(page, "config", {"channel_mean_value": "127.5 127.5 127.5 127.5", "reorder_channel": "0 1 2"})
    _step(page, "load_onnx", {"model": "tiny.onnx"})
    page.wait_for_selector("g.node[data-name='conv2']")
    page.shot("1-loaded")
    _step(page, "build", {"dataset": "dataset.txt"}, {"do_quantization": True})
    _step(page, "init_runtime", {})
    _step(page, "eval_perf", {"inputs": "photo.png"})
    assert page.locator("#perf-table tbody tr").count() == 8  # the chip's layers (GlobalAveragePool.Flatten fused)
    page.locator("#perf-table th[data-key='time']").click()  # sorted by time, longest first
    assert page.locator("#perf-table tbody tr").first.locator("td").nth(1).text_content() == "erf2"
    page.shot("2-perf")
    page.select_option("#overlay", "fallback")
    assert page.locator("g.node[data-name='erf2'] rect").get_attribute("fill") != "#ffffff"
    _step(page, "inference", {"inputs": "photo.png"})
    assert "-----TOP 5-----" in page.locator("#tab-results").text_content()
    page.shot("3-inference")
    _step(page, "accuracy_analysis", {"inputs": "one.txt", "output_dir": "snapshot"})
    assert page.locator("#cosine-chart polyline").count() == 2
    assert page.locator("#overlay").input_value() == "error"
    colored = page.locator("g.node rect:not([fill='#ffffff'])").count()
    assert colored >= 8, "the error overlay colours the quantized layers"
    page.locator("g.node[data-name='conv2']").hover()
    assert "scale" in page.locator("#layer-info").text_content()  # the quantization parameters of its tensors
    page.shot("4-error-overlay")
    page.locator("g.node[data-name='conv2']").click()
    assert page.locator("#float-layers").text_content() == "conv2"
    assert page.locator("#float-dataset").input_value() == "dataset.txt"
    page.locator("#keep-float").click()
    _finished(page)
    assert page.locator("g.node.float[data-name='conv2']").count() == 1
    page.shot("5-conv2-float")
    _step(page, "export_rknn", {"export_path": "gui.rknn"})
    page.locator("#show-script").click()
    page.wait_for_function("document.querySelector('#script-text').textContent.includes('rknn.release()')")
    script = page.locator("#script-text").text_content()
    assert "customized_quantize_layers: {'conv2': float32}" in script
    page.shot("6-script")
    # the script, run in a fresh copy of the workspace's inputs, writes the same .rknn
    fresh = gui_models.workspace(tmp_path / "fresh")
    (fresh / "script.py").write_text(script)
    done = subprocess.run([sys.executable, "script.py"], cwd=fresh, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (fresh / "gui.rknn").read_bytes() == (workspace / "gui.rknn").read_bytes()
