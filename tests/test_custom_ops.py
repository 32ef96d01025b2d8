"""Custom operators: the example op plugin (Mish) and ``RKNN.register_op(op_path)``."""

from __future__ import annotations

import textwrap

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx_util import assert_close, check_against_ort, make_model, run_ort, save_model, single_op

import rknn_core.plugins as plugins
from rknn.api import RKNN
from rknn_core.errors import RknnError
from rknn_core.ir import TensorInfo
from rknn_core.plugins import Registry, default_registry, new_plugin_manager
from rknn_core.records import Cost, OpDef
from rknn_core.toolkit import Toolkit

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _needs_op_example() -> None:
    if default_registry().op("Mish") is None:
        pytest.skip("the rknn-op-example plugin is not installed (pip install -e plugins/examples/rknn_op_example)")


def _registry_without(*plugin_names: str) -> Registry:
    """The installed plugins minus some, as a fresh registry."""
    pm, broken = new_plugin_manager()
    for name in plugin_names:
        if pm.has_plugin(name):
            pm.unregister(name=name)
    return Registry(pm, broken)


def _mish_model(x: np.ndarray) -> onnx.ModelProto:
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv0"),
             helper.make_node("Mish", ["c"], ["y"], name="mish_node")]
    w = np.random.default_rng(3).standard_normal((4, x.shape[1], 1, 1)).astype(np.float32)
    return make_model(nodes, {"x": x}, ["y"], {"w": w}, opset=18)


def _simulate(rknn: RKNN, path: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
    assert rknn.load_onnx(path) == 0
    assert rknn.build(do_quantization=False) == 0
    assert rknn.init_runtime() == 0
    outs = rknn.inference(inputs, data_type="float32", data_format="nchw")
    assert outs is not None
    return outs


# --- the example op plugin ------------------------------------------------------------------------------

def test_op_example_plugin_provides_mish():
    _needs_op_example()
    registry = default_registry()
    assert registry.origin("ops", "Mish") == "op_example"
    opdef = registry.op("Mish")
    assert isinstance(opdef, OpDef)
    info = TensorInfo((2, 3), "float32")
    assert opdef.infer([info], {}) == [TensorInfo((2, 3), "float32")]
    cost = opdef.cost([info], [info], {})
    assert isinstance(cost, Cost) and cost.macs >= 6 and cost.bytes == 2 * info.nbytes


def test_mish_single_op_matches_onnxruntime():
    _needs_op_example()
    x = (np.random.default_rng(0).standard_normal((2, 3, 5)) * 6).astype(np.float32)
    check_against_ort(single_op("Mish", {"x": x}, opset=18), {"x": x})


def test_mish_after_conv_matches_onnxruntime():
    _needs_op_example()
    x = np.random.default_rng(1).standard_normal((1, 3, 6, 6)).astype(np.float32)
    out = check_against_ort(_mish_model(x), {"x": x})
    assert out[0].shape == (1, 4, 6, 6)


def test_mish_is_numerically_stable_at_extremes():
    _needs_op_example()
    x = np.array([-1e4, -100.0, -20.0, -1e-3, 0.0, 1e-3, 20.0, 100.0, 1e4, 3e38], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        (y,) = default_registry().op("Mish").kernel([x], {})
    assert y.dtype == np.float32 and np.isfinite(y).all()
    ref = x.astype(np.float64) * np.tanh(np.logaddexp(0, x.astype(np.float64)))
    np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-30)
    check_against_ort(single_op("Mish", {"x": x[:-1].reshape(1, -1)}, opset=18), {"x": x[:-1].reshape(1, -1)})


def test_mish_float16_keeps_dtype():
    _needs_op_example()
    x = np.linspace(-8, 8, 33, dtype=np.float16)
    (y,) = default_registry().op("Mish").kernel([x], {})
    assert y.dtype == np.float16
    ref = x.astype(np.float64) * np.tanh(np.logaddexp(0, x.astype(np.float64)))
    np.testing.assert_allclose(y.astype(np.float64), ref, rtol=2e-3, atol=1e-3)


def test_mish_refuses_integer_input():
    _needs_op_example()
    with pytest.raises(RknnError, match="floating-point"):
        default_registry().op("Mish").infer([TensorInfo((2,), "int64")], {})


def test_without_the_plugin_load_names_op_and_node(tmp_path):
    registry = _registry_without("op_example")
    assert registry.op("Mish") is None
    x = np.zeros((1, 3, 4, 4), np.float32)
    path = save_model(_mish_model(x), str(tmp_path))
    with pytest.raises(RknnError, match=r"unsupported op 'Mish' at node 'mish_node'"):
        Toolkit(registry=registry).load("load_onnx", model=path)


def test_without_the_plugin_facade_returns_minus_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(plugins, "_default", _registry_without("op_example"))
    x = np.zeros((1, 3, 4, 4), np.float32)
    path = save_model(_mish_model(x), str(tmp_path))
    rknn = RKNN()
    assert rknn.load_onnx(path) == -1
    err = capsys.readouterr().err
    assert "E unsupported op 'Mish' at node 'mish_node'" in err
    assert rknn.build(do_quantization=False) == -1  # nothing was loaded
    rknn.release()


# --- register_op ------------------------------------------------------------------------------------------

SWISH_FILE = '''
"""A custom-domain op: y = x * sigmoid(beta * x)."""
import numpy as np

from rknn_core.ir import TensorInfo
from rknn_core.records import Cost, OpDef


def infer(inputs, attrs):
    return [TensorInfo(inputs[0].shape, inputs[0].dtype)]


def kernel(inputs, attrs):
    x = inputs[0]
    beta = float(attrs.get("beta", 1.0))
    return [(x / (1 + np.exp(-beta * x))).astype(x.dtype)]


def cost(inputs, outputs, attrs):
    return Cost(3 * outputs[0].size, inputs[0].nbytes + outputs[0].nbytes)


OPS = [OpDef("ScaledSwish", infer, kernel, cost, 1, 1, doc="x * sigmoid(beta * x)", domain="com.example")]
'''

THRESHOLDED_RELU_FILE = '''
import numpy as np

from rknn_core.ir import TensorInfo
from rknn_core.records import OpDef

OPS = [OpDef("ThresholdedRelu",
             lambda inputs, attrs: [TensorInfo(inputs[0].shape, inputs[0].dtype)],
             lambda inputs, attrs: [np.where(inputs[0] > attrs.get("alpha", 1.0), inputs[0], 0).astype(inputs[0].dtype)],
             None, 1, 1)]
'''


def _write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def _swish_model(x: np.ndarray, beta: float) -> onnx.ModelProto:
    node = helper.make_node("ScaledSwish", ["x"], ["y"], name="swish0", domain="com.example", beta=beta)
    graph = helper.make_graph([node], "swish", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, x.shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    model.ir_version = 8
    return model


def test_register_op_custom_domain_op_converts_and_runs(tmp_path):
    assert default_registry().op("com.example:ScaledSwish") is None
    op_path = _write(tmp_path, "swish_ops.py", SWISH_FILE)
    x = (np.random.default_rng(2).standard_normal((1, 2, 3, 4)) * 4).astype(np.float32)
    model_path = save_model(_swish_model(x, 1.5), str(tmp_path))
    rknn = RKNN()
    assert rknn.register_op(op_path) == 0
    (y,) = _simulate(rknn, model_path, [x])
    rknn.release()
    ref = x / (1 + np.exp(-1.5 * x))
    assert_close([y], [ref])


def test_register_op_is_per_session(tmp_path, capsys):
    op_path = _write(tmp_path, "swish_ops.py", SWISH_FILE)
    x = np.ones((1, 4), np.float32)
    model_path = save_model(_swish_model(x, 1.0), str(tmp_path))
    first = RKNN()
    assert first.register_op(op_path) == 0
    assert first.load_onnx(model_path) == 0
    first.release()
    other = RKNN()  # a new object does not see the first one's registration
    assert other.load_onnx(model_path) == -1
    assert "E unsupported op 'ScaledSwish' at node 'swish0'" in capsys.readouterr().err
    other.release()
    assert default_registry().op("com.example:ScaledSwish") is None


def test_register_op_onnx_op_matches_onnxruntime(tmp_path):
    if default_registry().op("ThresholdedRelu") is not None:
        pytest.skip("the core provides ThresholdedRelu now; the custom-domain case covers register_op")
    op_path = _write(tmp_path, "trelu_ops.py", THRESHOLDED_RELU_FILE)
    x = (np.random.default_rng(4).standard_normal((2, 8)) * 2).astype(np.float32)
    model_path = save_model(single_op("ThresholdedRelu", {"x": x}, alpha=0.5), str(tmp_path))
    rknn = RKNN()
    assert rknn.register_op(op_path) == 0
    ours = _simulate(rknn, model_path, [x])
    rknn.release()
    assert_close(ours, run_ort(model_path, {"x": x}))


def _register_fails(path, capsys) -> str:
    rknn = RKNN()
    assert rknn.register_op(path) == -1
    rknn.release()
    return capsys.readouterr().err


def test_register_op_missing_file(tmp_path, capsys):
    path = str(tmp_path / "no_such_ops.py")
    err = _register_fails(path, capsys)
    assert f"E register_op: op definition file '{path}' does not exist" in err


def test_register_op_not_a_path(capsys):
    assert "E register_op: op_path must be a file path" in _register_fails(None, capsys)


def test_register_op_file_without_ops(tmp_path, capsys):
    path = _write(tmp_path, "empty_ops.py", "X = 1\n")
    err = _register_fails(path, capsys)
    assert f"E register_op: '{path}' must define OPS" in err


def test_register_op_ops_of_wrong_type(tmp_path, capsys):
    path = _write(tmp_path, "wrong_ops.py", "OPS = ['Swish']\n")
    assert "must define OPS, a non-empty list of rknn_core.records.OpDef" in _register_fails(path, capsys)


def test_register_op_file_that_raises(tmp_path, capsys):
    path = _write(tmp_path, "bad_ops.py", "raise ImportError('needs the frobnicator library')\n")
    err = _register_fails(path, capsys)
    assert f"E register_op: '{path}' failed to import: ImportError: needs the frobnicator library" in err
    assert "Traceback" not in err


def test_register_op_syntax_error(tmp_path, capsys):
    path = _write(tmp_path, "syntax_ops.py", "OPS = [\n")
    assert "failed to import: SyntaxError" in _register_fails(path, capsys)


def test_register_op_reads_any_existing_file_as_python(tmp_path, capsys):
    """A file without the .py extension is read as Python source too: ops load, and a binary file
    (an exported .rknn, say) is a clear import failure, not an internal fault."""
    ops = _write(tmp_path, "my_ops", "from rknn_core.records import OpDef\n"
                 "OPS = [OpDef('Twice', lambda i, a: [i[0]], lambda i, a: [2 * i[0]], domain='com.example')]\n")
    rknn = RKNN()
    assert rknn.register_op(str(ops)) == 0
    binary = tmp_path / "model.rknn"
    binary.write_bytes(bytes(range(256)) * 4)
    err = _register_fails(str(binary), capsys)
    assert f"E register_op: '{binary}' failed to import:" in err and "unexpectedly" not in err


def test_register_op_clash_with_core_op(tmp_path, capsys):
    path = _write(tmp_path, "relu_ops.py", """
        import numpy as np
        from rknn_core.ir import TensorInfo
        from rknn_core.records import OpDef
        OPS = [OpDef("Relu", lambda i, a: [TensorInfo(i[0].shape, i[0].dtype)], lambda i, a: [np.abs(i[0])])]
    """)
    err = _register_fails(path, capsys)
    assert "E op 'Relu' is provided twice: by plugin 'core'" in err
    assert f"register_op({path})" in err
    # the core's Relu is untouched
    assert default_registry().origin("ops", "Relu") == "core"


def test_register_op_twice_clashes_with_itself(tmp_path, capsys):
    path = _write(tmp_path, "swish_ops.py", SWISH_FILE)
    rknn = RKNN()
    assert rknn.register_op(path) == 0
    assert rknn.register_op(path) == -1
    rknn.release()
    assert "op 'com.example:ScaledSwish' is provided twice" in capsys.readouterr().err


def test_register_op_after_release_fails_cleanly(tmp_path, capsys):
    rknn = RKNN()
    rknn.release()
    assert rknn.register_op(_write(tmp_path, "swish_ops.py", SWISH_FILE)) == -1
    assert "E register_op: this RKNN object was released" in capsys.readouterr().err
