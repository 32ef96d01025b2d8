"""Hybrid quantization: step 1 files in the guide's format, step 2 honouring edits, clear cfg errors."""

from __future__ import annotations

import json
import os
import pathlib
import re
import sys

import numpy as np
import onnx
import pytest
import yaml
from onnx import helper
from onnx_util import make_model

from rknn.api import RKNN
from rknn_core.plugins import default_registry
from rknn_core.quant import hybrid
from rknn_core.quant.hybrid_cfg import KEY_RE
from rknn_core.runtime.executor import Executor
from rknn_core.runtime.qexecutor import QuantExecutor

FILES = ("tiny.json", "tiny.data", "tiny.quantization.cfg")
FIELDS = ["dtype", "method", "max_value", "min_value", "zero_point", "scale", "qtype"]


def tiny_model(rng: np.random.Generator) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """conv1+relu -> conv2+relu -> conv3 -> reshape: three quantizable layers and an int64 constant."""
    init = {"w1": rng.standard_normal((8, 3, 3, 3)) * 0.3, "b1": rng.standard_normal(8) * 0.1,
            "w2": rng.standard_normal((8, 8, 3, 3)) * 0.2, "b2": rng.standard_normal(8) * 0.1,
            "w3": rng.standard_normal((4, 8, 1, 1)) * 0.3, "b3": rng.standard_normal(4) * 0.1}
    init = {k: v.astype(np.float32) for k, v in init.items()}
    init["shape"] = np.array([1, -1], np.int64)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], name="conv3"),
             helper.make_node("Reshape", ["c3", "shape"], ["y"], name="flat")]
    x = np.zeros((1, 3, 16, 16), np.float32)
    return make_model(nodes, {"x": x}, ["y"], init), init


@pytest.fixture
def work(tmp_path, monkeypatch):
    """tiny.onnx, 6 calibration samples and dataset.txt in a fresh working directory."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(7)
    model, init = tiny_model(rng)
    onnx.save(model, "tiny.onnx")
    samples = [rng.standard_normal((16, 16, 3)).astype(np.float32) for _ in range(6)]
    for i, s in enumerate(samples):
        np.save(f"s{i}.npy", s)
    (tmp_path / "dataset.txt").write_text("".join(f"s{i}.npy\n" for i in range(len(samples))))
    return {"samples": samples, "init": init, "path": tmp_path}


def step1() -> None:
    rknn = RKNN()
    assert rknn.load_onnx("tiny.onnx") == 0
    assert rknn.hybrid_quantization_step1(dataset="dataset.txt") == 0
    rknn.release()


def step2(cfg: str = "tiny.quantization.cfg") -> RKNN:
    rknn = RKNN()
    assert rknn.hybrid_quantization_step2("tiny.json", "tiny.data", cfg, "dataset.txt") == 0
    return rknn


def infer(rknn: RKNN, samples: list[np.ndarray]) -> np.ndarray:
    assert rknn.init_runtime() == 0
    return np.stack([rknn.inference([s], data_type="float32")[0] for s in samples])


def reference(samples: list[np.ndarray], quantize: bool) -> np.ndarray:
    rknn = RKNN()
    assert rknn.load_onnx("tiny.onnx") == 0
    assert rknn.build(do_quantization=quantize, dataset="dataset.txt") == 0
    out = infer(rknn, samples)
    rknn.release()
    return out


def edit_cfg(replace: dict[str, str], name: str = "edit.cfg") -> str:
    text = open("tiny.quantization.cfg").read()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    with open(name, "w") as f:
        f.write(text)
    return text


def line_of(text: str, fragment: str) -> int:
    return text[:text.index(fragment)].count("\n") + 1


def entry_text(text: str, key: str) -> str:
    """The cfg lines of one entry, as written."""
    start = text.index(f"    '{key}':\n")
    end = text.find("\n    '", start + 1)
    return text[start:end if end > 0 else len(text)]


def test_step1_writes_the_guide_format(work):
    step1()
    for name in FILES:
        assert os.path.getsize(name) > 0
    assert not [n for n in os.listdir(".") if n.endswith(".tmp")]  # atomic writes leave no temporaries
    text = open("tiny.quantization.cfg").read()
    assert text.splitlines()[:5] == [
        "%YAML 1.2", "---",
        "# add layer name and corresponding quantized_dtype to customized_quantize_layers, e.g conv2_3: float32",
        "customized_quantize_layers: {}", "quantize_parameters:"]
    cfg = yaml.safe_load(text)
    assert cfg["customized_quantize_layers"] == {}
    params = cfg["quantize_parameters"]
    assert list(params) == ["@x_4:out0",
                            "@conv1_0:weight", "@conv1_0:bias", "@conv1_0:out0",
                            "@conv2_1:weight", "@conv2_1:bias", "@conv2_1:out0",
                            "@conv3_2:weight", "@conv3_2:bias", "@conv3_2:out0",
                            "@flat_3:weight", "@flat_3:out0"]
    for key, fields in params.items():
        assert KEY_RE.match(key), key
        if fields == {"dtype": "None"}:
            continue
        assert list(fields) == FIELDS, key
        assert fields["dtype"] == "asymmetric_affine" and fields["method"] == "layer"
        assert all(isinstance(fields[f], list) and len(fields[f]) == 1 for f in ("zero_point", "scale"))
    # the int64 shape of the Reshape is not quantized: only "dtype: None"
    assert params["@flat_3:weight"] == {"dtype": "None"}
    assert entry_text(text, "@flat_3:weight") == "    '@flat_3:weight':\n        dtype: None"
    # block lists as in the guide
    assert re.search(r"\n        scale:\n        -   [0-9.e+-]+\n        qtype: u8", entry_text(text, "@conv1_0:out0"))
    # u8 weights/activations cover their ranges; int32 biases: zero point 0, scale = input x weight scale
    w1 = params["@conv1_0:weight"]
    assert w1["qtype"] == "u8" and 0 <= w1["zero_point"][0] <= 255
    assert w1["min_value"][0] == pytest.approx(float(work["init"]["w1"].min()))
    assert w1["max_value"][0] == pytest.approx(float(work["init"]["w1"].max()))
    assert w1["scale"][0] == pytest.approx((w1["max_value"][0] - w1["min_value"][0]) / 255)
    for layer, source in (("conv1_0", "@x_4:out0"), ("conv2_1", "@conv1_0:out0"), ("conv3_2", "@conv2_1:out0")):
        bias = params[f"@{layer}:bias"]
        assert bias["qtype"] == "i32" and bias["zero_point"] == [0]
        assert bias["max_value"] is None and bias["min_value"] is None
        assert bias["scale"][0] == pytest.approx(params[source]["scale"][0] * params[f"@{layer}:weight"]["scale"][0],
                                                 rel=1e-12)
    # the calibrated input range is the dataset's
    low = min(float(s.min()) for s in work["samples"])
    assert params["@x_4:out0"]["min_value"][0] == pytest.approx(low)


def test_step1_model_files_hold_the_float_graph(work):
    step1()
    record = json.load(open("tiny.json"))
    nodes = record["model"]["graph"]["nodes"]
    assert [(n["id"], n["name"], n["op"]) for n in nodes] == [
        (0, "conv1", "Conv"), (1, "conv2", "Conv"), (2, "conv3", "Conv"), (3, "flat", "Reshape")]
    assert nodes[0]["attrs"]["activation"]["op"] == "Relu"  # the optimized graph: ReLU fused
    assert record["model"]["extra"]["config"]["quantized_dtype"] == "asymmetric_quantized-u8"
    assert record["data_nbytes"] == os.path.getsize("tiny.data")
    model, _ = hybrid.read_model("tiny.json", "tiny.data", default_registry())
    for name in ("w1", "b1", "w2", "w3"):
        np.testing.assert_array_equal(model.graph.tensors[name].data, work["init"][name])
    assert model.quantized_dtype is None and model.graph.tensors["w1"].quant is None


def test_unedited_cfg_equals_build(work):
    step1()
    ours = infer(step2(), work["samples"])
    np.testing.assert_array_equal(ours, reference(work["samples"], quantize=True))


def test_float32_layers_run_in_float_and_are_closer(work, tmp_path):
    step1()
    edit_cfg({"customized_quantize_layers: {}": "customized_quantize_layers: {conv1: float32, conv2_1: float32}"})
    rknn = step2("edit.cfg")
    graph = rknn._tk.model.graph
    assert graph.tensors["w1"].dtype == "float32" and graph.tensors["w2"].dtype == "float32"
    assert graph.tensors["w3"].dtype == "uint8" and graph.tensors["b3"].dtype == "int32"
    # raw values in the quantized executor: the float32 layers produce float, conv3 storage integers
    executor = QuantExecutor(graph, default_registry())
    feed = {"x": work["samples"][0].transpose(2, 0, 1)[None]}
    raw = Executor.run(executor, feed, keep=["r1", "r2", "c3"])
    assert raw["r1"].dtype == np.float32 and raw["r2"].dtype == np.float32
    assert raw["c3"].dtype == np.uint8
    # r1 is the exact float result (not on a quantization grid)
    q = graph.tensors["r1"].quant
    assert not np.allclose(raw["r1"] / q.scale[0], np.round(raw["r1"] / q.scale[0]))
    hybrid_out = infer(rknn, work["samples"])
    float_out = reference(work["samples"], quantize=False)
    quant_out = reference(work["samples"], quantize=True)
    hybrid_err = np.abs(hybrid_out - float_out).mean()
    quant_err = np.abs(quant_out - float_out).mean()
    assert hybrid_err < 0.85 * quant_err
    # the hybrid model exports and runs from the .rknn file
    assert rknn.export_rknn(str(tmp_path / "hybrid.rknn")) == 0
    again = RKNN()
    assert again.load_rknn(str(tmp_path / "hybrid.rknn")) == 0
    np.testing.assert_array_equal(infer(again, work["samples"]), hybrid_out)


def test_edited_parameters_are_used_as_written(work):
    step1()
    plain = step2()
    plain_out = infer(plain, work["samples"])
    params = yaml.safe_load(open("tiny.quantization.cfg"))["quantize_parameters"]
    old = params["@conv3_2:out0"]
    scale, zero = 0.0625, 40  # a coarser grid with a different zero point
    text = open("tiny.quantization.cfg").read()
    block = entry_text(text, "@conv3_2:out0")
    edited = block.replace(f"-   {old['scale'][0]!r}", f"-   {scale}").replace(f"-   {old['zero_point'][0]}\n", f"-   {zero}\n")
    assert edited != block
    with open("edit.cfg", "w") as f:
        f.write(text.replace(block, edited))
    rknn = step2("edit.cfg")
    q = rknn._tk.model.graph.tensors["c3"].quant
    assert q.scale == (scale,) and q.zero_point == (zero,)
    out = infer(rknn, work["samples"])
    # as computed: the unedited model with only that tensor's parameters changed gives the same output
    graph = plain._tk.model.graph.clone()
    graph.tensors["c3"].quant = q
    graph.tensors["y"].quant = q  # the Reshape after c3 moves storage codes: its output shares c3's parameters
    executor = QuantExecutor(graph, default_registry())
    expected = np.stack([executor.run({"x": s.transpose(2, 0, 1)[None]})["y"] for s in work["samples"]])
    np.testing.assert_array_equal(out, expected.reshape(out.shape))
    # the output lies on the written grid and differs from the unedited model's
    levels = out / scale + zero
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
    assert levels.min() >= 0 and levels.max() <= 255
    assert not np.array_equal(out, plain_out)


def test_written_bias_is_derived_with_warning(work, capsys):
    step1()
    text = open("tiny.quantization.cfg").read()
    block = entry_text(text, "@conv3_2:bias")
    scale = yaml.safe_load(block)["@conv3_2:bias"]["scale"][0]
    with open("edit.cfg", "w") as f:
        f.write(text.replace(block, block.replace(repr(scale), "0.5")))
    rknn = step2("edit.cfg")
    assert rknn._tk.model.graph.tensors["b3"].quant.scale[0] == pytest.approx(scale, rel=1e-12)
    err = capsys.readouterr().err
    assert "'@conv3_2:bias'" in err and f"line {line_of(text, block) }" in err and "input_scale x weight_scale" in err


def test_switch_to_quantized_type(work, capsys):
    step1()
    edit_cfg({"customized_quantize_layers: {}": "customized_quantize_layers: {conv3: asymmetric_affine-u8}"})
    assert step2("edit.cfg")._tk.model.graph.tensors["w3"].dtype == "uint8"
    edit_cfg({"customized_quantize_layers: {}": "customized_quantize_layers: {flat: asymmetric_affine-u8}"})
    rknn = RKNN()
    ret = rknn.hybrid_quantization_step2("tiny.json", "tiny.data", "edit.cfg", "dataset.txt")
    if default_registry().op("Reshape").quantizable:
        assert ret == 0 and "flat" not in rknn._tk.model.graph.metadata["float_nodes"]
    else:
        assert ret == -1
        assert "line 4: 'flat': op Reshape has no quantized form" in capsys.readouterr().err


CUSTOM = "customized_quantize_layers: {}"
BAD_EDITS = [
    # (entry to edit or None for the whole file, old, new, key named in the error, words of the message);
    # the reported line is the one of the first line of ``new``
    (None, CUSTOM, "customized_quantize_layers: {convX: float32}", "convX", "no layer of the model has this name"),
    (None, CUSTOM, "customized_quantize_layers: {conv1: float16}", "conv1", "type 'float16' is unknown"),
    (None, CUSTOM, "customized_quantize_layers: {conv1: [float32]}", "conv1", "type ['float32'] is unknown"),
    (None, CUSTOM, "customized_quantize_layers: [conv1]", "customized_quantize_layers", "must be a mapping"),
    (None, CUSTOM, "customized_quantize_layers: {conv1: dynamic_fixed_point-i8}", "conv1",
     "does not match the model's quantized_dtype"),
    ("@conv1_0:bias", "qtype: i32", "qtype: i33", "qtype", "qtype 'i33' is wrong here; this tensor is i32"),
    ("@conv1_0:out0", "qtype: u8", "qtype: i8", "qtype", "qtype 'i8' is wrong here; this tensor is u8"),
    ("@conv1_0:out0", "scale:\n        -   ", "scale:\n        -   abc", "scale", "value 'abc0."),
    ("@conv1_0:out0", "scale:\n        -   ", "scale:\n        -   -", "scale", "scales must be positive"),
    ("@conv1_0:out0", "zero_point:\n        -   0", "zero_point:\n        -   300", "zero_point",
     "must lie in [0, 255]"),
    ("@conv2_1:out0", "'@conv2_1:out0':", "'@conv2_7:out0':", "@conv2_7:out0", "no layer has id 7"),
    ("@conv2_1:out0", "'@conv2_1:out0':", "'@conv9_1:out0':", "@conv9_1:out0", "layer 1 is 'conv2', not 'conv9'"),
    ("@conv2_1:out0", "'@conv2_1:out0':", "'@conv2_1:out3':", "@conv2_1:out3", "has no tensor 'out3'"),
    ("@conv2_1:out0", "'@conv2_1:out0':", "'conv2:out0':", "conv2:out0", "malformed key"),
    ("@conv2_1:out0", "method: layer", "methd: layer", "methd", "unknown field"),
    ("@conv2_1:out0", "dtype: asymmetric_affine", "dtyp: asymmetric_affine", "dtyp", "unknown field"),
    ("@flat_3:weight", "dtype: None", "{}", "@flat_3:weight", "field 'dtype' is missing"),
    ("@flat_3:weight", "dtype: None", "dtype: asymmetric_affine", "@flat_3:weight", "field 'qtype' is missing"),
]


@pytest.mark.parametrize("entry, old, new, key, words", BAD_EDITS)
def test_malformed_cfg_names_key_and_line(work, capsys, entry, old, new, key, words):
    step1()
    text = open("tiny.quantization.cfg").read()
    block = entry_text(text, entry) if entry else text
    assert old in block
    new_block = block.replace(old, new, 1)
    edited = text.replace(block, new_block, 1)
    with open("edit.cfg", "w") as f:
        f.write(edited)
    # the line of the key the error names: the entry's own line, else the first line of the edit
    line = line_of(text, block) + (0 if key == entry else line_of(new_block, new.split(chr(10))[0]) - 1)
    capsys.readouterr()
    rknn = RKNN()
    assert rknn.hybrid_quantization_step2("tiny.json", "tiny.data", "edit.cfg", "dataset.txt") == -1
    err = capsys.readouterr().err
    assert f"E edit.cfg: line {line}: '{key}':" in err, err
    assert words in err, err
    assert rknn.init_runtime() == -1  # no model was built


def test_yaml_syntax_error_has_line(work, capsys):
    step1()
    text = edit_cfg({"        method: layer\n": "        method: [layer\n"})
    assert RKNN().hybrid_quantization_step2("tiny.json", "tiny.data", "edit.cfg", "dataset.txt") == -1
    err = capsys.readouterr().err
    match = re.search(r"E edit.cfg: line (\d+): YAML syntax error", err)
    assert match, err
    assert abs(int(match.group(1)) - line_of(text, "method: [layer")) <= 1


def test_duplicate_key_is_refused(work, capsys):
    step1()
    text = open("tiny.quantization.cfg").read()
    block = entry_text(text, "@conv1_0:out0")
    with open("edit.cfg", "w") as f:
        f.write(text + block + "\n")
    assert RKNN().hybrid_quantization_step2("tiny.json", "tiny.data", "edit.cfg", "dataset.txt") == -1
    err = capsys.readouterr().err
    assert f"line {text.count(chr(10)) + 1}: key '@conv1_0:out0' appears twice (first on line {line_of(text, block)})" in err


def test_step2_without_step1_files(work, capsys):
    rknn = RKNN()
    assert rknn.hybrid_quantization_step2("tiny.json", "tiny.data", "tiny.quantization.cfg", "dataset.txt") == -1
    assert "model_input 'tiny.json' does not exist; hybrid_quantization_step1 writes it" in capsys.readouterr().err
    step1()
    os.rename("tiny.data", "moved.data")
    assert rknn.hybrid_quantization_step2("tiny.json", "tiny.data", "tiny.quantization.cfg", "dataset.txt") == -1
    assert "data_input 'tiny.data' does not exist" in capsys.readouterr().err
    with open("other.data", "wb") as f:
        f.write(b"\0" * os.path.getsize("moved.data"))
    assert rknn.hybrid_quantization_step2("tiny.json", "other.data", "tiny.quantization.cfg", "dataset.txt") == -1
    assert "does not belong to 'tiny.json'" in capsys.readouterr().err
    assert rknn.hybrid_quantization_step2("tiny.onnx", "moved.data", "tiny.quantization.cfg", "dataset.txt") == -1
    assert "is not a model structure file" in capsys.readouterr().err
    assert rknn.hybrid_quantization_step2("tiny.json", "moved.data", "absent.cfg", "dataset.txt") == -1
    assert "model_quantization_cfg 'absent.cfg' does not exist" in capsys.readouterr().err


def test_step1_needs_a_model_and_a_dataset(work, capsys):
    rknn = RKNN()
    assert rknn.hybrid_quantization_step1(dataset="dataset.txt") == -1
    assert "needs a model" in capsys.readouterr().err
    assert rknn.load_onnx("tiny.onnx") == 0
    assert rknn.hybrid_quantization_step1(dataset="absent.txt") == -1
    assert "absent.txt" in capsys.readouterr().err
    assert not any(os.path.exists(n) for n in FILES)


def test_dynamic_fixed_point_round_trip(work):
    rknn = RKNN()
    rknn.config(quantized_dtype="dynamic_fixed_point-16")
    assert rknn.load_onnx("tiny.onnx") == 0
    assert rknn.hybrid_quantization_step1(dataset="dataset.txt") == 0
    params = yaml.safe_load(open("tiny.quantization.cfg"))["quantize_parameters"]
    out = params["@conv2_1:out0"]
    assert out["dtype"] == "dynamic_fixed_point" and out["qtype"] == "i16" and out["zero_point"] == [0]
    assert np.log2(out["scale"][0]) == int(np.log2(out["scale"][0]))
    edit_cfg({"customized_quantize_layers: {}": "customized_quantize_layers: {conv3: float32}"})
    hybrid_rknn = step2("edit.cfg")
    assert hybrid_rknn._tk.model.quantized_dtype == "dynamic_fixed_point-16"
    assert hybrid_rknn._tk.model.graph.tensors["w2"].dtype == "int16"
    assert hybrid_rknn._tk.model.graph.tensors["w3"].dtype == "float32"
    float_out = reference(work["samples"], quantize=False)
    np.testing.assert_allclose(infer(hybrid_rknn, work["samples"]), float_out, atol=2e-3)


def test_mobilenet_v2_round_trip_with_preprocessing(tmp_path, monkeypatch):
    """The guide's flow on a MobileNetV2 (depthwise convs, residual adds, float head) with in-model
    preprocessing: two layers to float32, which run in float and bring the output closer to float."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))
    import zoo

    monkeypatch.chdir(tmp_path)
    onnx.save(zoo.mobilenet_v2(size=32, classes=10, width=0.5), "mnv2.onnx")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(8)]
    for i, image in enumerate(images):
        np.save(f"i{i}.npy", image)
    (tmp_path / "dataset.txt").write_text("".join(f"i{i}.npy\n" for i in range(len(images))))

    def session() -> RKNN:
        rknn = RKNN()
        rknn.config(channel_mean_value="103.94 116.78 123.68 58.82", reorder_channel="2 1 0")
        return rknn

    def run(rknn: RKNN) -> np.ndarray:
        assert rknn.init_runtime() == 0
        return np.stack([rknn.inference([image])[0] for image in images])

    rknn = session()
    assert rknn.load_onnx("mnv2.onnx") == 0
    assert rknn.hybrid_quantization_step1(dataset="dataset.txt") == 0
    record = json.load(open("mnv2.json"))
    names = [n["name"] for n in record["model"]["graph"]["nodes"]]
    assert names[:3] == ["input_pre_gather", "input_pre_sub", "input_pre_div"]  # preprocessing is in the graph
    assert record["model"]["preprocessed"] == {"input": "input_pre_div"}
    assert record["model"]["extra"]["config"]["reorder_channel"] == "2 1 0"
    convs = [f"{n['name']}_{n['id']}" for n in record["model"]["graph"]["nodes"] if n["op"] == "Conv"][:2]
    text = open("mnv2.quantization.cfg").read()
    with open("edit.cfg", "w") as f:
        f.write(text.replace("customized_quantize_layers: {}",
                             "customized_quantize_layers: {" + ", ".join(f"'{c}': float32" for c in convs) + "}"))
    hybrid_rknn = RKNN()  # step 2 needs no load: the .json holds the optimized, preprocessed graph
    assert hybrid_rknn.hybrid_quantization_step2("mnv2.json", "mnv2.data", "edit.cfg", "dataset.txt") == 0
    graph = hybrid_rknn._tk.model.graph
    outs = {c: graph.nodes[names.index(c.rsplit("_", 1)[0])].outputs[0] for c in convs}
    raw = Executor.run(QuantExecutor(graph, default_registry()),
                       {"input": np.asarray(images[0], np.float32).transpose(2, 0, 1)[None]}, keep=list(outs.values()))
    assert all(raw[t].dtype == np.float32 for t in outs.values())
    third = next(n for n in graph.nodes if n.op == "Conv" and f"{n.name}_{graph.nodes.index(n)}" not in convs)
    assert Executor.run(QuantExecutor(graph, default_registry()),
                        {"input": np.asarray(images[0], np.float32).transpose(2, 0, 1)[None]},
                        keep=[third.outputs[0]])[third.outputs[0]].dtype == np.uint8
    hybrid_out = run(hybrid_rknn)
    reference = session()
    assert reference.load_onnx("mnv2.onnx") == 0
    assert reference.build(do_quantization=False) == 0
    float_out = run(reference)
    full = session()
    assert full.load_onnx("mnv2.onnx") == 0
    assert full.build(do_quantization=True, dataset="dataset.txt") == 0
    quant_out = run(full)
    hybrid_err, quant_err = np.abs(hybrid_out - float_out).mean(), np.abs(quant_out - float_out).mean()
    assert hybrid_err < quant_err, (hybrid_err, quant_err)


def test_dynamic_fixed_point_scale_must_be_a_power_of_two(work, capsys):
    rknn = RKNN()
    rknn.config(quantized_dtype="dynamic_fixed_point-8")
    assert rknn.load_onnx("tiny.onnx") == 0
    assert rknn.hybrid_quantization_step1(dataset="dataset.txt") == 0
    text = open("tiny.quantization.cfg").read()
    block = entry_text(text, "@conv2_1:out0")
    old = yaml.safe_load(block)["@conv2_1:out0"]["scale"][0]
    with open("edit.cfg", "w") as f:
        f.write(text.replace(block, block.replace(repr(old), repr(old * 1.5))))
    assert RKNN().hybrid_quantization_step2("tiny.json", "tiny.data", "edit.cfg", "dataset.txt") == -1
    line = line_of(text, block) + line_of(block, "        scale:") - 1
    assert f"line {line}: 'scale': dynamic fixed point scales are powers of two" in capsys.readouterr().err
    with open("edit.cfg", "w") as f:  # a valid edit: one more fractional bit
        f.write(text.replace(block, block.replace(repr(old), repr(old / 2))))
    edited = step2("edit.cfg")
    assert edited._tk.model.graph.tensors["r2"].quant.scale == (old / 2,)
