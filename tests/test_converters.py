"""Frontend op converters as a hook: a plugin teaches the TensorFlow importer a new op (``rknn_converters``)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from rknn_core.errors import RknnError
from rknn_core.hookspecs import hookimpl
from rknn_core.ir import TensorInfo
from rknn_core.plugins import Registry, default_registry, new_plugin_manager
from rknn_core.records import Converter, OpDef
from rknn_core.toolkit import Toolkit

HAVE_TF_PLUGIN = importlib.util.find_spec("rknn_tf") is not None
needs_tf_plugin = pytest.mark.skipif(not HAVE_TF_PLUGIN, reason="rknn-tf is not installed in this session")


def _swish(x: np.ndarray, beta: float) -> np.ndarray:
    return x / (1 + np.exp(-beta * x))


def _convert_tf(ctx, node) -> None:
    """TensorFlow ``ScaledSwish`` node -> IR ``ScaledSwish``, in whichever layout its input is held."""
    x = node.inputs[0]
    layout = ctx.layout(x)
    ctx.result(node.name, "ScaledSwish", [ctx.get(x, layout)], {"beta": float(node.attr("beta", 1.0))}, layout)


class SwishPlugin:
    """An op and the TensorFlow converter that imports it, as a third-party package would ship them."""

    @hookimpl
    def rknn_ops(self):
        return [OpDef("ScaledSwish", lambda i, a: [TensorInfo(i[0].shape, i[0].dtype)],
                      lambda i, a: [_swish(i[0], a["beta"]).astype(i[0].dtype)], min_inputs=1, max_inputs=1)]

    @hookimpl
    def rknn_converters(self):
        return [Converter("tensorflow", "ScaledSwish", _convert_tf, doc="x * sigmoid(beta * x)")]


class TfliteSwish:
    """A TFLite custom-op converter (listed, never run here)."""

    @hookimpl
    def rknn_converters(self):
        return [Converter("tflite", "custom:ScaledSwish", lambda ctx, op: None)]


def _registry(*plugins) -> Registry:
    pm, broken = new_plugin_manager(extra_plugins=plugins)
    return Registry(pm, broken)


def _swish_graphdef(path: str, beta: float) -> str:
    """Placeholder ``x`` [1, 6] -> Relu -> ScaledSwish(beta) ``out``, written with the GraphDef protobuf."""
    from rknn_tf.proto import tf_graph_pb2 as pb

    gd = pb.GraphDef()
    x = gd.node.add(name="x", op="Placeholder")
    x.attr["dtype"].type = pb.DT_FLOAT
    x.attr["shape"].shape.dim.add(size=1)
    x.attr["shape"].shape.dim.add(size=6)
    relu = gd.node.add(name="relu", op="Relu", input=["x"])
    relu.attr["T"].type = pb.DT_FLOAT
    swish = gd.node.add(name="out", op="ScaledSwish", input=["relu"])
    swish.attr["T"].type = pb.DT_FLOAT
    swish.attr["beta"].f = beta
    with open(path, "wb") as f:
        f.write(gd.SerializeToString())
    return path


def test_converter_record_is_keyed_by_frontend_and_op():
    record = Converter("tflite", "custom:Mish", lambda ctx, op: None)
    assert record.name == "tflite:custom:Mish"
    registry = _registry(("swish", SwishPlugin()))
    assert registry.converters("tensorflow")["ScaledSwish"] is _convert_tf
    assert registry.origin("converters", "tensorflow:ScaledSwish") == "swish"
    assert "ScaledSwish" not in registry.converters("tflite")


@pytest.mark.skipif(importlib.util.find_spec("rknn_tflite") is None or not HAVE_TF_PLUGIN,
                    reason="needs rknn-tflite and rknn-tf")
def test_built_in_converters_come_through_the_hook():
    registry = default_registry()
    assert registry.origin("converters", "tflite:CONV_2D") == "tflite"
    assert registry.origin("converters", "tensorflow:Conv2D") == "tf"
    from rknn_tf.importer import supported_ops as tf_ops
    from rknn_tflite.importer import supported_ops as tflite_ops

    assert "CONV_2D" in tflite_ops() and "custom:ScaledSwish" in tflite_ops(_registry(("s", TfliteSwish())))
    assert "Conv2D" in tf_ops() and "ScaledSwish" in tf_ops(_registry(("swish", SwishPlugin())))


@needs_tf_plugin
def test_converter_clashing_with_a_built_in_one_is_refused():
    class Conv2DAgain:
        @hookimpl
        def rknn_converters(self):
            return [Converter("tensorflow", "Conv2D", _convert_tf)]

    with pytest.raises(RknnError, match="converter 'tensorflow:Conv2D' is provided twice: by plugin 'tf' and by "
                                        "plugin 'again'"):
        _registry(("again", Conv2DAgain()))


@needs_tf_plugin
def test_plugin_converter_imports_a_tensorflow_op(tmp_path):
    beta = 1.5
    path = _swish_graphdef(str(tmp_path / "swish.pb"), beta)
    tk = Toolkit(registry=_registry(("swish", SwishPlugin())))
    tk.load("load_tensorflow", tf_pb=path, inputs=["x"], input_size_list=[[6]], outputs=["out"])
    assert [n.op for n in tk.graph.nodes] == ["Relu", "ScaledSwish"]
    assert tk.graph.nodes[1].attrs == {"beta": beta}
    tk.build(do_quantization=False)
    tk.init_runtime(None)
    x = np.linspace(-3, 3, 6, dtype=np.float32).reshape(1, 6)
    (y,) = tk.inference([x], "float32", "nhwc")
    np.testing.assert_allclose(y, _swish(np.maximum(x, 0), beta), rtol=1e-6, atol=1e-7)


@needs_tf_plugin
def test_tensorflow_op_without_a_converter_names_op_node_and_the_hook(tmp_path):
    path = _swish_graphdef(str(tmp_path / "swish.pb"), 1.0)
    with pytest.raises(RknnError, match=r"'ScaledSwish' at node 'out'.*Converter\('tensorflow', 'ScaledSwish'"):
        Toolkit(registry=_registry()).load("load_tensorflow", tf_pb=path, inputs=["x"], input_size_list=[[6]],
                                           outputs=["out"])
