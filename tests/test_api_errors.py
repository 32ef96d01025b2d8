"""The facade's contract: every user error is -1 (or None) with a clear ``E`` line and no traceback."""

from __future__ import annotations

import faulthandler
import os

import numpy as np
import onnx
import pytest
from error_lines import expect_error
from onnx import helper
from onnx_util import make_model, run_ort, save_model

from rknn.api import RKNN
from rknn_core import fileformat
from rknn_core.plugins import default_registry


@pytest.fixture(autouse=True)
def _no_hang():
    """Nothing here may hang: dump the stacks and abort a test that takes over a minute."""
    faulthandler.dump_traceback_later(60, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def _conv_relu(rng, batch: int = 1, channels: int = 3):
    w = rng.standard_normal((4, channels, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    x = rng.standard_normal((batch, channels, 6, 6)).astype(np.float32)
    return make_model(nodes, {"x": x}, ["y"], {"w": w, "b": b}), x


@pytest.fixture
def onnx_path(tmp_path):
    model, _ = _conv_relu(np.random.default_rng(0))
    return save_model(model, str(tmp_path))


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((1, 3, 6, 6)).astype(np.float32)


def _built(path, **config):
    rknn = RKNN()
    if config:
        rknn.config(**config)
    assert rknn.load_onnx(path) == 0
    assert rknn.build(do_quantization=False) == 0
    return rknn


def _ready(path, **config):
    rknn = _built(path, **config)
    assert rknn.init_runtime() == 0
    return rknn


@pytest.fixture
def rknn_path(onnx_path, tmp_path):
    rknn = _built(onnx_path)
    path = str(tmp_path / "m.rknn")
    assert rknn.export_rknn(path) == 0
    rknn.release()
    return path


# missing and broken files ----------------------------------------------------------------------
def test_load_onnx_missing_file(tmp_path, capsys):
    rknn = RKNN()
    assert rknn.load_onnx(str(tmp_path / "absent.onnx")) == -1
    expect_error(capsys, "absent.onnx", "does not exist")


@pytest.mark.parametrize("content", [b"", b"\x08\x07garbage" * 10, os.urandom(512)], ids=["empty", "garbage", "random"])
def test_load_onnx_garbage(tmp_path, capsys, content):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    rknn = RKNN()
    assert rknn.load_onnx(str(path)) == -1
    expect_error(capsys, "bad.onnx")
    assert rknn.build(do_quantization=False) == -1  # nothing was loaded
    expect_error(capsys, "load")


def test_load_onnx_truncated(onnx_path, capsys):
    data = open(onnx_path, "rb").read()
    open(onnx_path, "wb").write(data[: len(data) // 2])
    rknn = RKNN()
    assert rknn.load_onnx(onnx_path) == -1
    expect_error(capsys, "model.onnx")


def test_unsupported_op_names_op_and_node(tmp_path, capsys):
    x = np.zeros((1, 4), np.float32)
    node = helper.make_node("FrobnicateTensor", ["x"], ["y"], name="my_frob", domain="com.example")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, x.shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    model.ir_version = 8
    path = save_model(model, str(tmp_path))
    rknn = RKNN()
    assert rknn.load_onnx(path) == -1
    expect_error(capsys, "FrobnicateTensor", "my_frob")


def test_load_rknn_missing(tmp_path, capsys):
    assert RKNN().load_rknn(str(tmp_path / "gone.rknn")) == -1
    expect_error(capsys, "gone.rknn", "does not exist")


def test_register_op_missing_file(tmp_path, capsys):
    assert RKNN().register_op(str(tmp_path / "my_op.py")) == -1
    expect_error(capsys, "my_op.py")


# call order -------------------------------------------------------------------------------------
def test_build_before_load(capsys):
    assert RKNN().build(do_quantization=False) == -1
    expect_error(capsys, "load_")


def test_export_before_build(onnx_path, tmp_path, capsys):
    rknn = RKNN()
    assert rknn.load_onnx(onnx_path) == 0
    assert rknn.export_rknn(str(tmp_path / "m.rknn")) == -1
    expect_error(capsys, "build")
    assert not (tmp_path / "m.rknn").exists()


def test_init_runtime_before_model(capsys):
    assert RKNN().init_runtime() == -1
    expect_error(capsys, "build", "load_rknn")


def test_inference_and_perf_before_init_runtime(onnx_path, x, capsys):
    rknn = _built(onnx_path)
    assert rknn.inference([x], data_type="float32", data_format="nchw") is None
    expect_error(capsys, "init_runtime")
    assert rknn.eval_perf([x]) is None
    expect_error(capsys, "init_runtime")


def test_quantized_build_without_dataset_is_clear(onnx_path, capsys):
    rknn = RKNN()
    assert rknn.load_onnx(onnx_path) == 0
    assert rknn.build() == -1  # do_quantization=True is the default; it needs a dataset
    expect_error(capsys, "quantization needs a dataset")


def test_everything_fails_after_release(onnx_path, rknn_path, x, capsys):
    rknn = _ready(onnx_path)
    rknn.release()
    calls = [
        (lambda: rknn.config(optimization_level=1), None),
        (lambda: rknn.load_onnx(onnx_path), -1),
        (lambda: rknn.load_rknn(rknn_path), -1),
        (lambda: rknn.build(do_quantization=False), -1),
        (lambda: rknn.export_rknn(rknn_path + ".x"), -1),
        (lambda: rknn.init_runtime(), -1),
        (lambda: rknn.inference([x]), None),
        (lambda: rknn.eval_perf([x]), None),
        (lambda: rknn.eval_memory(), None),
        (lambda: rknn.register_op("x.py"), -1),
        (lambda: rknn.export_rknn_sync_model(rknn_path, [0]), -1),
        (lambda: rknn.list_support_target_platform(), None),
        (lambda: rknn.load_caffe("a", "caffe", "b"), -1),
        (lambda: rknn.hybrid_quantization_step1("d.txt"), -1),
    ]
    for call, fail in calls:
        assert call() == fail
        expect_error(capsys, "released")
    rknn.release()  # a second release is harmless
    assert not os.path.exists(rknn_path + ".x")


# config -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,words", [
    ({"no_such_option": 1}, ["no_such_option", "unknown"]),
    ({"target_platform": ["rk1808", "rv1126"]}, ["famil"]),
    ({"target_platform": ["rk9999"]}, ["rk9999"]),
    ({"optimization_level": 7}, ["optimization_level"]),
    ({"quantized_dtype": "int4"}, ["int4"]),
])
def test_config_refusals(kwargs, words, capsys):
    rknn = RKNN()
    assert rknn.config(**kwargs) is None
    expect_error(capsys, *words)


def test_bad_preprocessing_is_refused_at_config_and_group_count_at_build(onnx_path, capsys):
    rknn = RKNN()
    rknn.config(reorder_channel="0 0 1")  # not a permutation: refused by config itself
    expect_error(capsys, "reorder_channel", "0 0 1")
    rknn.config(channel_mean_value="1 2 3 0")
    expect_error(capsys, "channel_mean_value", "scale")
    rknn.config(channel_mean_value="1 2 3 4#1 2 3 4")  # valid, but the model has one input
    assert rknn.load_onnx(onnx_path) == 0
    assert rknn.build(do_quantization=False) == -1
    expect_error(capsys, "channel_mean_value", "2 inputs")


def test_config_error_keeps_previous_settings(onnx_path, capsys):
    rknn = RKNN()
    rknn.config(target_platform=["rv1126"])
    rknn.config(target_platform=["rk1808", "rv1109"])
    expect_error(capsys, "famil")
    assert rknn.load_onnx(onnx_path) == 0 and rknn.build(do_quantization=False) == -1  # not on a failed config
    expect_error(capsys, "config failed: config target_platform")
    rknn.config(batch_size=10)  # a call that succeeds: the settings before the failed one hold
    assert rknn.build(do_quantization=False) == 0
    assert rknn._tk.model.target_platform == ["rv1126"]


# missing plugins ----------------------------------------------------------------------------------
LOADERS = {
    "load_caffe": (lambda r: r.load_caffe("m.prototxt", "caffe", "m.caffemodel"), "rknn_caffe"),
    "load_darknet": (lambda r: r.load_darknet("m.cfg", "m.weights"), "rknn_darknet"),
    "load_tensorflow": (lambda r: r.load_tensorflow("m.pb", ["in"], [[224, 224, 3]], ["out"]), "rknn_tf"),
    "load_tflite": (lambda r: r.load_tflite("m.tflite"), "rknn_tflite"),
    "load_pytorch": (lambda r: r.load_pytorch("m.pt", [[3, 224, 224]]), "rknn_torch"),
    "load_mxnet": (lambda r: r.load_mxnet("m.json", "m.params", [[3, 224, 224]]), "rknn_mxnet"),
}


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_loader_without_plugin_names_package(loader, capsys):
    if any(f.loader == loader for f in default_registry().table("frontends").values()):
        pytest.skip(f"a plugin serving {loader} is installed")
    call, package = LOADERS[loader]
    assert call(RKNN()) == -1
    expect_error(capsys, loader, "pip install", f"plugins/{package}")


# inference inputs ----------------------------------------------------------------------------------
def test_wrong_input_count(onnx_path, x, capsys):
    rknn = _ready(onnx_path)
    assert rknn.inference([x, x], data_type="float32", data_format="nchw") is None
    expect_error(capsys, "1 input", "got 2")
    assert rknn.inference([], data_type="float32") is None
    expect_error(capsys, "got 0")


def test_wrong_input_shape(onnx_path, capsys):
    rknn = _ready(onnx_path)
    assert rknn.inference([np.zeros((1, 3, 5, 5), np.float32)], data_type="float32", data_format="nchw") is None
    expect_error(capsys, "shape", "(1, 3, 5, 5)", "(1, 3, 6, 6)")


@pytest.mark.parametrize("bad", [np.array([["a"] * 6] * 6), np.array([object()] * 3, dtype=object)], ids=["str", "obj"])
def test_wrong_input_dtype(onnx_path, bad, capsys):
    rknn = _ready(onnx_path)
    assert rknn.inference([bad], data_type="float32") is None
    expect_error(capsys, "numeric")


def test_unknown_data_type_and_format(onnx_path, x, capsys):
    rknn = _ready(onnx_path)
    assert rknn.inference([x], data_type="float64") is None
    expect_error(capsys, "data_type", "float64")
    assert rknn.inference([x], data_type="float32", data_format="chwn") is None
    expect_error(capsys, "data_format", "chwn")
    assert rknn.inference([x], data_type="float32", data_format="nchw", inputs_pass_through=[0, 1]) is None
    expect_error(capsys, "inputs_pass_through")


def test_bad_runtime_target(onnx_path, capsys):
    rknn = _built(onnx_path)
    assert rknn.init_runtime(target="rk9999") == -1
    expect_error(capsys, "rk9999")
    assert rknn.init_runtime(target=None, device_id="abc") == -1
    expect_error(capsys, "device_id")


def test_eval_memory_on_the_pc_is_the_chips_estimate(onnx_path, capsys):
    rknn = _ready(onnx_path)
    memory = rknn.eval_memory()
    assert memory["estimate"] is True and memory["chip"] == "rk1808"
    assert "an estimate of the memory model for rk1808" in capsys.readouterr().out


def test_pre_compile_refused_by_simulator(onnx_path, tmp_path, capsys):
    rknn = RKNN()
    assert rknn.load_onnx(onnx_path) == 0
    assert rknn.build(do_quantization=False, pre_compile=True) == 0
    path = str(tmp_path / "pre.rknn")
    assert rknn.export_rknn(path) == 0
    assert rknn.init_runtime() == -1
    expect_error(capsys, "pre_compile")
    other = RKNN()
    assert other.load_rknn(path) == 0
    assert other.init_runtime() == -1
    expect_error(capsys, "pre_compile", "simulator")


def test_bad_batch_size(onnx_path, capsys):
    rknn = RKNN()
    assert rknn.load_onnx(onnx_path) == 0
    assert rknn.build(do_quantization=False, rknn_batch_size=0) == -1
    expect_error(capsys, "rknn_batch_size")


# correct behaviour ----------------------------------------------------------------------------------
def test_data_format_nhwc_and_nchw_agree_with_onnxruntime(onnx_path, x):
    ref = run_ort(onnx_path, {"x": x})[0]
    rknn = _ready(onnx_path)
    nchw = rknn.inference([x], data_type="float32", data_format="nchw")[0]
    nhwc = rknn.inference([x.transpose(0, 2, 3, 1)], data_type="float32", data_format="nhwc")[0]
    hwc = rknn.inference([x[0].transpose(1, 2, 0)], data_type="float32")[0]  # no batch axis, default nhwc
    for out in (nchw, nhwc, hwc):
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_preprocessing_and_inputs_pass_through(onnx_path):
    mean, scale, order = np.array([10.0, 20.0, 30.0], np.float32), 4.0, [2, 1, 0]
    rknn = _ready(onnx_path, channel_mean_value="10 20 30 4", reorder_channel="2 1 0")
    img = np.random.default_rng(1).integers(0, 256, (6, 6, 3)).astype(np.uint8)  # an HWC image
    pre = ((img[..., order].astype(np.float32) - mean) / scale).transpose(2, 0, 1)[None]
    ref = run_ort(onnx_path, {"x": pre})[0]
    out = rknn.inference([img])  # default data_type uint8, nhwc
    np.testing.assert_allclose(out[0], ref, rtol=1e-4, atol=1e-4)
    # pass-through: the data goes in as is, after the model's own mean/scale/reorder
    raw = np.random.default_rng(2).standard_normal((1, 3, 6, 6)).astype(np.float32)
    through = rknn.inference([raw], data_type="float32", data_format="nchw", inputs_pass_through=[1])
    np.testing.assert_allclose(through[0], run_ort(onnx_path, {"x": raw})[0], rtol=1e-4, atol=1e-5)
    # not passed through: the same data is preprocessed
    normal = rknn.inference([raw], data_type="float32", data_format="nchw", inputs_pass_through=[0])
    pre_raw = ((raw[:, order] - mean[None, :, None, None]) / scale).astype(np.float32)
    np.testing.assert_allclose(normal[0], run_ort(onnx_path, {"x": pre_raw})[0], rtol=1e-4, atol=1e-5)


def test_eval_perf_returns_and_prints_table(onnx_path, x, capsys):
    rknn = _ready(onnx_path)
    capsys.readouterr()
    result = rknn.eval_perf(inputs=[x.transpose(0, 2, 3, 1)])  # eval_perf takes inference's default nhwc
    out = capsys.readouterr().out
    assert isinstance(result["total_time"], int) and result["total_time"] >= 0
    layers = result["layers"]
    assert len(layers) == len(rknn._tk.model.graph.nodes) >= 1
    for layer_id, layer in layers.items():
        assert isinstance(layer_id, int)
        assert {"name", "operation", "time"} <= set(layer)
        assert layer["name"] in out
    assert result["total_time"] == sum(layer["time"] for layer in layers.values())
    for header in ("Layer ID", "Name", "Time(us)", "Total Time(us)", "FPS(792MHz)", "modelled NPU time on rk1808"):
        assert header in out
    assert rknn.eval_perf(is_print=False) is not None  # no inputs: zeros
    assert capsys.readouterr().out == ""


def test_rknn_batch_size_two(tmp_path):
    model, _ = _conv_relu(np.random.default_rng(3))
    path = save_model(model, str(tmp_path))
    rknn = RKNN()
    assert rknn.load_onnx(path) == 0
    assert rknn.build(do_quantization=False, rknn_batch_size=2) == 0
    rknn_file = str(tmp_path / "b2.rknn")
    assert rknn.export_rknn(rknn_file) == 0
    xs = np.random.default_rng(4).standard_normal((2, 3, 6, 6)).astype(np.float32)
    expected = np.concatenate([run_ort(path, {"x": xs[i:i + 1]})[0] for i in range(2)])
    for session in (rknn, RKNN()):
        if session is not rknn:
            assert session.load_rknn(rknn_file) == 0
        assert session.init_runtime() == 0
        out = session.inference([xs], data_type="float32", data_format="nchw")
        assert out[0].shape == (2, 4, 6, 6)
        np.testing.assert_allclose(out[0], expected, rtol=1e-4, atol=1e-5)
        session.release()


def test_list_support_target_platform(onnx_path, tmp_path, capsys):
    rknn = RKNN()
    families = rknn.list_support_target_platform()
    out = capsys.readouterr().out
    assert sorted(p for ps in families.values() for p in ps) == ["rk1806", "rk1808", "rk3399pro", "rv1109", "rv1126"]
    assert len(families) == 2 and "rk3399pro" in out and "rv1109" in out
    built = _built(onnx_path, target_platform=["RV1126"])
    path = str(tmp_path / "rv.rknn")
    assert built.export_rknn(path) == 0
    capsys.readouterr()
    result = rknn.list_support_target_platform(rknn_model=path)
    assert sorted(result["support_target_platform"]) == ["rv1109", "rv1126"]
    assert "Target platforms supported by this RKNN model: ['RV1109', 'RV1126']" in capsys.readouterr().out
    assert rknn.list_support_target_platform(rknn_model=str(tmp_path / "nope.rknn")) is None
    expect_error(capsys, "nope.rknn")


def test_export_rknn_sync_model(tmp_path, capsys):
    rng = np.random.default_rng(5)
    w = rng.standard_normal((3, 3, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"]), helper.make_node("Sigmoid", ["a"], ["b"]),
             helper.make_node("Conv", ["b", "w"], ["c"]), helper.make_node("Tanh", ["c"], ["y"])]
    model = make_model(nodes, {"x": np.zeros((1, 3, 4, 4), np.float32)}, ["y"], {"w": w})
    rknn = _built(save_model(model, str(tmp_path)))
    rknn_path = str(tmp_path / "m.rknn")
    assert rknn.export_rknn(rknn_path) == 0
    assert len(rknn._tk.model.graph.nodes) >= 2
    rknn = RKNN()
    before = open(rknn_path, "rb").read()
    assert rknn.export_rknn_sync_model(rknn_path, [0]) == 0
    default_out = rknn_path[:-5] + "_sync.rknn"
    assert fileformat.load(default_out).extra["sync_uids"] == [0]
    explicit = str(tmp_path / "explicit.rknn")
    assert rknn.export_rknn_sync_model(rknn_path, [1, 0, 1], explicit) == 0
    assert fileformat.load(explicit).extra["sync_uids"] == [0, 1]
    assert open(rknn_path, "rb").read() == before  # the input model is untouched
    session = RKNN()
    assert session.load_rknn(explicit) == 0 and session.init_runtime() == 0
    for bad, words in (([99], ["99", "layer"]), (["a"], ["integers"]), ([], ["layer"]), ([-1], ["-1"])):
        out = str(tmp_path / "bad.rknn")
        assert rknn.export_rknn_sync_model(rknn_path, bad, out) == -1
        expect_error(capsys, *words)
        assert not os.path.exists(out)
    assert rknn.export_rknn_sync_model(str(tmp_path / "missing.rknn"), [0]) == -1
    expect_error(capsys, "missing.rknn")


def test_accuracy_analysis_before_a_quantized_build_fails_clearly(onnx_path, capsys):
    rknn = RKNN()
    assert rknn.load_onnx(onnx_path) == 0
    assert rknn.accuracy_analysis("inputs.txt") == -1
    expect_error(capsys, "quantization")


def test_load_rknn_with_unknown_op_keeps_previous_model(rknn_path, tmp_path, x, capsys):
    from rknn_core.ir import Graph, Node, Tensor
    from rknn_core.model import RknnModel

    g = Graph("odd", inputs=["a"], outputs=["b"])
    g.add_tensor(Tensor("a", (1, 4)))
    g.add_tensor(Tensor("b", (1, 4)))
    g.nodes = [Node("frob_1", "FrobnicateTensor", ["a"], ["b"])]
    odd = str(tmp_path / "odd.rknn")
    fileformat.save(RknnModel(g), odd)
    rknn = RKNN()
    assert rknn.load_rknn(rknn_path) == 0
    assert rknn.load_rknn(odd) == -1
    expect_error(capsys, "FrobnicateTensor", "frob_1")
    assert rknn.init_runtime() == 0  # the model loaded before is still there
    assert rknn.inference([x], data_type="float32", data_format="nchw") is not None
