"""The shared NPU model with the installed chip plugins: fusion, performance, memory, pre_compile, the API."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import numpy as np
import pytest
from onnx import helper

from rknn.api import RKNN
from rknn_core import fileformat
from rknn_core.plugins import default_registry
from rknn_core.testing import make_model, save_model
from rknn_targets.npu.memory import Buffer, plan_buffers
from rknn_targets.npu.perf import feature_matrix, layer_features, layer_times, model_dtype
from rknn_targets.npu.program import blocked, load_program, unblocked

ROOT = pathlib.Path(__file__).resolve().parents[3]
RNG = np.random.default_rng(0)


def _chip(name: str):
    return next(t.chip for t in default_registry().table("targets").values() if t.chip and t.chip.name == name)


@pytest.fixture
def convnet(tmp_path) -> str:
    """Conv+Relu, a depthwise Conv + residual Add + MaxPool (fusable), then Erf (no NPU kernel)."""
    x = RNG.standard_normal((1, 3, 32, 32)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], group=64),
             helper.make_node("Add", ["c2", "r1"], ["a"]),
             helper.make_node("MaxPool", ["a"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Erf", ["p"], ["y"])]
    weights = {"w1": RNG.standard_normal((64, 3, 3, 3)).astype(np.float32),
               "w2": RNG.standard_normal((64, 1, 3, 3)).astype(np.float32)}
    return save_model(make_model(nodes, {"x": x}, ["y"], weights), str(tmp_path))


@pytest.fixture
def bignet(tmp_path) -> str:
    """Two dense 3x3 convolutions with 128 channels: compute bound on both chips."""
    x = RNG.standard_normal((1, 128, 56, 56)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["y"], pads=[1, 1, 1, 1])]
    weights = {k: np.zeros((128, 128, 3, 3), np.float32) for k in ("w1", "w2")}
    return save_model(make_model(nodes, {"x": x}, ["y"], weights), str(tmp_path))


def _built(path: str, platform: str = "rk1808", **runtime) -> RKNN:
    rknn = RKNN()
    rknn.config(target_platform=[platform])
    assert rknn.load_onnx(path) == 0 and rknn.build(do_quantization=False) == 0
    assert rknn.init_runtime(**runtime) == 0
    return rknn


def test_planner_peak_equals_the_hand_computed_case():
    # A lives in steps 0-1, B in 1-2, C in 2-3: C reuses A's space, B goes above both
    buffers = [Buffer("A", 128, 0, 1), Buffer("B", 64, 1, 2), Buffer("C", 128, 2, 3)]
    offsets, peak = plan_buffers(buffers)
    assert offsets == {"A": 0, "C": 0, "B": 128} and peak == 192
    assert plan_buffers([Buffer("A", 128, 0, 0), Buffer("B", 64, 1, 1)])[1] == 128  # disjoint lifetimes share


def test_fusion_fallback_and_bounds(convnet, capsys):
    rknn = _built(convnet)
    assert "W build: layer 'Erf_5' (Erf) falls back to the CPU on rk1808: Erf has no NPU kernel" in capsys.readouterr().err
    result = rknn.eval_perf(is_print=False)
    layers = result["layers"]
    assert [layer["operation"] for layer in layers.values()] == ["Conv.Relu", "Conv.Add.MaxPool", "Erf"]
    erf = next(layer for layer in layers.values() if layer["operation"] == "Erf")
    assert erf["device"] == "CPU" and erf["bound"] == "cpu"
    assert result["total_time"] == sum(layer["time"] for layer in layers.values())
    assert result["chip"] == "rk1808" and result["npu_mhz"] == 792 and result["dtype"] == "fp16"
    assert all(layer["pc_time"] >= 0 for layer in layers.values()) and result["pc_total_time"] > 0


def test_rk1808_and_rv1126_differ_as_the_chips_do(bignet):
    rk = _built(bignet, "rk1808").eval_perf(is_print=False)
    rv = _built(bignet, "rv1126").eval_perf(is_print=False)
    rv1109 = _built(bignet, "rv1109").eval_perf(is_print=False)
    assert {layer["bound"] for layer in rk["layers"].values()} == {"compute"}
    # compute bound: time ~ 1 / (MACs per cycle x clock x utilisation): rk1808 1920 x 792 x 0.588, rv1126 1024 x 934 x 0.546
    assert rk["total_time"] < rv["total_time"] < rv1109["total_time"]
    assert rv1109["total_time"] / rv["total_time"] == pytest.approx(934 / 594, rel=0.05)


def test_u8_is_modelled_faster_than_float(bignet):
    rknn = _built(bignet)
    model, chip = rknn._tk.model, _chip("rk1808")
    times = {dtype: chip.perf(model, dtype)["total_time"] for dtype in ("int8", "int16", "fp16")}
    assert times["int8"] < times["int16"] < times["fp16"]
    assert times["fp16"] / times["int8"] > 10  # 1920 vs 64 MACs per cycle, memory adds less than that
    assert [model_dtype(q) for q in ("asymmetric_quantized-u8", "dynamic_fixed_point-16", None)] == ["int8", "int16", "fp16"]


def test_clocks_from_the_environment(bignet, monkeypatch):
    rknn = _built(bignet)
    base = rknn.eval_perf(is_print=False)["total_time"]
    monkeypatch.setenv("RKNN_RK1808_NPU_MHZ", "396")
    slow = rknn.eval_perf(is_print=False)
    assert slow["npu_mhz"] == 396 and slow["total_time"] == pytest.approx(2 * base, rel=0.02)
    monkeypatch.setenv("RKNN_RK1808_NPU_MHZ", "fast")
    assert rknn.eval_perf(is_print=False) is None


def test_eval_perf_prints_the_guide_table_and_perf_debug_statistics(convnet, capsys):
    rknn = _built(convnet, perf_debug=True)
    capsys.readouterr()
    result = rknn.eval_perf()
    out = capsys.readouterr().out
    for text in ("Layer ID", "Name", "Operation", "Time(us)", "Bound", "PC(us)", "Total Time(us)", "FPS(792MHz)",
                 "this PC's own run time", "Operator"):
        assert text in out
    assert "FPS(800MHz)" not in out
    assert result["operators"]["Conv"]["count"] == 2


def test_eval_memory_is_an_estimate_in_the_guide_format(convnet, capsys):
    rknn = _built(convnet)
    capsys.readouterr()
    memory = rknn.eval_memory()
    out = capsys.readouterr().out
    assert "Memory Profile Info Dump" in out and "current model size is:" in out and "estimate" in out
    assert memory["estimate"] is True and memory["chip"] == "rk1808"
    npu = memory["npu_memory"]
    assert npu["maximum_allocation"] == memory["weights"] + memory["activation_peak"] + memory["internal"]
    assert npu["total_allocation"] >= npu["maximum_allocation"]
    # fp16 buffers: x 3x32x32 (step 0), r1 64x32x32 (steps 0-1), p 64x16x16 (steps 1-2), y (step 2): the peak is
    # r1 + p at step 1 (x + r1 at step 0 is smaller); y reuses r1's space
    assert memory["activation_peak"] == 64 * 32 * 32 * 2 + 64 * 16 * 16 * 2
    total = memory["total_memory"]
    assert total["maximum_allocation"] == memory["system_memory"]["maximum_allocation"] + npu["maximum_allocation"]


def test_pre_compile_stores_a_program_the_device_path_loads(convnet, tmp_path, capsys):
    rknn = RKNN()
    rknn.load_onnx(convnet)
    assert rknn.build(do_quantization=False, pre_compile=True) == 0
    path = str(tmp_path / "pre.rknn")
    assert rknn.export_rknn(path) == 0
    model = fileformat.load(path)
    program = load_program(model, "rk1808")
    assert [step["operation"] for step in program.steps] == ["Conv.Relu", "Conv.Add.MaxPool", "Erf"]
    assert program.weights["w1"].shape == (4, 3, 3, 3, 16)  # 64 output channels in blocks of 16 lanes
    np.testing.assert_array_equal(unblocked(program.weights["w1"], 64), model.graph.tensor("w1").data)
    assert program.arena_size > 0 and set(program.buffers) >= {"x", "y"}
    with pytest.raises(Exception, match="pre-compiled for rk1808, not rv1126"):
        load_program(model, "rv1126")
    again = RKNN()
    assert again.load_rknn(path) == 0 and again.init_runtime() == -1
    assert "pre_compile=True, which only a device can run" in capsys.readouterr().err


def test_blocked_layout_pads_output_channels():
    weight = np.arange(5 * 2 * 1 * 1, dtype=np.float32).reshape(5, 2, 1, 1)
    out = blocked(weight, 4)
    assert out.shape == (2, 2, 1, 1, 4) and out[1, :, 0, 0, 1:].sum() == 0 and out[0, 1, 0, 0, 2] == weight[2, 1, 0, 0]


def test_list_support_target_platform_prints_the_guide_lines(convnet, tmp_path, capsys):
    rknn = _built(convnet, "rk3399pro")
    path = str(tmp_path / "m.rknn")
    rknn.export_rknn(path)
    capsys.readouterr()
    result = rknn.list_support_target_platform(rknn_model=path)
    assert result == {"filled_target_platform": ["rk3399pro"], "support_target_platform": ["rk1806", "rk1808", "rk3399pro"]}
    assert capsys.readouterr().out.splitlines() == ["Target platforms filled in RKNN model: ['RK3399PRO']",
                                                    "Target platforms supported by this RKNN model: "
                                                    "['RK1806', 'RK1808', 'RK3399PRO']"]


def test_supported_ops_md_is_up_to_date():
    script = ROOT / "plugins" / "targets" / "scripts" / "supported_ops.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    text = (ROOT / "SUPPORTED_OPS.md").read_text(encoding="utf-8")
    assert "## rk1808 family: rk1806, rk1808, rk3399pro" in text and "## rv1126 family: rv1109, rv1126" in text


def _graph(tmp_path, nodes, x, weights):
    folder = tmp_path / "graph"
    folder.mkdir()
    rknn = RKNN()
    assert rknn.load_onnx(save_model(make_model(nodes, {"x": x}, ["y"], weights), str(folder))) == 0
    assert rknn.build(do_quantization=False) == 0
    return rknn._tk.model.graph


def _total_us(graph, chip: str) -> float:
    return float(layer_times(feature_matrix(layer_features(graph, _chip(chip), "int8")), _chip(chip), "int8")[0].sum())


def test_depthwise_nets_run_faster_on_rv1126_dense_nets_on_rk1808(tmp_path, bignet):
    # published: MobileNetV2 (depthwise) 3.1 ms on RV1126 vs 5.9 on RK1808; YOLOv5s (dense) 50.0 vs 35.5
    x = np.zeros((1, 96, 112, 112), np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], group=96)]
    depthwise = _graph(tmp_path, nodes, x, {"w": np.zeros((96, 1, 3, 3), np.float32)})
    assert _total_us(depthwise, "rv1126") < _total_us(depthwise, "rk1808") / 2
    rk, rv = _built(bignet, "rk1808"), _built(bignet, "rv1126")
    assert rk.eval_perf(is_print=False)["total_time"] < rv.eval_perf(is_print=False)["total_time"]


def test_array_padding_and_dilated_span(tmp_path):
    x = np.zeros((1, 3, 32, 32), np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["c", "w2"], ["y"], pads=[4, 4, 4, 4], dilations=[4, 4], group=20)]
    graph = _graph(tmp_path, nodes, x, {"w1": np.zeros((20, 3, 3, 3), np.float32),
                                        "w2": np.zeros((20, 1, 3, 3), np.float32)})
    first, dilated = layer_features(graph, _chip("rk1808"), "int8")
    # 20 outputs padded to 32 (2 x 16 kernel lanes), 3 inputs padded to 16 input lanes, 3x3 taps, 32x32 pixels
    assert first.dense_macs == 32 * 16 * 9 * 32 * 32
    assert dilated.depthwise_macs == 20 * 9 * 9 * 32 * 32  # 3x3 at dilation 4 spans 9x9


def test_memory_port_runs_at_the_npu_clock(tmp_path):
    # an element-wise Add of two 4 MB tensors is memory bound; the NPU port moves bytes_per_cycle per NPU cycle,
    # so RV1109 (594 MHz) is slower than RV1126 (934 MHz) although both have the same DDR
    x = np.zeros((1, 64, 256, 256), np.float32)
    graph = _graph(tmp_path, [helper.make_node("Add", ["x", "x"], ["y"])], x, {})
    features = layer_features(graph, _chip("rv1126"), "int8")
    _, compute, memory, _ = layer_times(feature_matrix(features), _chip("rv1126"), "int8")
    assert memory[0] > compute[0]
    assert _total_us(graph, "rv1109") / _total_us(graph, "rv1126") == pytest.approx(934 / 594, rel=0.02)


def test_cpu_fallback_matmul_costs_its_macs(tmp_path):
    # attention's q^T k multiplies two activations: the CPU runs it, at 3000 MACs/us on RV1109, 6000 on RV1126
    x = np.zeros((1, 2, 400, 64), np.float32)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 1, 3, 2]), helper.make_node("MatMul", ["x", "t"], ["y"])]
    graph = _graph(tmp_path, nodes, x, {})
    rows = {c: feature_matrix(layer_features(graph, _chip(c), "int8")) for c in ("rv1109", "rv1126")}
    macs = 2 * 400 * 400 * 64
    assert rows["rv1126"][-1, 5] == macs and rows["rv1126"][-1, 6] == 1  # CPU MACs, on the CPU
    cpu = {c: layer_times(rows[c], _chip(c), "int8")[0][-1] for c in rows}
    assert cpu["rv1109"] - cpu["rv1126"] == pytest.approx(macs / 3000 - macs / 6000, rel=1e-9)
