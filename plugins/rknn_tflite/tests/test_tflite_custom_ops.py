"""TFLite custom ops through a plugin's converter: the ``custom:<custom_code>`` key and flexbuffers options."""

from __future__ import annotations

import numpy as np
import pytest
from flatbuffers import flexbuffers
from tflite_util import run_litert
from tflite_writer import TfliteWriter

from rknn_core.errors import RknnError
from rknn_core.hookspecs import hookimpl
from rknn_core.ir import TensorInfo
from rknn_core.plugins import Registry, new_plugin_manager
from rknn_core.records import Converter, OpDef
from rknn_core.toolkit import Toolkit

SEEN: list = []  # the TfOp each conversion received


def _swish(x: np.ndarray, beta: float) -> np.ndarray:
    return x / (1 + np.exp(-beta * x))


def _convert(ctx, op) -> None:
    """``custom:ScaledSwish``: its ``beta`` comes from the op's flexbuffers options."""
    SEEN.append(op)
    beta = float(flexbuffers.Loads(op.custom_options)["beta"]) if op.custom_options else 1.0
    ctx.emit("ScaledSwish", [ctx.name(0)], [ctx.output(0)], beta=beta)


class SwishPlugin:
    @hookimpl
    def rknn_ops(self):
        return [OpDef("ScaledSwish", lambda i, a: [TensorInfo(i[0].shape, i[0].dtype)],
                      lambda i, a: [_swish(i[0], a["beta"]).astype(i[0].dtype)], min_inputs=1, max_inputs=1)]

    @hookimpl
    def rknn_converters(self):
        return [Converter("tflite", "custom:ScaledSwish", _convert)]


def _toolkit(*plugins) -> Toolkit:
    pm, broken = new_plugin_manager(extra_plugins=plugins)
    return Toolkit(registry=Registry(pm, broken))


def _model(folder, options: bytes, with_swish: bool = True) -> str:
    """input [1, 4, 4, 3] -> ADD(bias) -> custom ScaledSwish (left out with ``with_swish=False``)."""
    m = TfliteWriter()
    x = m.input([1, 4, 4, 3])
    y = m.tensor([1, 4, 4, 3], name="added")
    m.op("ADD", [x, m.const(np.array([0.5, -1.0, 2.0], np.float32))], [y], "AddOptions")
    if not with_swish:
        return m.save(str(folder / "add.tflite"), [y])
    z = m.tensor([1, 4, 4, 3], name="swished")
    m.custom_op("ScaledSwish", [y], [z], options)
    return m.save(str(folder / "swish.tflite"), [z])


def test_custom_op_converts_with_its_flexbuffers_options(tmp_path):
    x = np.random.default_rng(0).uniform(-3, 3, (1, 4, 4, 3)).astype(np.float32)
    path = _model(tmp_path, flexbuffers.Dumps({"beta": 1.5}))
    tk = _toolkit(("swish", SwishPlugin()))
    SEEN.clear()
    tk.load("load_tflite", model=path)
    assert [op.code for op in SEEN] == ["custom:ScaledSwish"]
    assert [n.attrs.get("beta") for n in tk.graph.nodes if n.op == "ScaledSwish"] == [1.5]
    tk.build(do_quantization=False)
    tk.init_runtime(None)
    (ours,) = tk.inference([x[0]], "float32", "nhwc")
    (added,) = run_litert(_model(tmp_path, b"", with_swish=False), [x])  # the builtin part, by LiteRT
    np.testing.assert_allclose(ours, _swish(added, 1.5), rtol=1e-5, atol=1e-6)


def test_custom_op_without_a_converter_names_op_operator_and_the_hook(tmp_path):
    path = _model(tmp_path, b"")
    with pytest.raises(RknnError, match=r"unsupported TFLite op custom:ScaledSwish at operator 1 .*output 'swished'.*"
                                        r"no installed plugin converts it.*Converter\('tflite', 'custom:ScaledSwish'"):
        _toolkit().load("load_tflite", model=path)
