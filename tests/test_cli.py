"""The ``rknn`` command line, run as a real process on a small generated classifier."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from onnx import helper
from onnx_util import make_model, run_ort, save_model

from rknn_core import fileformat


def rknn_cli(*args: str, expect: int = 0, cwd=None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "rknn_core.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd)
    assert proc.returncode == expect, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A classifier (Conv, Relu, Conv, GlobalAveragePool, Conv 1x1 -> 10 scores), its input and its .rknn."""
    folder = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    init = {"w1": rng.standard_normal((8, 3, 3, 3)).astype(np.float32),
            "b1": rng.standard_normal(8).astype(np.float32),
            "w2": rng.standard_normal((8, 8, 3, 3)).astype(np.float32),
            "w3": rng.standard_normal((10, 8, 1, 1)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2], name="stem"),
             helper.make_node("Relu", ["c1"], ["r1"], name="stem_relu"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], name="block"),
             helper.make_node("GlobalAveragePool", ["c2"], ["g"], name="pool"),
             helper.make_node("Conv", ["g", "w3"], ["y"], name="classifier")]
    x = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
    onnx_path = save_model(make_model(nodes, {"x": x}, ["y"], init), str(folder))
    np.save(folder / "x.npy", x)
    np.save(folder / "x_nhwc.npy", x.transpose(0, 2, 3, 1))
    rknn_path = folder / "model.rknn"
    proc = rknn_cli("convert", onnx_path, "-o", rknn_path)
    return {"folder": folder, "onnx": onnx_path, "rknn": rknn_path, "x": x, "nodes": nodes,
            "ref": run_ort(onnx_path, {"x": x})[0], "convert": proc}


def _top(stdout: str) -> list[tuple[int, float]]:
    return [(int(i), float(v)) for i, v in re.findall(r"^\[(\d+)\]: (\S+)$", stdout, re.M)]


def _check_top5(stdout: str, ref: np.ndarray) -> None:
    scores = ref.reshape(-1)
    top = _top(stdout)
    assert "TOP 5" in stdout
    assert [i for i, _ in top] == list(np.argsort(-scores, kind="stable")[:5])
    np.testing.assert_allclose([v for _, v in top], np.sort(scores)[::-1][:5], rtol=1e-4, atol=1e-4)


def test_convert_writes_a_loadable_model(work):
    assert work["rknn"].exists()
    assert f"wrote {work['rknn']}" in work["convert"].stdout
    assert work["convert"].stderr == ""  # no progress bar when stderr is not a terminal
    model = fileformat.load(str(work["rknn"]))
    assert model.target_platform == ["rk1808"] and model.quantized_dtype is None


def test_inspect_lists_every_node(work, tmp_path):
    level0 = tmp_path / "level0.rknn"
    rknn_cli("convert", work["onnx"], "-o", level0, "--optimization-level", "0", "--no-quantization", "-q")
    out = rknn_cli("inspect", level0).stdout
    node_lines = [line for line in out.splitlines() if re.match(r"^\s+\d+ \w+ '", line)]
    assert len(node_lines) == len(work["nodes"])
    for line, node in zip(node_lines, work["nodes"]):
        assert f"{node.op_type} '{node.name}'" in line
    assert "x: float32[1,3,16,16] NCHW" in out and "y: float32[1,10,1,1]" in out
    assert "format version: 1" in out and "rk1808" in out
    params = sum(int(np.prod(s)) for s in ((8, 3, 3, 3), (8,), (8, 8, 3, 3), (10, 8, 1, 1)))
    assert f"parameters: {params} " in out
    assert f"nodes: {len(work['nodes'])}" in out
    assert re.search(r"MACs per inference: [1-9]\d*", out)
    for name in ("w1", "b1", "w2", "w3"):
        assert re.search(rf"^\s+{name}: float32\[", out, re.M)


def test_inspect_of_optimized_model_matches_file(work):
    out = rknn_cli("inspect", work["rknn"]).stdout
    model = fileformat.load(str(work["rknn"]))
    for i, node in enumerate(model.graph.nodes):
        assert re.search(rf"^\s+{i} {node.op} '{re.escape(node.name)}'", out, re.M), node.name


def test_inspect_source_model(work):
    out = rknn_cli("inspect", work["onnx"]).stdout
    assert "classifier" in out and "totals:" in out


def test_run_prints_onnxruntime_top5(work):
    out = rknn_cli("run", work["rknn"], "--input", work["folder"] / "x.npy", "--format", "nchw").stdout
    assert "output 0 'y': shape (1, 10, 1, 1) float32" in out
    _check_top5(out, work["ref"])


def test_run_nhwc_input_and_saved_outputs(work, tmp_path):
    out = rknn_cli("run", work["rknn"], "--input", work["folder"] / "x_nhwc.npy", "--output-dir", tmp_path,
                   "--top", "3").stdout
    assert "TOP 3" in out and len(_top(out)) == 3
    np.testing.assert_allclose(np.load(tmp_path / "output_0.npy"), work["ref"], rtol=1e-4, atol=1e-5)


def test_run_image_with_preprocessing(work, tmp_path):
    from PIL import Image

    img = np.random.default_rng(1).integers(0, 256, (16, 16, 3)).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "img.png")
    model = tmp_path / "pre.rknn"
    rknn_cli("convert", work["onnx"], "-o", model, "--mean-values", "10 20 30 50", "--reorder", "2 1 0",
             "--platform", "rv1126")
    pre = ((img[..., [2, 1, 0]].astype(np.float32) - [10, 20, 30]) / 50).astype(np.float32)
    ref = run_ort(work["onnx"], {"x": pre.transpose(2, 0, 1)[None]})[0]
    out = rknn_cli("run", model, "--input", tmp_path / "img.png").stdout
    _check_top5(out, ref)
    info = rknn_cli("inspect", model).stdout
    assert "rv1126" in info and "10 20 30 50" in info and "2 1 0" in info


def test_perf_prints_table(work):
    out = rknn_cli("perf", work["rknn"], "--input", work["folder"] / "x.npy", "--format", "nchw").stdout
    assert "Total Time(us)" in out and "FPS(792MHz)" in out
    for node in fileformat.load(str(work["rknn"])).graph.nodes:
        assert node.name in out
    assert "Total Time(us)" in rknn_cli("perf", work["rknn"], "-q").stdout  # zeros as input


@pytest.mark.parametrize("args,words", [
    (["convert", "absent.onnx", "-o", "a.rknn"], ["absent.onnx", "does not exist"]),
    (["convert", "{onnx}", "-o", "{folder}/no/dir/a.rknn"], ["does not exist"]),
    (["convert", "{onnx}", "-o", "a.rknn", "--platform", "rk1808", "--platform", "rv1126"], ["famil"]),
    (["convert", "{onnx}", "-o", "a.rknn", "--quantize"], ["quantiz"]),
    (["run", "{rknn}", "--input", "{folder}/x.npy"], ["shape", "(1, 3, 16, 16)"]),  # nchw data read as nhwc
    (["run", "{rknn}", "--input", "{folder}/x.npy", "{folder}/x.npy", "--format", "nchw"], ["got 2"]),
    (["run", "{rknn}", "--input", "{folder}/absent.npy"], ["absent.npy"]),
    (["run", "{onnx}", "--input", "{folder}/x.npy"], ["not an rknn model"]),
    (["perf", "{folder}/absent.rknn"], ["absent.rknn"]),
    (["inspect", "{folder}/x.npy"], ["not an rknn model"]),
])
def test_failures_exit_1_with_e_line(work, args, words):
    values = {"onnx": work["onnx"], "rknn": work["rknn"], "folder": work["folder"]}
    proc = rknn_cli(*[a.format(**values) for a in args], expect=1, cwd=work["folder"])
    e_lines = [line for line in proc.stderr.splitlines() if line.startswith("E ")]
    assert e_lines, proc.stderr
    for word in words:
        assert word.lower() in proc.stderr.lower(), (word, proc.stderr)


def test_unsupported_op_exit_1(tmp_path):
    import onnx

    node = helper.make_node("FrobnicateTensor", ["x"], ["y"], name="odd_node", domain="com.example")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    model.ir_version = 8
    proc = rknn_cli("convert", save_model(model, str(tmp_path)), "-o", tmp_path / "a.rknn", expect=1)
    assert "FrobnicateTensor" in proc.stderr and "odd_node" in proc.stderr
    assert not (tmp_path / "a.rknn").exists()


def test_usage_errors_exit_2():
    proc = subprocess.run([sys.executable, "-m", "rknn_core.cli"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "usage" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "rknn_core.cli", "convert", "m.onnx"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "--output" in proc.stderr


def test_main_in_process(work, capsys):
    from rknn_core.cli import main

    assert main(["inspect", str(work["rknn"])]) == 0
    assert "totals:" in capsys.readouterr().out
    assert main(["run", str(work["rknn"]), "--input", str(work["folder"] / "x.npy"), "--format", "nchw"]) == 0
    _check_top5(capsys.readouterr().out, work["ref"])


def test_dump_model_summarizes_attrs_and_constants():
    from test_fileformat import _rich_model

    from rknn_core.ir_dump import dump_model, format_attr

    text = dump_model(_rich_model())
    assert "target platforms: rv1109, rv1126 (family rv1126)" in text
    assert "pre_compile: True" in text and "rknn_batch_size: 4" in text
    assert "quantization: asymmetric_quantized-u8" in text
    assert "table=<float32[2,3] min=0 max=5>" in text and "pads=[1,1,1,1]" in text
    assert "scalar: float32[] 4 bytes min=2.5 max=2.5" in text
    assert "in: float32[1,3,4,4] NHWC (with rknn_batch_size: [4,3,4,4])" in text
    assert "nodes (3):" in text and "sync after layers: [0, 2]" in text
    assert format_attr(list(range(100))) == "<list of 100>"
    assert format_attr(np.arange(1000.0)) == "<float64[1000] min=0 max=999>"
