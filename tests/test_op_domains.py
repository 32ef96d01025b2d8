"""Domain-aware op keys: an ONNX node of domain ``com.example`` finds the op registered for that domain."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from onnx_util import make_model, save_model

from rknn_core.errors import RknnError
from rknn_core.hookspecs import hookimpl
from rknn_core.ir import TensorInfo
from rknn_core.ir_dump import dump_model
from rknn_core.plugins import Registry, new_plugin_manager
from rknn_core.records import OpDef
from rknn_core.toolkit import Toolkit


def _same_shape(inputs, attrs):
    return [TensorInfo(inputs[0].shape, inputs[0].dtype)]


def _mish(x: np.ndarray) -> np.ndarray:
    return x * np.tanh(np.logaddexp(0, x))


class DomainOps:
    """A plugin giving ``Scale`` in two domains (x2 and x3) and ``Mish`` in ``com.example``."""

    @hookimpl
    def rknn_ops(self):
        return [OpDef("Scale", _same_shape, lambda i, a: [i[0] * np.float32(2)], domain="com.example"),
                OpDef("Scale", _same_shape, lambda i, a: [i[0] * np.float32(3)], domain="org.other"),
                OpDef("Mish", _same_shape, lambda i, a: [_mish(i[0])], domain="com.example")]


def _toolkit() -> Toolkit:
    pm, broken = new_plugin_manager(extra_plugins=(("domain_ops", DomainOps()),))
    return Toolkit(registry=Registry(pm, broken))


def _run(tk: Toolkit, path: str, x: np.ndarray) -> np.ndarray:
    tk.load("load_onnx", model=path)
    tk.build(do_quantization=False)
    tk.init_runtime(None)
    (y,) = tk.inference([x], "float32", "nchw")
    return y


def test_custom_domain_node_runs_the_op_registered_for_its_domain(tmp_path):
    x = (np.random.default_rng(0).standard_normal((1, 3, 4, 5)) * 4).astype(np.float32)
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu0"),
             helper.make_node("Mish", ["r"], ["y"], name="mish_node", domain="com.example")]
    path = save_model(make_model(nodes, {"x": x}, ["y"]), str(tmp_path))
    tk = _toolkit()
    y = _run(tk, path, x)
    np.testing.assert_allclose(y, _mish(np.maximum(x, 0)), rtol=1e-6, atol=1e-6)
    assert [n.op for n in tk.graph.nodes] == ["Relu", "com.example:Mish"]
    assert tk.registry.origin("ops", "com.example:Mish") == "domain_ops"


def test_same_op_name_in_two_domains_coexists(tmp_path):
    x = np.arange(-6, 6, dtype=np.float32).reshape(1, 12)
    nodes = [helper.make_node("Scale", ["x"], ["a"], name="by_two", domain="com.example"),
             helper.make_node("Scale", ["a"], ["b"], name="by_three", domain="org.other"),
             helper.make_node("Relu", ["b"], ["y"], name="relu0")]
    path = save_model(make_model(nodes, {"x": x}, ["y"]), str(tmp_path))
    tk = _toolkit()
    assert tk.registry.op("com.example:Scale").domain == "com.example"
    assert tk.registry.op("org.other:Scale").domain == "org.other"
    assert tk.registry.op("Scale") is None  # neither is the default domain's
    np.testing.assert_array_equal(_run(tk, path, x), np.maximum(6 * x, 0))
    assert [n.op for n in tk.graph.nodes] == ["com.example:Scale", "org.other:Scale", "Relu"]


def test_custom_domain_ops_survive_the_rknn_file_and_the_dump(tmp_path):
    x = np.linspace(-3, 3, 8, dtype=np.float32).reshape(1, 8)
    node = helper.make_node("Scale", ["x"], ["y"], name="by_three", domain="org.other")
    path = save_model(make_model([node], {"x": x}, ["y"]), str(tmp_path))
    tk = _toolkit()
    tk.load("load_onnx", model=path)
    tk.build(do_quantization=False)
    tk.export_rknn(str(tmp_path / "m.rknn"))
    other = _toolkit()
    model = other.load_rknn(str(tmp_path / "m.rknn"))
    assert "org.other:Scale" in dump_model(model, other.registry)
    other.init_runtime(None)
    (y,) = other.inference([x], "float32", "nchw")
    np.testing.assert_allclose(y, 3 * x, rtol=1e-6)


@pytest.mark.parametrize("domain", ["org.missing", "com.example"])
def test_unknown_custom_domain_op_names_op_domain_and_node(tmp_path, domain):
    """``Relu`` exists in the default domain and ``Scale`` in com.example; neither serves another domain."""
    x = np.zeros((1, 4), np.float32)
    op = "Relu" if domain == "com.example" else "Scale"
    node = helper.make_node(op, ["x"], ["y"], name="odd_node", domain=domain)
    path = save_model(make_model([node], {"x": x}, ["y"]), str(tmp_path))
    with pytest.raises(RknnError, match=rf"unsupported op '{op}' at node 'odd_node' \(domain '{domain}'\)"):
        _toolkit().load("load_onnx", model=path)


def test_custom_domain_op_cut_away_is_not_required(tmp_path):
    """Only the nodes left after ``outputs=`` cut the graph need an op."""
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(1, 6)
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu0"),
             helper.make_node("Scale", ["r"], ["y"], name="odd_node", domain="org.missing")]
    path = save_model(make_model(nodes, {"x": x}, ["y"]), str(tmp_path))
    tk = _toolkit()
    tk.load("load_onnx", model=path, outputs=["r"])
    assert [n.op for n in tk.graph.nodes] == ["Relu"]
