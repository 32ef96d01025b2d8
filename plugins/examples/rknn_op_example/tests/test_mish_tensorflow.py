"""Mish as a TensorFlow op type ``Mish`` in a frozen GraphDef. TensorFlow computes the reference from the
same graph with Mish written as ``x * tanh(softplus(x))``; the file rknn imports has those three nodes
replaced by one ``Mish`` node."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rknn_tf", reason="rknn-tf is not installed")
tf = pytest.importorskip("tensorflow", reason="tensorflow (the reference) is not installed")

from rknn_core.errors import RknnError  # noqa: E402
from rknn_core.testing import registry_with  # noqa: E402
from rknn_core.toolkit import Toolkit  # noqa: E402

RNG = np.random.default_rng(11)
X = RNG.uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)


def _graph():
    """x -> Conv2D -> x * tanh(softplus(x)) (node ``mish``) -> MaxPool (``out``)."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, 8, 8, 3], name="x")
        c = tf.nn.conv2d(x, (RNG.standard_normal((3, 3, 3, 5)) * 0.9).astype(np.float32), 1, "SAME", name="conv")
        m = tf.multiply(c, tf.tanh(tf.nn.softplus(c, name="softplus"), name="tanh"), name="mish")
        tf.nn.max_pool2d(m, 2, 2, "VALID", name="out")
    return graph


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """(path of the .pb with a Mish node, TensorFlow's output and conv output for X)."""
    graph = _graph()
    with tf.compat.v1.Session(graph=graph) as session:
        out, conv = session.run(["out:0", "conv:0"], {"x:0": X})
    gd = graph.as_graph_def()
    mish = next(n for n in gd.node if n.name == "mish")
    mish.op = "Mish"
    del mish.input[:]
    mish.input.append("conv")
    kept = [n for n in gd.node if n.name not in ("softplus", "tanh")]
    del gd.node[:]
    gd.node.extend(kept)
    path = tmp_path_factory.mktemp("mish_tf") / "mish.pb"
    path.write_bytes(gd.SerializeToString())
    return str(path), out, conv


def _load(registry, path: str) -> Toolkit:
    tk = Toolkit(registry=registry)
    tk.load("load_tensorflow", tf_pb=path, inputs=["x"], input_size_list=[[8, 8, 3]], outputs=["out"])
    return tk


def test_tensorflow_mish_node_matches_tensorflow(model):
    path, reference, conv = model
    assert conv.min() < -1 and conv.max() > 2  # Mish's curved and linear parts are both exercised
    tk = _load(registry_with("rknn_op_example.plugin", name="op_example"), path)
    assert "Mish" in [n.op for n in tk.graph.nodes]
    tk.build(do_quantization=False)
    tk.init_runtime(None)
    (ours,) = tk.inference([X[0]], "float32", "nhwc")
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)


def test_without_the_plugin_the_tensorflow_op_is_named(model):
    registry = registry_with(object(), name="nothing", exclude=("op_example",))
    with pytest.raises(RknnError, match=r"'Mish' at node 'mish'"):
        _load(registry, model[0])
