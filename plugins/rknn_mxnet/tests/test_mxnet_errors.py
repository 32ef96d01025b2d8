"""Errors name the file, the node, its op and the plugin version; a plugin adds an MXNet op through
rknn_converters; the package does not need mxnet."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
from mxnet_util import SymbolWriter, run_ours, write_params

from rknn_core.errors import RknnError
from rknn_core.hookspecs import hookimpl
from rknn_core.records import Converter
from rknn_core.testing import registry_with
from rknn_mxnet import __version__
from rknn_mxnet.importer import load_mxnet, supported_ops

VERSION = f"rknn-mxnet {__version__}"


def _conv_model(tmp_path, weight_shape=(4, 3, 3, 3), **conv_attrs):
    s = SymbolWriter()
    data, w = s.var("data"), s.var("conv0_weight")
    conv = s.op("Convolution", "conv0", [data, w], kernel=(3, 3), num_filter=4, no_bias=True, **conv_attrs)
    s.op("Activation", "relu0", [conv], act_type="relu")
    symbol = s.save(tmp_path / "m-symbol.json", [len(s.nodes) - 1])
    params = write_params(tmp_path / "m.params", {"arg:conv0_weight": np.ones(weight_shape, np.float32)})
    return symbol, params


def _fails(tmp_path, symbol, params, sizes, *patterns):
    with pytest.raises(RknnError) as info:
        load_mxnet(symbol, params, sizes)
    text = str(info.value)
    for pattern in (*patterns, VERSION):
        assert pattern in text, f"{pattern!r} not in {text!r}"
    return text


def test_a_converter_error_names_the_file_node_op_attribute_and_version(tmp_path):
    symbol, params = _conv_model(tmp_path, stride="(2, x)")
    _fails(tmp_path, symbol, params, [[3, 8, 8]], "'m-symbol.json' node 2 'conv0' (Convolution)",
           "attribute stride='(2, x)' is not a number")


def test_weights_of_the_wrong_shape_name_both_shapes(tmp_path):
    symbol, params = _conv_model(tmp_path, weight_shape=(4, 3, 5, 5))
    _fails(tmp_path, symbol, params, [[3, 8, 8]], "'conv0' (Convolution)", "'conv0_weight' has shape [4, 3, 5, 5]",
           "needs [4, 3, 3, 3]")


def test_unsupported_ops_are_listed_with_their_nodes_and_the_hook(tmp_path):
    s = SymbolWriter()
    data = s.var("data")
    a = s.op("Correlation", "corr0", [data, data])
    s.op("ROIPooling", "roi0", [a, data])
    symbol = s.save(tmp_path / "m-symbol.json", [2])
    params = write_params(tmp_path / "m.params", {})
    _fails(tmp_path, symbol, params, [[3, 8, 8]], "'Correlation' at node 'corr0'", "'ROIPooling' at node 'roi0'",
           "Converter('mxnet', 'Correlation', ...)")


def test_a_missing_parameter_and_a_wrong_input_count(tmp_path):
    symbol, _ = _conv_model(tmp_path)
    empty = write_params(tmp_path / "empty.params", {"arg:other_weight": np.ones(1, np.float32)})
    _fails(tmp_path, symbol, empty, [[3, 8, 8]], "'conv0_weight' is not in the .params file")
    symbol, params = _conv_model(tmp_path)
    _fails(tmp_path, symbol, params, [[3, 8, 8], [3, 8, 8]], "has 1 input(s) ('data'", "gives 2 size(s)")


def test_a_damaged_params_file_names_the_version(tmp_path):
    symbol, params = _conv_model(tmp_path)
    with open(params, "r+b") as f:
        f.truncate(40)
    _fails(tmp_path, symbol, params, [[3, 8, 8]], "'m.params' ends inside")


def test_the_facade_prints_the_error_and_returns_minus_one(tmp_path, capsys):
    from rknn.api import RKNN

    symbol, params = _conv_model(tmp_path, layout="NHWC")
    assert RKNN().load_mxnet(symbol, params, [[3, 8, 8]]) == -1
    err = capsys.readouterr().err
    assert "E 'm-symbol.json' node 2 'conv0' (Convolution): layout NHWC is not supported" in err and VERSION in err


class Correlation:
    """A custom-op package: converts MXNet's 'Correlation' (here the elementwise product of its two inputs)."""

    @hookimpl
    def rknn_converters(self):
        def convert(ctx, node):
            ctx.result("Mul", [ctx.inp(0), ctx.inp(1)])
        return [Converter("mxnet", "Correlation", convert, doc="test")]


def test_a_plugin_adds_an_mxnet_op(tmp_path):
    s = SymbolWriter()
    a, b = s.var("a"), s.var("b")
    s.op("Correlation", "corr0", [a, b])
    symbol = s.save(tmp_path / "m-symbol.json", [2])
    params = write_params(tmp_path / "m.params", {})
    registry = registry_with(Correlation(), name="correlation")
    assert "Correlation" in supported_ops(registry) and "Correlation" not in supported_ops()
    x, y = (np.random.default_rng(i).standard_normal((1, 2, 3, 4)).astype(np.float32) for i in (1, 2))
    (got,) = run_ours(symbol, params, [x, y], [[2, 3, 4], [2, 3, 4]], str(tmp_path), registry=registry)
    np.testing.assert_allclose(got, x * y, rtol=1e-6)


def test_a_plugin_cannot_replace_a_built_in_converter():
    class Twice:
        @hookimpl
        def rknn_converters(self):
            return [Converter("mxnet", "Convolution", lambda ctx, node: None)]

    with pytest.raises(RknnError, match="converter 'mxnet:Convolution' is provided twice: by plugin 'mxnet' and by "
                                        "plugin 'twice'"):
        registry_with(Twice(), name="twice")


def test_the_package_does_not_need_mxnet():
    requires = importlib.metadata.requires("rknn-mxnet") or []
    assert not [r for r in requires if r.lower().startswith("mxnet") and "extra" not in r], requires
    assert {"Convolution", "Deconvolution", "FullyConnected", "BatchNorm", "Activation", "LeakyReLU", "Pooling",
            "elemwise_add", "broadcast_mul", "_plus_scalar", "_minus_scalar", "_mul_scalar", "Concat", "Flatten",
            "Reshape", "transpose", "SoftmaxOutput", "softmax", "SoftmaxActivation", "Dropout", "Crop", "UpSampling",
            "slice_axis", "clip", "log", "_copy"} <= set(supported_ops())
