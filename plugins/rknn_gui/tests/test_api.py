"""Every endpoint through Starlette's TestClient with the real toolkit: the steps, their results, the
graph and its overlays, the comparison, errors as the API's E text, bad requests, busy and cancel."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import gui_models
import numpy as np
import pytest
from conftest import PREPROCESS, keep_float, run

from rknn.api import RKNN


def _quantized(client) -> None:
    assert run(client, "config", PREPROCESS)["state"] == "done"
    assert run(client, "load_onnx", {"model": "tiny.onnx"})["state"] == "done"
    assert run(client, "build", {"do_quantization": True, "dataset": "dataset.txt"})["state"] == "done"


def test_state_offers_one_form_per_rknn_method(client, workspace: Path):
    state = client.get("/api/state").json()
    assert state["workspace"] == str(workspace)
    assert "load_onnx" in state["loaders"] and "load_onnx" in state["forms"]
    fields = {f["name"]: f for f in state["forms"]["build"]}
    assert list(fields) == ["do_quantization", "dataset", "pre_compile", "rknn_batch_size"]  # RKNN.build's parameters
    assert (fields["do_quantization"]["kind"], fields["do_quantization"]["default"]) == ("bool", True)
    assert fields["dataset"]["kind"] == "path"
    config = {f["name"]: f for f in state["forms"]["config"]}
    assert "asymmetric_quantized-u8" in config["quantized_dtype"]["choices"]
    assert "rk1808" in config["target_platform"]["choices"]
    assert set(state["forms"]) >= {"export_rknn", "load_rknn", "init_runtime", "inference", "eval_perf", "eval_memory",
                                   "hybrid_quantization_step1", "hybrid_quantization_step2", "accuracy_analysis"}
    assert "tiny.onnx" in client.get("/api/files").json()["files"]


def test_a_quantized_build_its_graph_perf_outputs_and_errors(client, workspace: Path):
    assert client.get("/api/graph").json()["graph"] is None
    _quantized(client)
    graph = client.get("/api/graph").json()["graph"]
    names = [n["name"] for n in graph["nodes"]]
    assert names == ["x_pre_sub", "x_pre_div", "conv1", "conv2", "erf2", "gap", "flat", "fc", "softmax"]
    conv1 = graph["nodes"][2]
    assert conv1["outputs"][0]["quant"]["qtype"] == "u8" and conv1["outputs"][0]["shape"] == [1, 8, 16, 16]
    assert conv1["inputs"][1]["const"] and conv1["attrs"]["pads"] == "[1, 1, 1, 1]"
    fallback = {n["name"]: n["fallback"] for n in graph["nodes"] if n["fallback"]}
    assert list(fallback) == ["erf2"] and "rk1808" in fallback["erf2"]
    for edge in graph["edges"]:  # the layout puts every consumer below its producer, nodes never overlap
        source = graph["inputs"][0] if str(edge["from"]).startswith("input:") else graph["nodes"][edge["from"]]
        assert source["y"] < graph["nodes"][edge["to"]]["y"]
    boxes = {(n["x"], n["y"]) for n in graph["nodes"]}
    assert len(boxes) == len(graph["nodes"])

    assert run(client, "init_runtime")["state"] == "done"
    perf = run(client, "eval_perf", {"inputs": "photo.png"})["result"]["perf"]
    assert perf["chip"] == "rk1808" and sum(layer["time"] for layer in perf["layers"]) == pytest.approx(perf["total_time"], abs=len(perf["layers"]))
    time_overlay = client.get("/api/graph").json()["graph"]["overlays"]["time"]
    assert time_overlay["4"]["time"] == max(layer["time"] for layer in perf["layers"])  # the CPU fallback is the slowest
    assert time_overlay["6"]["fused"] and time_overlay["6"]["layer"] == 5  # Flatten runs inside the pooling layer

    outputs = run(client, "inference", {"inputs": "photo.png"})["result"]["outputs"]
    reference = RKNN()
    reference.config(**PREPROCESS)
    reference.load_onnx(model=str(workspace / "tiny.onnx"))
    reference.build(do_quantization=True, dataset=str(workspace / "dataset.txt"))
    reference.init_runtime()
    from PIL import Image

    picture = np.asarray(Image.open(workspace / "photo.png").convert("RGB").resize((16, 16), Image.BILINEAR))
    expected = reference.inference(inputs=[picture])[0].ravel()
    reference.release()
    assert outputs[0]["shape"] == [1, 10]
    assert [i for i, _ in outputs[0]["top"]] == list(np.argsort(-expected, kind="stable")[:5])
    assert outputs[0]["top"][0][1] == pytest.approx(float(expected.max()))

    rows = run(client, "accuracy_analysis", {"inputs": "one.txt", "output_dir": "snapshot"})["result"]["accuracy"]
    assert [r["id"] for r in rows] == list(range(-1, 9)) and rows[3]["layer"] == "conv1"
    assert all(r["cosine_distance"] is not None and r["cosine_distance"] < 1e-2 for r in rows)
    error_overlay = client.get("/api/graph").json()["graph"]["overlays"]["error"]
    assert error_overlay["3"]["cosine_distance"] == rows[4]["cosine_distance"]  # conv2
    memory = run(client, "eval_memory")["result"]["value"]
    assert memory["estimate"] is True and memory["npu_memory"]["maximum_allocation"] > 0


def test_keep_float_rebuilds_with_the_layer_in_float_and_compares_the_builds(client, workspace: Path):
    _quantized(client)
    assert run(client, "init_runtime")["state"] == "done"
    assert run(client, "eval_perf")["state"] == "done"
    assert run(client, "accuracy_analysis", {"inputs": "one.txt"})["state"] == "done"
    job = keep_float(client, ["conv2"])
    assert job["state"] == "done", job
    cfg = (workspace / "tiny.gui.quantization.cfg").read_text()
    assert "customized_quantize_layers: {'conv2': float32}" in cfg
    graph = client.get("/api/graph").json()["graph"]
    assert [n["name"] for n in graph["nodes"] if n["float"]] == ["conv2"]
    assert run(client, "init_runtime")["state"] == "done"
    assert run(client, "eval_perf")["state"] == "done"
    assert run(client, "accuracy_analysis", {"inputs": "one.txt"})["state"] == "done"
    state = client.get("/api/state").json()
    assert [b["label"] for b in state["builds"]] == ["#1 build (asymmetric_quantized-u8)",
                                                     "#2 hybrid_quantization_step2 (asymmetric_quantized-u8, float: conv2)"]
    compared = client.get("/api/compare", params={"a": 1, "b": 2}).json()
    conv2 = next(r for r in compared["rows"] if r["layer"] == "conv2")
    assert conv2["cosine_b"] != conv2["cosine_a"] and conv2["time_a"] and conv2["time_b"]
    assert compared["total"]["time_a"] > 0


def test_the_script_of_a_session_does_the_same(client, workspace: Path, tmp_path: Path):
    _quantized(client)
    assert run(client, "init_runtime")["state"] == "done"
    assert run(client, "inference", {"inputs": "photo.png"})["state"] == "done"
    assert run(client, "eval_perf", {"inputs": "img1.png"})["state"] == "done"
    job = keep_float(client, ["conv1", "fc"])
    assert job["state"] == "done", job["lines"]
    (workspace / "out").mkdir()
    assert run(client, "export_rknn", {"export_path": "out/gui.rknn"})["state"] == "done"
    script = client.get("/api/script").text
    assert "perf = rknn.eval_perf(inputs=[input_5_0], is_print=True)" in script
    fresh = gui_models.workspace(tmp_path / "fresh")
    (fresh / "out").mkdir()
    (fresh / "script.py").write_text(script)
    done = subprocess.run([sys.executable, "script.py"], cwd=fresh, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "-----TOP" not in done.stdout and "Total Time(us)" in done.stdout  # eval_perf printed its table
    assert (fresh / "out" / "gui.rknn").read_bytes() == (workspace / "out" / "gui.rknn").read_bytes()


def test_api_errors_are_shown_with_the_api_text_and_the_server_goes_on(client):
    job = run(client, "build", {"do_quantization": False})
    assert job["state"] == "failed"
    assert job["error"] == "E build needs a model: call one of the load_* methods first"
    assert job["error"] in job["lines"]
    job = run(client, "config", {"reorder_channel": "0 1 1"})
    assert job["state"] == "failed" and job["error"].startswith("E ") and "reorder_channel" in job["error"]
    assert run(client, "load_onnx", {"model": "img0.png"})["state"] == "failed"
    assert client.get("/api/state").status_code == 200
    script = client.get("/api/script").text
    assert "check(rknn." not in script and "rknn.config" not in script  # failed steps are not recorded


@pytest.mark.parametrize(("method", "path", "body", "message"), [
    ("POST", "/api/call/nope", {"values": {}}, "'nope' is not a step of the page"),
    ("POST", "/api/call/release", {"values": {}}, "'release' is not a step"),
    ("POST", "/api/call/build", {"values": {"colour": 1}}, "unknown field(s) colour"),
    ("POST", "/api/call/build", {"values": {"rknn_batch_size": "two"}}, "must be an integer"),
    ("POST", "/api/call/build", {"values": {"do_quantization": "maybe"}}, "must be true or false"),
    ("POST", "/api/call/build", {"values": []}, "must be a JSON object"),
    ("POST", "/api/call/build", [1, 2], "must be a JSON object"),
    ("POST", "/api/call/load_onnx", {"values": {}}, "'model' is needed"),
    ("POST", "/api/call/load_onnx", {"values": {"model": 5}}, "must be text"),
    ("POST", "/api/call/load_onnx", {"values": {"model": "a\x00b"}}, "is not a file name"),
    ("POST", "/api/call/load_onnx", {"values": {"model": "tiny.onnx", "input_size_list": "3,x"}}, "must be integers"),
    ("POST", "/api/keep_float", {"layers": "conv1", "dataset": "dataset.txt"}, "must be a list of layer names"),
    ("POST", "/api/keep_float", {"layers": ["conv1"]}, "a calibration 'dataset' file is needed"),
    ("GET", "/api/jobs/abc", None, "'abc' is not a job number"),
    ("GET", "/api/jobs/99999", None, "there is no job 99999"),
    ("GET", "/api/compare?a=1", None, "compare needs two build numbers"),
    ("GET", "/api/compare?a=1&b=2", None, "are not both in this session"),
    ("POST", "/api/files?path=", None, "a file name is needed"),
])
def test_bad_requests_get_an_e_line_and_a_4xx(client, method, path, body, message):
    response = client.request(method, path, json=body) if body is not None else client.request(method, path)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"].startswith("E ") and message in response.json()["error"]
    assert client.get("/api/state").status_code == 200


def test_a_body_that_is_not_json_is_refused(client):
    response = client.post("/api/call/build", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "JSON object" in response.json()["error"]


def test_upload_then_run_on_the_dropped_picture(client, workspace: Path):
    _quantized(client)
    assert run(client, "init_runtime")["state"] == "done"
    data = (workspace / "photo.png").read_bytes()
    assert client.post("/api/files", params={"path": "drops/cat.png"}, content=data).json() == {"path": "drops/cat.png"}
    assert (workspace / "drops" / "cat.png").read_bytes() == data
    assert run(client, "inference", {"inputs": "drops/cat.png"})["result"]["outputs"][0]["top"]


def test_a_long_step_streams_its_lines_is_busy_and_can_be_cancelled(client, workspace: Path):
    (workspace / "long.txt").write_text("img0.png\n" * 40000)
    assert run(client, "config", {**PREPROCESS, "batch_size": "100"})["state"] == "done"
    assert run(client, "load_onnx", {"model": "tiny.onnx"})["state"] == "done"
    started = client.post("/api/call/build", json={"values": {"dataset": "long.txt"}}).json()["job"]
    busy = client.post("/api/call/eval_memory", json={"values": {}})
    assert busy.status_code == 409 and "'build' is still running" in busy.json()["error"]
    time.sleep(0.5)
    assert client.post(f"/api/jobs/{started}/cancel").json() == {"cancelled": True}
    cancelled_at = time.monotonic()
    job = client.get(f"/api/jobs/{started}", params={"wait": 30}).json()
    assert job["state"] == "cancelled" and job["error"] == "E cancelled by the user"
    assert time.monotonic() - cancelled_at < 30
    assert client.post(f"/api/jobs/{started}/cancel").json() == {"cancelled": False}
    assert client.get("/api/graph").json()["graph"]["built"] is False  # the build never finished
    assert run(client, "build", {"dataset": "dataset.txt"})["state"] == "done"  # the session goes on
    with client.stream("GET", f"/api/jobs/{started}/events") as events:  # server-sent events: the end state
        last = [json.loads(line[6:]) for line in events.iter_lines() if line.startswith("data: ")][-1]
    assert last["state"] == "cancelled"


def test_reset_starts_a_new_session(client):
    _quantized(client)
    assert client.post("/api/reset").json() == {"reset": True}
    assert client.get("/api/graph").json()["graph"] is None
    assert client.get("/api/state").json()["history"] == []
