"""Segmented models (export_rknn_sync_model) run segment by segment; two clients' segments interleave
on the agent's NPU, as its Chrome trace (RKNN_TRACE) shows."""

from __future__ import annotations

import json
import threading
import time

import numpy as np

from rknn.api import RKNN
from rknn_core.fileformat import load
from rknn_core.plugins import default_registry
from rknn_server.segments import outputs_of, run_one, split


def _sync_model(path: str, uids: list[int]) -> str:
    out = path.replace(".rknn", "_sync_" + "_".join(map(str, uids)) + ".rknn")
    assert RKNN().export_rknn_sync_model(path, sync_uids=uids, output_model=out) == 0
    return out


def test_segments_cover_the_model_and_give_its_outputs(models):
    for kind in ("float", "u8"):
        model = load(_sync_model(models[kind], [1, 3]))
        segments = split(model, default_registry())
        assert [(s.first, s.last) for s in segments] == [(0, 1), (2, 3), (4, len(model.graph.nodes) - 1)]
        assert segments[1].executor.graph.inputs == [model.graph.nodes[1].outputs[0]]
        values = {model.graph.inputs[0]: np.ascontiguousarray(models["x"].transpose(0, 3, 1, 2))}
        for segment in segments:
            run_one(segment, values)
        got = outputs_of(segments, values, model.graph.outputs)
        np.testing.assert_array_equal(got[0], models[f"{kind}_ref"][0])


def _trace_events(trace, segments: int, wait: float = 10.0) -> list:
    """The trace's events once it holds ``segments`` segment events (the agent rewrites the file after a job's
    answer has gone out, so the last job's events can lag the client's result), or as they are after ``wait``
    seconds."""
    deadline = time.monotonic() + wait
    while True:
        events = json.loads(trace.read_text())["traceEvents"] if trace.exists() else []
        done = sum(e["ph"] == "X" and "segment" in e["name"] for e in events) >= segments
        if done or time.monotonic() > deadline:
            return events
        time.sleep(0.02)


def test_two_clients_segments_interleave_in_the_trace(models, start_agent, monkeypatch, tmp_path):
    trace = tmp_path / "trace.json"
    agent = start_agent("--emulate", "rk1808", "--pace", "300", env={"RKNN_TRACE": str(trace)})
    monkeypatch.setenv("RKNN_DEVICES", agent.entry)
    paths = [_sync_model(models["float"], [0, 1, 3]), _sync_model(models["u8"], [1, 2])]
    sessions = []
    for path in paths:
        rknn = RKNN()
        assert rknn.load_rknn(path) == 0 and rknn.init_runtime(target="rk1808") == 0
        sessions.append(rknn)
    results: dict[int, list] = {}
    start = threading.Barrier(2)

    def client(i: int) -> None:
        start.wait()
        results[i] = [sessions[i].inference([models["x"]], data_type="float32")[0] for _ in range(3)]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for rknn in sessions:
        rknn.release()
    for i, kind in enumerate(("float", "u8")):
        for out in results[i]:
            np.testing.assert_array_equal(out, models[f"{kind}_ref"][0])

    events = _trace_events(trace, 3 * 4 + 3 * 3)
    steps = sorted((e for e in events if e["ph"] == "X"), key=lambda e: e["ts"])
    assert sum("segment" in e["name"] for e in steps) == 3 * 4 + 3 * 3  # every segment of every inference
    for a, b in zip(steps, steps[1:]):
        assert b["ts"] >= a["ts"] + a["dur"] - 1e-3  # one NPU: steps never overlap
    owners = [e["tid"] for e in steps if "segment" in e["name"]]
    switches = sum(1 for a, b in zip(owners, owners[1:]) if a != b)
    assert len(set(owners)) == 2 and switches >= 3, owners  # the clients take turns, not one whole job each
    jobs = {}
    for e in steps:  # some job's segments have another client's segment between them
        jobs.setdefault(e["args"]["job"], []).append(steps.index(e))
    assert any(max(ix) - min(ix) + 1 > len(ix) for ix in jobs.values())
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert len(names) == 2 and all(n.startswith("127.0.0.1:") for n in names)
