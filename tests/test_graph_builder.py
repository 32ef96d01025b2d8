"""rknn_core.graph_builder: the node-by-node graph building the frontends share (inference, eager folding)."""

from __future__ import annotations

import numpy as np
import pytest

from rknn_core.errors import RknnError
from rknn_core.graph_builder import emit_node, fresh_names
from rknn_core.ir import Graph, Tensor
from rknn_core.plugins import default_registry


@pytest.fixture
def graph() -> Graph:
    graph = Graph()
    graph.add_tensor(Tensor("x", (1, 2, 3, 3)))
    graph.inputs.append("x")
    return graph


def test_fresh_names_avoid_used_ones(graph):
    assert fresh_names(graph, "x") == ["x_1"]
    assert fresh_names(graph, "conv/Split", 3) == ["conv/Split:0", "conv/Split:1", "conv/Split:2"]


def test_a_node_on_an_input_is_added_and_inferred(graph):
    two = graph.add_const("two", np.float32(2))
    node = emit_node(graph, default_registry(), {}, "Mul", ["x", two], None, ["y"], layout="NCHW")
    assert node is graph.nodes[-1] and (node.name, node.inputs, node.outputs) == ("y", ["x", two], ["y"])
    y = graph.tensor("y")
    assert (y.shape, y.dtype, y.data, y.layout) == ((1, 2, 3, 3), "float32", None, "NCHW")


def test_constant_inputs_fold_into_a_constant(graph):
    a = graph.add_const("a", np.arange(6, dtype=np.float32).reshape(2, 3))
    node = emit_node(graph, default_registry(), {}, "Transpose", [a], {"perm": [1, 0]}, ["t"], layout="NCHW")
    assert node is None and graph.nodes == []
    t = graph.tensor("t")
    np.testing.assert_array_equal(t.data, np.arange(6, dtype=np.float32).reshape(2, 3).T)
    assert t.layout is None  # not 4-D


def test_fold_limit_keeps_large_results_as_nodes(graph):
    a = graph.add_const("a", np.ones((4, 4), np.float32))
    assert emit_node(graph, default_registry(), {}, "Relu", [a], None, ["big"], fold_limit=15) is not None
    assert graph.tensor("big").data is None and graph.tensor("big").shape == (4, 4)
    assert emit_node(graph, default_registry(), {}, "Relu", [a], None, ["never"], fold_limit=None) is not None
    assert emit_node(graph, default_registry(), {}, "Relu", [a], None, ["small"], fold_limit=16) is None
    np.testing.assert_array_equal(graph.tensor("small").data, np.ones((4, 4), np.float32))


def test_fold_inferred_folds_values_shape_inference_computed(graph):
    values: dict[str, np.ndarray] = {}
    assert emit_node(graph, default_registry(), values, "Shape", ["x"], None, ["kept"]) is not None
    assert emit_node(graph, default_registry(), values, "Shape", ["x"], None, ["s"], fold_inferred=True) is None
    np.testing.assert_array_equal(graph.tensor("s").data, [1, 2, 3, 3])


def test_an_unknown_op_names_the_node(graph):
    with pytest.raises(RknnError, match="unsupported op 'NoSuchOp' at node 'z'"):
        emit_node(graph, default_registry(), {}, "NoSuchOp", ["x"], None, ["z"])
