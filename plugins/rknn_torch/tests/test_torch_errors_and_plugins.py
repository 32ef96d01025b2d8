"""Errors naming op, node, source line and plugin version; converters from a plugin; the vendor flow."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from torch_models import assert_close, check_module, load_ref, save, torch, torch_outputs, torchvision_case

from rknn_core.errors import RknnError
from rknn_core.hookspecs import hookimpl
from rknn_core.plugins import default_registry
from rknn_core.records import Converter
from rknn_core.testing import registry_with
from rknn_torch import __version__
from rknn_torch.importer import supported_ops

nn, F = torch.nn, torch.nn.functional


class Softplus(nn.Module):
    def forward(self, x):
        return F.softplus(x, beta=2.0) * 3.0  # SOFTPLUS_LINE


SOFTPLUS_LINE = next(i for i, line in enumerate(open(__file__), 1) if line.rstrip().endswith("# SOFTPLUS_LINE"))


def _softplus(ctx, node):
    """aten::softplus(x, beta, threshold) as Softplus(beta * x) / beta."""
    beta = float(ctx.static(node.inputs[1], "beta"))
    scale = ctx.add_const("beta", np.asarray(beta, np.float32))
    inner = ctx.emit("Softplus", [ctx.emit("Mul", [ctx.tensor(node.inputs[0]), scale])[0]])[0]
    ctx.result(node, "Div", [inner, scale])


class SoftplusPlugin:
    @hookimpl
    def rknn_converters(self):
        return [Converter("pytorch", "aten::softplus", _softplus, doc="softplus with beta")]


def _load(path, sizes, capsys) -> tuple[int, str]:
    from rknn.api import RKNN

    rknn = RKNN()
    result = rknn.load_pytorch(model=str(path), input_size_list=sizes)
    rknn.release()
    return result, capsys.readouterr().err


def test_unsupported_op_names_op_node_source_line_and_version(tmp_path, capsys):
    save(Softplus(), [torch.zeros(1, 3, 4, 4)], "trace", tmp_path / "m.pt")
    result, err = _load(tmp_path / "m.pt", [[3, 4, 4]], capsys)
    assert result == -1
    line = next(s for s in err.splitlines() if s.startswith("E "))
    for words in ("'aten::softplus'", f"test_torch_errors_and_plugins.py:{SOFTPLUS_LINE}", f"rknn-torch {__version__}",
                  "'m.pt'", "node '%", "Converter('pytorch', 'aten::softplus'"):
        assert words in line, (words, line)


@pytest.mark.parametrize("mode", ["trace", "script"])
def test_a_plugin_converter_adds_an_aten_op(mode, tmp_path):
    registry = registry_with(SoftplusPlugin(), name="softplus")
    assert registry.converters("pytorch")["aten::softplus"] is _softplus
    assert registry.origin("converters", "pytorch:aten::softplus") == "softplus"
    assert "aten::softplus" in supported_ops(registry) and "aten::softplus" not in supported_ops()
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 4)).astype(np.float32) * 3
    ours = check_module(Softplus(), [x], mode, tmp_path, registry=registry)
    assert ours[0].min() > 0  # softplus is positive: the plugin's converter ran, not an identity


def test_a_plugin_cannot_replace_a_builtin_converter():
    class Relu:
        @hookimpl
        def rknn_converters(self):
            return [Converter("pytorch", "aten::relu", _softplus)]

    with pytest.raises(RknnError, match="converter 'pytorch:aten::relu' is provided twice: by plugin 'torch' and by"):
        registry_with(Relu(), name="relu")


def test_supported_ops_cover_the_issue_list():
    ops = set(supported_ops(default_registry()))
    wanted = {"_convolution", "conv2d", "conv_transpose2d", "linear", "addmm", "matmul", "batch_norm", "relu",
              "relu6", "hardtanh", "leaky_relu", "prelu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "silu",
              "softmax", "log_softmax", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "add", "sub", "mul",
              "div", "cat", "flatten", "view", "reshape", "permute", "transpose", "contiguous", "upsample_nearest2d",
              "upsample_bilinear2d", "mean", "log", "chunk", "split", "slice", "select", "size", "dropout"}
    assert {f"aten::{op}" for op in wanted} <= ops


class DataDependent(nn.Module):
    def forward(self, x):
        if bool(x.sum() > 0):
            return x * 2
        return x


class TwoInputs(nn.Module):
    def forward(self, x, y):
        return x + y, x * y


class ConstantOut(nn.Module):
    def forward(self, x):
        return torch.ones(2, 2)


@pytest.mark.parametrize(("make", "sizes", "words"), [
    (lambda p: None, [[3]], ["does not exist"]),
    (lambda p: p.write_bytes(b"not a zip archive"), [[3]], ["is not a TorchScript model"]),
    (lambda p: save(TwoInputs(), [torch.zeros(1, 3), torch.zeros(1, 3)], "trace", p), [[3]],
     ["input_size_list must hold one size per input", "(2: x, y)"]),
    (lambda p: save(TwoInputs(), [torch.zeros(1, 3), torch.zeros(1, 3)], "trace", p), [[3], [0]],
     ["input_size_list entry 1 [0]"]),
    (lambda p: save(DataDependent(), [], "script", p), [[3]],
     ["aten::Bool", "test_torch_errors_and_plugins.py:", "computed from the model inputs"]),
    (lambda p: save(ConstantOut(), [torch.zeros(1, 3)], "trace", p), [[3]], ["is a constant"]),
    (lambda p: save(nn.BatchNorm1d(3).train(), [torch.zeros(2, 3)], "trace", p), [[3]],
     ["aten::batch_norm", "training mode", "model.eval()"]),
], ids=["missing", "not-torchscript", "input-count", "bad-size", "data-dependent-branch", "constant-output",
        "training-batchnorm"])
def test_bad_models_and_arguments_give_one_clear_line(make, sizes, words, tmp_path, capsys):
    path = tmp_path / "bad.pt"
    make(path)
    result, err = _load(path, sizes, capsys)
    assert result == -1
    line = next(s for s in err.splitlines() if s.startswith("E "))
    for word in words:
        assert word in line, (word, line)


def test_two_inputs_two_outputs_keep_their_order(tmp_path):
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((1, 3)).astype(np.float32), rng.standard_normal((1, 3)).astype(np.float32)
    ours = check_module(TwoInputs(), [x, y], "script", tmp_path)
    np.testing.assert_allclose(ours[1], x * y, rtol=1e-6)


def test_vendor_guide_flow_with_preprocessing_and_rknn_file(tmp_path):
    """The guide's script: config(channel_mean_value, reorder_channel), load_pytorch, build, export_rknn,
    load_rknn, inference on a uint8 HWC image; the same as torch on the normalized NCHW input."""
    from rknn.api import RKNN

    folder = torchvision_case("resnet18", "trace", 32)
    image = np.random.default_rng(6).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    mean, scale = np.asarray([123.675, 116.28, 103.53], np.float32), np.float32(58.395)
    normalized = ((image.astype(np.float32) - mean) / scale).transpose(2, 0, 1)[None]
    (ref,) = torch_outputs(folder / "model.pt", [np.ascontiguousarray(normalized)])
    rknn = RKNN()
    rknn.config(channel_mean_value="123.675 116.28 103.53 58.395", reorder_channel="0 1 2")
    assert rknn.load_pytorch(model=str(folder / "model.pt"), input_size_list=[[3, 32, 32]]) == 0
    assert rknn.build(do_quantization=False) == 0
    assert rknn.export_rknn(str(tmp_path / "resnet18.rknn")) == 0
    rknn.release()
    rknn = RKNN()
    assert rknn.load_rknn(str(tmp_path / "resnet18.rknn")) == 0
    assert rknn.init_runtime() == 0
    (ours,) = rknn.inference(inputs=[image])
    rknn.release()
    assert_close([ours], [ref])
    assert load_ref(folder)[1][0].shape == ours.shape == (1, 10)


def test_importing_the_plugin_does_not_import_torch():
    code = ("import sys, rknn_torch.plugin as p; p.rknn_converters(); p.rknn_frontends(); "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_command_line_converts_and_runs_a_torchscript_file(tmp_path, capsys):
    from rknn_core.cli import main

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    save(net.eval(), [torch.zeros(1, 3, 6, 6)], "script", tmp_path / "net.pt")
    x = np.random.default_rng(7).standard_normal((1, 3, 6, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["convert", str(tmp_path / "net.pt"), "-o", str(tmp_path / "net.rknn"), "--input-size-list", "3,6,6"]) == 0
    capsys.readouterr()
    assert main(["run", str(tmp_path / "net.rknn"), "--input", str(tmp_path / "x.npy"), "--format", "nchw",
                 "--top", "5"]) == 0
    (ref,) = torch_outputs(tmp_path / "net.pt", [x])
    top = [(int(i), float(v)) for i, v in re.findall(r"^\[(\d+)\]: (\S+)$", capsys.readouterr().out, re.M)]
    assert [i for i, _ in top] == list(np.argsort(-ref.reshape(-1), kind="stable"))
    np.testing.assert_allclose([v for _, v in top], np.sort(ref.reshape(-1))[::-1], rtol=1e-4, atol=1e-4)
