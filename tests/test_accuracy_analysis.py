"""accuracy_analysis: the snapshot's dumps, the error table and its plot, on a real quantized MobileNetV2."""

from __future__ import annotations

import csv
import json
import os
import sys

import numpy as np
import onnx
import pytest
from onnx_util import run_ort
from PIL import Image

from rknn.api import RKNN
from rknn_core.quant.analysis import check_analysable, cosine_distance, euclidean_distance
from rknn_core.quant.params import bias_params, params_from_range, quantize

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
from zoo import mobilenet_v2  # noqa: E402

SIZE = 32


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """mobilenet_v2 at 32x32, 6 calibration samples, a one-line inputs file (all in one folder)."""
    folder = tmp_path_factory.mktemp("analysis")
    path = str(folder / "mb.onnx")
    onnx.save(mobilenet_v2(size=SIZE, classes=10, width=0.5, seed=3), path)
    rng = np.random.default_rng(11)
    samples = [rng.uniform(-1, 1, (SIZE, SIZE, 3)).astype(np.float32) for _ in range(6)]
    for i, s in enumerate(samples):
        np.save(folder / f"s{i}.npy", s)
    (folder / "dataset.txt").write_text("".join(f"s{i}.npy\n" for i in range(6)))
    (folder / "one.txt").write_text("# the sample to analyse\ns0.npy\n")
    (folder / "two.txt").write_text("s0.npy\ns1.npy\n")
    return {"folder": folder, "onnx": path, "samples": samples}


def built(work, quantize_model: bool = True) -> RKNN:
    rknn = RKNN()
    assert rknn.load_onnx(work["onnx"]) == 0
    assert rknn.build(do_quantization=quantize_model, dataset=str(work["folder"] / "dataset.txt")) == 0
    return rknn


def index_of(snapshot) -> dict:
    return json.loads((snapshot / "index.json").read_text())


def load(snapshot, entry: dict, folder: str) -> np.ndarray:
    return np.load(snapshot / entry["files"][folder]["npy"])


def read_csv(snapshot) -> list[dict]:
    with open(snapshot / "error_analysis.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def analysed(work):
    """The analysis of the plain u8 build (and the RKNN object, its runtime initialised afterwards)."""
    rknn = built(work)
    snapshot = work["folder"] / "snap"
    assert rknn.accuracy_analysis(str(work["folder"] / "one.txt"), output_dir=str(snapshot)) == 0
    return rknn, snapshot


def test_dumps_match_onnxruntime_and_simulator(work, analysed):
    rknn, snapshot = analysed
    index = index_of(snapshot)
    by_tensor = {e["tensor"]: e for e in index["tensors"]}
    sample = work["samples"][0]
    expected = run_ort(work["onnx"], {"input": sample.transpose(2, 0, 1)[None]})[0]
    out = by_tensor["prob"]
    assert out["shape"] == list(expected.shape)
    np.testing.assert_allclose(load(snapshot, out, "fp32"), expected, atol=1e-4, rtol=0)
    assert rknn.init_runtime() == 0
    quantized = rknn.inference([sample], data_type="float32")[0]
    np.testing.assert_array_equal(load(snapshot, out, "qnt"), quantized)
    assert not np.array_equal(load(snapshot, out, "qnt"), load(snapshot, out, "fp32"))  # it is quantized
    # every tensor: three readable files whose shapes and values agree with the index and each other
    # (residual Adds fused into their convs by fuse_epilogue are no layers of their own)
    assert len(index["tensors"]) > 50 and index["quantized_dtype"] == "asymmetric_quantized-u8"
    for entry in index["tensors"]:
        for folder in ("fp32", "qnt", "individual_qnt"):
            array = load(snapshot, entry, folder)
            assert list(array.shape) == entry["shape"] and array.dtype == np.float32
            text = np.loadtxt(snapshot / entry["files"][folder]["txt"], dtype=np.float32, ndmin=1)
            np.testing.assert_array_equal(text, array.ravel())
    conv = next(e for e in index["tensors"] if e["op"] == "Conv")
    assert conv["quantization"]["qtype"] == "u8" and conv["files"]["fp32"]["npy"].startswith("fp32/")


def test_table_equals_recomputation_from_dumps(analysed, capsys):
    _, snapshot = analysed
    rows = read_csv(snapshot)
    entries = index_of(snapshot)["tensors"]
    assert [r["tensor"] for r in rows] == [e["tensor"] for e in entries]
    for row, entry in zip(rows, entries):
        fp32 = load(snapshot, entry, "fp32")
        for suffix, folder in (("", "qnt"), ("_isolated", "individual_qnt")):
            other = load(snapshot, entry, folder)
            d = fp32.astype(np.float64).ravel() - other.astype(np.float64).ravel()
            a, b = fp32.astype(np.float64).ravel(), other.astype(np.float64).ravel()
            cos = 1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) if a.any() and b.any() else float(a.any() != b.any())
            assert float(row["euclidean" + suffix]) == pytest.approx(np.sqrt(d @ d), rel=1e-9, abs=1e-12)
            assert float(row["cosine_distance" + suffix]) == pytest.approx(cos, rel=1e-6, abs=1e-12)
            assert entry["errors"]["euclidean" + suffix] == float(row["euclidean" + suffix])
    # every op of this model has an integer form (hybrid float rows are checked in the hybrid test)
    flags = {r["op"]: r["quantized"] for r in rows}
    assert flags["Conv"] == "1" and flags["Softmax"] == "1"


def test_isolated_error_is_below_accumulated(analysed):
    _, snapshot = analysed
    rows = [r for r in read_csv(snapshot) if r["op"] == "Conv"]
    acc = np.array([float(r["cosine_distance"]) for r in rows])
    iso = np.array([float(r["cosine_distance_isolated"]) for r in rows])
    assert (iso <= acc * (1 + 1e-9)).mean() >= 0.8
    assert iso[-1] < acc[-1] and acc[-1] > 10 * acc[0]  # errors accumulate through the network
    assert np.all(iso < 5e-3)


def test_printed_table_and_plot(work, capsys):
    rknn = built(work)
    snapshot = work["folder"] / "printed"
    assert rknn.accuracy_analysis(str(work["folder"] / "one.txt"), output_dir=str(snapshot)) == 0
    out = capsys.readouterr().out
    rows = read_csv(snapshot)
    assert "euclidean" in out and "cos dist" in out
    table = [line for line in out.splitlines() if line[:4].strip().isdigit() or line[:4].strip() == "in"]
    assert len(table) == len(rows)
    first_conv = next(r for r in rows if r["op"] == "Conv")
    line = next(t for t in table if t.split()[0] == first_conv["id"])
    assert f"{float(first_conv['euclidean']):.4e}" in line
    with Image.open(snapshot / "error_analysis.png") as image:
        image.verify()
    with Image.open(snapshot / "error_analysis.png") as image:
        assert image.format == "PNG" and image.width >= 800 and image.height >= 400
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    colors = {tuple(p) for p in pixels[::7]}
    assert (31, 119, 180) in colors and (255, 127, 14) in colors  # both curves are drawn
    rknn.release()


def _break_layer(rknn: RKNN, node_index: int) -> str:
    """Give one conv's weights a 16x too wide u8 range (as a badly edited hybrid cfg would): few levels."""
    tk = rknn._tk
    node = tk.model.graph.nodes[node_index]
    weight, bias = tk.model.graph.tensors[node.inputs[1]], tk.model.graph.tensors[node.inputs[2]]
    w = tk.float_graph.tensors[node.inputs[1]].data
    coarse = params_from_range(16 * w.min(), 16 * w.max(), "asymmetric_quantized-u8")
    weight.quant, weight.data = coarse, quantize(w, coarse)
    bias.quant = bias_params(tk.model.graph.tensors[node.inputs[0]].quant, coarse)
    bias.data = quantize(tk.float_graph.tensors[node.inputs[2]].data, bias.quant)
    return node.name


def test_broken_layer_stands_out_in_isolated_column(work):
    rknn = built(work)
    graph = rknn._tk.model.graph
    # a projection conv of its own (no activation; a conv with a fused residual add reports the sum, where the
    # residual dilutes the jump)
    convs = [i for i, n in enumerate(graph.nodes)
             if n.op == "Conv" and not n.attrs.get("fused_add") and not n.attrs.get("activation")]
    target = convs[len(convs) // 2]
    name = _break_layer(rknn, target)
    snapshot = work["folder"] / "broken"
    assert rknn.accuracy_analysis(str(work["folder"] / "one.txt"), output_dir=str(snapshot)) == 0
    rows = [r for r in read_csv(snapshot) if r["quantized"] == "1" and r["id"] != "-1"]
    iso = np.array([float(r["cosine_distance_isolated"]) for r in rows])
    acc = np.array([float(r["cosine_distance"]) for r in rows])
    worst = int(np.argmax(iso))
    assert rows[worst]["layer"] == name and int(rows[worst]["id"]) == target
    others = np.delete(iso, worst)
    assert iso[worst] > 20 * np.median(others) and iso[worst] > 3 * others.max()
    before = [k for k, r in enumerate(rows) if int(r["id"]) < target]
    assert acc[worst] > 3 * acc[before[-1]]  # the accumulated error jumps at the broken layer too
    rknn.release()


def test_after_hybrid_step2_float_layer_has_no_isolated_error(work, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rknn = RKNN()
    assert rknn.load_onnx(work["onnx"]) == 0
    assert rknn.hybrid_quantization_step1(dataset=str(work["folder"] / "dataset.txt")) == 0
    rknn.release()
    record = json.loads(open("mb.json").read())
    convs = [n["name"] for n in record["model"]["graph"]["nodes"] if n["op"] == "Conv"]
    chosen = convs[len(convs) // 2]
    text = open("mb.quantization.cfg").read()
    with open("edit.cfg", "w") as f:
        f.write(text.replace("customized_quantize_layers: {}", f"customized_quantize_layers: {{'{chosen}': float32}}"))
    rknn = RKNN()
    assert rknn.hybrid_quantization_step2("mb.json", "mb.data", "edit.cfg", str(work["folder"] / "dataset.txt")) == 0
    assert rknn.accuracy_analysis(str(work["folder"] / "one.txt"), output_dir="snap") == 0
    rows = {r["layer"]: r for r in read_csv(tmp_path / "snap")}
    assert rows[chosen]["quantized"] == "0" and float(rows[chosen]["cosine_distance_isolated"]) == 0
    assert float(rows[chosen]["cosine_distance"]) > 0  # its inputs carry the earlier layers' error
    assert rows[convs[0]]["quantized"] == "1" and float(rows[convs[0]]["cosine_distance_isolated"]) > 0
    expected = run_ort(work["onnx"], {"input": work["samples"][0].transpose(2, 0, 1)[None]})[0]
    prob = next(e for e in index_of(tmp_path / "snap")["tensors"] if e["tensor"] == "prob")
    np.testing.assert_allclose(load(tmp_path / "snap", prob, "fp32"), expected, atol=1e-4, rtol=0)
    rknn.release()


def test_calc_qnt_error_false_dumps_only_and_clears_stale_table(work, analysed, capsys):
    rknn = built(work)
    snapshot = work["folder"] / "second"
    one = str(work["folder"] / "one.txt")
    assert rknn.accuracy_analysis(one, output_dir=str(snapshot)) == 0
    assert (snapshot / "error_analysis.csv").exists()
    capsys.readouterr()
    image = np.random.default_rng(5).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    Image.fromarray(image).save(work["folder"] / "photo.png")
    (work["folder"] / "photo.txt").write_text("photo.png\n")  # an image sample this time
    assert rknn.accuracy_analysis(str(work["folder"] / "photo.txt"), str(snapshot), calc_qnt_error=False) == 0
    assert "euclidean" not in capsys.readouterr().out
    assert sorted(os.listdir(snapshot)) == ["fp32", "index.json", "qnt"]  # no stale table, no staging left
    entries = index_of(snapshot)["tensors"]
    assert "errors" not in entries[-1] and set(entries[-1]["files"]) == {"fp32", "qnt"}
    assert entries[0]["op"] == "Input" and entries[0]["id"] == -1
    np.testing.assert_array_equal(load(snapshot, entries[0], "fp32"), image.transpose(2, 0, 1)[None])
    rknn.release()


def expect_error(capsys, *words: str) -> None:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("E ")]
    assert lines and "Traceback" not in err, err
    for word in words:
        assert word.lower() in "\n".join(lines).lower(), (word, lines)


def test_refused_without_a_quantized_build(work, tmp_path, capsys):
    one, out = str(work["folder"] / "one.txt"), str(tmp_path / "snap")
    rknn = RKNN()
    assert rknn.accuracy_analysis(one, out) == -1
    expect_error(capsys, "accuracy_analysis", "build(do_quantization=True")
    assert rknn.load_onnx(work["onnx"]) == 0
    assert rknn.accuracy_analysis(one, out) == -1
    expect_error(capsys, "build(do_quantization=True")
    assert rknn.build(do_quantization=False) == 0
    assert rknn.accuracy_analysis(one, out) == -1
    expect_error(capsys, "built without quantization")
    rknn.release()
    rknn = built(work)
    assert rknn.export_rknn(str(tmp_path / "mb.rknn")) == 0
    assert rknn.load_rknn(str(tmp_path / "mb.rknn")) == 0
    assert rknn.accuracy_analysis(one, out) == -1
    expect_error(capsys, "load_rknn", "source model")
    assert not os.path.exists(out)
    rknn.release()


def test_refused_inputs(work, tmp_path, capsys):
    rknn = built(work)
    out = str(tmp_path / "snap")
    assert rknn.accuracy_analysis(str(work["folder"] / "two.txt"), out) == -1
    expect_error(capsys, "exactly one sample line", "it has 2", "lines 1, 2")
    assert rknn.accuracy_analysis(str(tmp_path / "missing.txt"), out) == -1
    expect_error(capsys, "accuracy_analysis inputs", "does not exist")
    bad = tmp_path / "bad.txt"
    np.save(tmp_path / "small.npy", np.zeros((8, 8, 3), np.float32))
    bad.write_text("small.npy\n")
    assert rknn.accuracy_analysis(str(bad), out) == -1
    expect_error(capsys, "line 1", "shape")
    assert not os.path.exists(out)  # nothing written by a refused call
    (tmp_path / "file").write_text("x")
    assert rknn.accuracy_analysis(str(work["folder"] / "one.txt"), str(tmp_path / "file")) == -1
    expect_error(capsys, "not a folder")
    rknn.release()


def test_already_quantized_source_is_refused(work):
    rknn = built(work)
    tk = rknn._tk
    first = tk.float_graph.inputs[0]
    tk.float_graph.tensors[first].quant = tk.model.graph.tensors[first].quant
    with pytest.raises(Exception, match="already quantized"):
        check_analysable(tk.float_graph, tk.model)
    rknn.release()


def test_distances():
    a = np.array([1.0, 2.0, 2.0], np.float32)
    assert euclidean_distance(a, a + np.float32(1)) == pytest.approx(np.sqrt(3))
    assert cosine_distance(a, 2 * a) == pytest.approx(0, abs=1e-12)
    assert cosine_distance(a, -a) == pytest.approx(2)
    assert cosine_distance(np.zeros(3), np.zeros(3)) == 0 and cosine_distance(a, np.zeros(3)) == 1
