"""The vendor flow on an emulated rk1808 agent over tcp: same outputs as the simulator, the chip
model's timings, the guide's version block, measured memory, async mode, and device choice."""

from __future__ import annotations

import numpy as np
import pytest

from rknn.api import RKNN
from rknn_core.fileformat import load
from rknn_core.platforms import chip_for
from rknn_core.plugins import default_registry


def _error(capsys) -> str:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("E ")][-1]


@pytest.mark.parametrize("kind", ["float", "u8"])
def test_vendor_script_on_an_emulated_rk1808_over_tcp(kind, models, start_agent, monkeypatch, capsys):
    agent = start_agent("--emulate", "rk1808", "--device-id", "emu-a")
    monkeypatch.setenv("RKNN_DEVICES", agent.entry)
    rknn = RKNN()
    assert rknn.load_rknn(models[kind]) == 0
    assert rknn.init_runtime(target="rk1808", device_id="emu-a", perf_debug=True) == 0
    outputs = rknn.inference(inputs=[models["x"]], data_type="float32")
    np.testing.assert_array_equal(outputs[0], models[f"{kind}_ref"][0])

    perf = rknn.eval_perf(inputs=[models["x"]], is_print=True)
    modelled = chip_for(["rk1808"], default_registry()).perf(load(models[kind]))
    assert perf["total_time"] == modelled["total_time"] > 0
    assert {i: layer["time"] for i, layer in perf["layers"].items()} == \
           {i: layer["time"] for i, layer in modelled["layers"].items()}
    assert perf["chip"] == "rk1808" and perf["operators"]
    assert "Performance (modelled NPU time on rk1808)" in capsys.readouterr().out

    version = rknn.get_sdk_version()
    lines = version.splitlines()
    assert lines[0] == "RKNN VERSION:" and lines[1].startswith("RKNNAPI: API: 0.1.0")
    assert lines[2].startswith("RKNNAPI: DRV: ") and "emulated rk1808" in lines[2]
    assert version in capsys.readouterr().out
    assert rknn.eval_memory() is None  # eval_mem was not asked for
    assert "eval_memory needs init_runtime(..., eval_mem=True)" in _error(capsys)
    rknn.release()


def test_without_perf_debug_the_device_reports_only_the_total(models, start_agent, monkeypatch):
    agent = start_agent("--emulate", "rk1808")
    monkeypatch.setenv("RKNN_DEVICES", agent.entry)
    rknn = RKNN()
    assert rknn.load_rknn(models["float"]) == 0 and rknn.init_runtime(target="rk3399pro") == 0  # the only device
    perf = rknn.eval_perf(inputs=[models["x"]], is_print=False)
    assert set(perf) == {"total_time"}
    assert perf["total_time"] == chip_for(["rk1808"], default_registry()).perf(load(models["float"]))["total_time"]
    rknn.release()


def test_eval_memory_is_measured_by_the_agent(models, start_agent, monkeypatch, capsys):
    agent = start_agent("--emulate", "rk1808")
    monkeypatch.setenv("RKNN_DEVICES", agent.entry)
    rknn = RKNN()
    assert rknn.load_rknn(models["float"]) == 0 and rknn.init_runtime(target="rk1808", eval_mem=True) == 0
    memory = rknn.eval_memory(is_print=True)
    weights = 8 * 3 * 9 * 4 + 3 * (8 * 8 * 9 * 4)  # the four convolutions' float32 weights
    system = memory["system_memory"]
    assert weights < system["maximum_allocation"] <= system["total_allocation"]
    assert system["total_allocation"] >= weights + 4 * 8 * 16 * 16 * 4  # every activation once, at least
    assert memory["total_memory"]["maximum_allocation"] == system["maximum_allocation"] + memory["npu_memory"]["maximum_allocation"]
    assert memory["measured_on"] == "emulated rk1808" and memory["model_size"] > weights
    assert "Memory Profile Info Dump" in capsys.readouterr().out
    rknn.release()


def test_async_mode_returns_the_previous_frame(models, start_agent, monkeypatch):
    agent = start_agent("--emulate", "rk1808")
    monkeypatch.setenv("RKNN_DEVICES", agent.entry)
    frames = [models["x"] * s for s in (1.0, -1.0, 0.5)]
    rknn, sim = RKNN(), RKNN()
    assert rknn.load_rknn(models["float"]) == 0 and rknn.init_runtime(target="rk1808", async_mode=True) == 0
    assert sim.load_rknn(models["float"]) == 0 and sim.init_runtime() == 0
    expected = [sim.inference([f], data_type="float32")[0] for f in frames]
    got = [rknn.inference([f], data_type="float32")[0] for f in frames]
    np.testing.assert_array_equal(got[0], expected[0])  # the first frame waits for its own result
    np.testing.assert_array_equal(got[1], expected[0])
    np.testing.assert_array_equal(got[2], expected[1])
    rknn.release()
    sim.release()


def test_several_devices_by_id_and_the_errors_naming_them(models, start_agent, monkeypatch, capsys):
    one = start_agent("--emulate", "rk1808", "--device-id", "board-1")
    two = start_agent("--emulate", "rk1808", "--device-id", "board-2")
    monkeypatch.setenv("RKNN_DEVICES", f"{one.entry},{two.entry}")
    assert RKNN().list_devices() == ([], [])
    assert "all device(s) with tcp mode:\n['board-1', 'board-2']" in capsys.readouterr().out

    rknn = RKNN()
    assert rknn.load_rknn(models["float"]) == 0
    assert rknn.init_runtime(target="rk1808") == -1
    assert _error(capsys) == ("E init_runtime: several devices found (adb: none; ntb: none; tcp: board-1, board-2); "
                              "choose one with device_id")
    assert rknn.init_runtime(target="rk1808", device_id="board-3") == -1
    assert _error(capsys) == ("E init_runtime: device 'board-3' not found; devices found: adb: none; ntb: none; "
                              "tcp: board-1, board-2")
    assert rknn.init_runtime(target="rv1126", device_id="board-1") == -1
    assert "which cannot run on rv1126" in _error(capsys)

    first, second = RKNN(), RKNN()
    for session, device in ((first, "board-1"), (second, "board-2")):
        assert session.load_rknn(models["float"]) == 0
        assert session.init_runtime(target="rk1808", device_id=device) == 0
    for session in (first, second, first):
        np.testing.assert_array_equal(session.inference([models["x"]], data_type="float32")[0], models["float_ref"][0])
    first.release()
    second.release()


def test_no_device_gives_minus_one_saying_how_to_get_one(models, capsys):
    rknn = RKNN()
    assert rknn.load_rknn(models["float"]) == 0
    assert rknn.init_runtime(target="rk1808") == -1
    assert _error(capsys).startswith("E init_runtime: no device found (adb: none; ntb: none; tcp: none)")


def test_a_model_of_another_family_is_refused_by_the_device(models, tmp_path, start_agent, monkeypatch, capsys):
    agent = start_agent("--emulate", "rv1126")
    monkeypatch.setenv("RKNN_DEVICES", agent.entry)
    rknn = RKNN()
    assert rknn.load_rknn(models["float"]) == 0
    assert rknn.init_runtime(target="rk1808") == -1
    assert f"device '{agent.device_id}' is a rv1126 (family rv1126), not a chip of the rk1808 family" in _error(capsys)


def test_an_agent_on_a_board_runs_our_runtime_and_measures_times(models, start_agent, monkeypatch):
    agent = start_agent("--device-id", "board")  # no --emulate: this machine is the board
    monkeypatch.setenv("RKNN_DEVICES", agent.entry)
    rknn = RKNN()
    assert rknn.load_rknn(models["u8"]) == 0 and rknn.init_runtime(target="rk1808", perf_debug=True) == 0
    np.testing.assert_array_equal(rknn.inference([models["x"]], data_type="float32")[0], models["u8_ref"][0])
    perf = rknn.eval_perf([models["x"]], is_print=False)
    nodes = load(models["u8"]).graph.nodes
    assert perf["chip"] is None and sorted(perf["layers"]) == list(range(len(nodes)))
    assert [layer["operation"] for layer in perf["layers"].values()] == [n.op for n in nodes]
    assert perf["total_time"] == sum(layer["time"] for layer in perf["layers"].values())
    assert "CPU (the core's kernels)" in rknn.get_sdk_version()
    rknn.release()


def test_rknn_devices_prints_every_transport(monkeypatch, capsys):
    from rknn_core.cli import main

    monkeypatch.setenv("RKNN_DEVICES", "lab=10.0.0.7:7808 127.0.0.1:7809")
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "all device(s) with adb mode:\n[]\nall device(s) with ntb mode:\n[]\n" in out
    assert "all device(s) with tcp mode:\n['lab', '127.0.0.1:7809']" in out
    monkeypatch.setenv("RKNN_DEVICES", "lab=nohost")
    assert main(["devices"]) == 0
    assert ("W list_devices (tcp): RKNN_DEVICES: 'lab=nohost' is not a device entry; write [id=]host:port"
            in capsys.readouterr().err)
