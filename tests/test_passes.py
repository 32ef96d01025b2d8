"""The built-in graph passes: each rewrites what it should, keeps outputs equal to onnxruntime at
every optimization level, leaves a graph the verifier accepts, and spares protected tensors."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from onnx_util import check_against_ort, make_model, save_model

from rknn_core.errors import RknnError
from rknn_core.ir import Graph, Node, Tensor
from rknn_core.passes import builtin_passes
from rknn_core.passes.manager import PassContext, run_passes, selected_passes
from rknn_core.plugins import default_registry
from rknn_core.shape_inference import infer_shapes
from rknn_core.toolkit import Toolkit
from rknn_core.verify import verify_graph

LEVELS = (0, 1, 2, 3)
F32 = np.float32


@pytest.fixture(autouse=True)
def _verify_every_pass(monkeypatch):
    """Every build in this module runs the verifier after each change a pass makes."""
    monkeypatch.setenv("RKNN_VERIFY_PASSES", "1")


def rng(seed=0):
    return np.random.default_rng(seed)


def randn(*shape, seed=0):
    return rng(seed).standard_normal(shape).astype(F32)


def built(model, level=3, tmp_path=None, **cfg):
    """The graph ``build`` produces (through the Toolkit) at ``level``."""
    path = save_model(model, str(tmp_path) if tmp_path else None)
    tk = Toolkit()
    tk.config(optimization_level=level, **cfg)
    tk.load("load_onnx", model=path)
    return tk.build(do_quantization=False).graph


def optimize(model, level=3, protected=()):
    """Load, then run the passes of ``level`` with the verifier on; returns (graph, passes that changed it)."""
    tk = Toolkit()
    graph = tk.load("load_onnx", model=save_model(model)).clone()
    infer_shapes(graph, tk.registry)
    changed = run_passes(graph, PassContext(tk.registry, level, {"protected": set(protected), "verify": True}))
    verify_graph(graph, tk.registry)
    return graph, changed


def ops(graph):
    return [n.op for n in graph.nodes]


def check_all_levels(model, inputs, **tol):
    for level in LEVELS:
        check_against_ort(model, inputs, optimization_level=level, **tol)


# ------------------------------------------------------------------------------------ contracts


def test_every_builtin_pass_declares_an_honest_contract():
    by_name = {p.name: p for p in builtin_passes()}
    assert set(by_name) == {"fold_constants", "remove_identity", "eliminate_transposes", "fold_batchnorm",
                            "fold_channel_affine", "fuse_activation", "merge_horizontal", "fold_pad",
                            "fuse_epilogue", "fold_preprocess", "fuse_hardswish", "fold_flatten_transpose",
                            "fold_residual_scale"}
    for name in ("fold_batchnorm", "fold_channel_affine", "fold_preprocess", "fuse_hardswish",
                 "fold_flatten_transpose", "fold_residual_scale"):
        assert by_name[name].changes_numerics and by_name[name].min_level == 3
    for name in ("fold_constants", "remove_identity", "eliminate_transposes", "fuse_activation", "merge_horizontal"):
        assert not by_name[name].changes_numerics and by_name[name].min_level == 1
    for p in by_name.values():
        assert p.doc and all(dep in by_name for dep in p.after)


def test_levels_select_passes_and_order_respects_after():
    reg = default_registry()
    assert selected_passes(reg, 0) == []
    names = {level: [p.name for p in selected_passes(reg, level)] for level in (1, 2, 3)}
    assert "fold_batchnorm" not in names[1] and "fold_batchnorm" not in names[2]
    assert "fold_batchnorm" in names[3]
    for order in names.values():
        for p in selected_passes(reg, 3):
            if p.name in order:
                assert all(order.index(d) < order.index(p.name) for d in p.after if d in order)


def _conv_bn_relu(seed=0, channels=4):
    r = rng(seed)
    init = {
        "w": r.standard_normal((channels, 3, 3, 3)).astype(F32),
        "b": r.standard_normal(channels).astype(F32),
        "gamma": r.uniform(0.5, 2, channels).astype(F32),
        "beta": r.standard_normal(channels).astype(F32),
        "mean": r.standard_normal(channels).astype(F32),
        "var": r.uniform(0.5, 2, channels).astype(F32),
    }
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["n"], epsilon=1e-3),
             helper.make_node("Relu", ["n"], ["y"])]
    x = randn(1, 3, 8, 8, seed=seed + 1)
    return make_model(nodes, {"x": x}, ["y"], init), {"x": x}


def test_level_0_runs_no_pass():
    model, _ = _conv_bn_relu()
    graph, changed = optimize(model, level=0)
    assert changed == []
    assert ops(graph) == ["Conv", "BatchNormalization", "Relu"]


# ------------------------------------------------------------------------- BN and activation


def test_conv_bn_relu_folds_to_one_conv_at_level_3():
    model, inputs = _conv_bn_relu()
    graph, changed = optimize(model, 3)
    assert ops(graph) == ["Conv"]
    assert graph.nodes[0].attrs["activation"] == {"op": "Relu"}
    assert graph.nodes[0].outputs == ["y"]
    assert changed == ["fold_batchnorm", "fuse_activation"]
    assert ops(built(model, 3)) == ["Conv"]
    check_all_levels(model, inputs)


@pytest.mark.parametrize("level", [1, 2])
def test_bn_stays_below_level_3(level):
    model, _ = _conv_bn_relu()
    graph, _ = optimize(model, level)
    assert ops(graph) == ["Conv", "BatchNormalization", "Relu"]


def test_conv_without_bias_gets_one():
    model, inputs = _conv_bn_relu(seed=3)
    model.graph.node[0].input.pop()  # Conv(x, w) without b
    graph, _ = optimize(model, 3)
    assert ops(graph) == ["Conv"] and len(graph.nodes[0].inputs) == 3
    check_all_levels(model, inputs)


def test_shared_weights_are_not_mutated():
    """Two convs share one weight; folding BN into one must leave the other's weight alone."""
    model, inputs = _conv_bn_relu(seed=4)
    model.graph.node.append(helper.make_node("Conv", ["x", "w", "b"], ["c2"], pads=[1, 1, 1, 1]))
    model.graph.node.append(helper.make_node("Add", ["y", "c2"], ["z"]))
    model.graph.output[0].name = "z"
    graph, _ = optimize(model, 3)
    assert ops(graph).count("Conv") == 2 and "BatchNormalization" not in ops(graph)
    check_all_levels(model, inputs)


def test_standalone_and_shared_bn_become_mul_add():
    r = rng(5)
    init = {k: r.uniform(0.5, 2, 3).astype(F32) for k in ("gamma", "beta", "mean", "var")}
    init["w"] = r.standard_normal((3, 3, 1, 1)).astype(F32)
    nodes = [helper.make_node("BatchNormalization", ["x", "gamma", "beta", "mean", "var"], ["n0"]),
             helper.make_node("Conv", ["n0", "w"], ["c"]),
             helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["n1"]),
             helper.make_node("Add", ["c", "n1"], ["y"])]  # c has two readers: no folding into the conv
    x = randn(1, 3, 5, 5, seed=6)
    model = make_model(nodes, {"x": x}, ["y"], init)
    graph, _ = optimize(model, 3)
    assert "BatchNormalization" not in ops(graph)
    assert ops(graph).count("Mul") == 2 and ops(graph).count("Add") == 3
    check_all_levels(model, {"x": x})


def _conv_then(op_nodes, extra_init=None, seed=7):
    init = {"w": randn(4, 3, 3, 3, seed=seed), "b": randn(4, seed=seed + 1), **(extra_init or {})}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), *op_nodes]
    x = randn(1, 3, 6, 6, seed=seed + 2) * 3
    return make_model(nodes, {"x": x}, ["y"], init), {"x": x}


ACTIVATIONS = {
    "relu": ([helper.make_node("Relu", ["c"], ["y"])], {}, {"op": "Relu"}),
    "relu6": ([helper.make_node("Clip", ["c", "lo", "hi"], ["y"])],
              {"lo": np.array(0, F32), "hi": np.array(6, F32)}, {"op": "Clip", "min": 0.0, "max": 6.0}),
    "clip_min_only": ([helper.make_node("Clip", ["c", "lo"], ["y"])], {"lo": np.array(-0.5, F32)},
                      {"op": "Clip", "min": -0.5, "max": None}),
    "clip_max_only": ([helper.make_node("Clip", ["c", "", "hi"], ["y"])], {"hi": np.array(1.25, F32)},
                      {"op": "Clip", "min": None, "max": 1.25}),
    "leaky": ([helper.make_node("LeakyRelu", ["c"], ["y"], alpha=0.1)], {},
              {"op": "LeakyRelu", "alpha": pytest.approx(0.1)}),
}


@pytest.mark.parametrize("case", sorted(ACTIVATIONS))
def test_activation_fuses_into_conv_exactly(case):
    nodes, init, expected = ACTIVATIONS[case]
    model, inputs = _conv_then(nodes, init)
    graph, changed = optimize(model, 1)
    assert ops(graph) == ["Conv"] and changed == ["fuse_activation"]
    assert graph.nodes[0].attrs["activation"] == expected
    check_all_levels(model, inputs)
    # exact in float: the fused conv gives bit-identical results to the unfused pair
    path = save_model(model)
    results = []
    for level in (0, 1):
        tk = Toolkit()
        tk.config(optimization_level=level)
        tk.load("load_onnx", model=path)
        tk.build(do_quantization=False)
        tk.init_runtime()
        results.append(tk.inference([inputs["x"]], data_type="float32", data_format="nchw")[0])
    np.testing.assert_array_equal(results[0], results[1])


def test_activation_not_fused_when_conv_output_is_shared_or_bound_is_dynamic():
    shared = [helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Add", ["r", "c"], ["y"])]
    model, inputs = _conv_then(shared)
    graph, _ = optimize(model, 3)
    assert ops(graph) == ["Conv", "Relu", "Add"]
    check_all_levels(model, inputs)
    lo = np.array([0.5], F32)  # a bound computed at run time (a scalar input crashes prepare_inputs)
    dynamic = make_model([helper.make_node("Conv", ["x", "w"], ["c"]),
                          helper.make_node("Squeeze", ["l", "axes"], ["lo"]),
                          helper.make_node("Clip", ["c", "lo"], ["y"])],
                         {"x": randn(1, 3, 4, 4), "l": lo}, ["y"], {"w": randn(2, 3, 1, 1),
                                                                   "axes": np.array([0], np.int64)})
    graph, _ = optimize(dynamic, 3)
    assert ops(graph) == ["Conv", "Squeeze", "Clip"]
    check_all_levels(dynamic, {"x": randn(1, 3, 4, 4), "l": lo})


# ----------------------------------------------------------------------------- fold_constants


def _flatten_chain():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Shape", ["r"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["r", "shape"], ["y"]),
    ]
    init = {"zero": np.array(0, np.int64), "axes": np.array([0], np.int64), "minus1": np.array([-1], np.int64)}
    x = randn(1, 3, 4, 5)
    return make_model(nodes, {"x": x}, ["y"], init), {"x": x}


def test_shape_chain_folds_to_a_constant_reshape():
    model, inputs = _flatten_chain()
    graph, changed = optimize(model, 1)
    assert ops(graph) == ["Relu", "Reshape"]
    assert "fold_constants" in changed
    shape = graph.tensors[graph.nodes[1].inputs[1]]
    assert shape.is_const and shape.data.tolist() == [1, -1]
    assert ops(built(model, 0)) == ["Relu", "Shape", "Gather", "Unsqueeze", "Concat", "Reshape"]
    check_all_levels(model, inputs)


def test_constant_arithmetic_folds_and_large_expansions_do_not():
    big = [1, 64, 64, 64]  # 1 MiB of float32 from a 4-byte scalar: folding would bloat the model
    nodes = [helper.make_node("Mul", ["a", "two"], ["a2"]),
             helper.make_node("Add", ["x", "a2"], ["t"]),
             helper.make_node("Expand", ["one", "big"], ["e"]),
             helper.make_node("Mul", ["t", "e"], ["y"])]
    init = {"a": randn(1, 64, 1, 1), "two": np.array(2, F32), "one": np.array(1, F32),
            "big": np.array(big, np.int64)}
    x = randn(1, 64, 64, 64, seed=2)
    model = make_model(nodes, {"x": x}, ["y"], init)
    graph, _ = optimize(model, 1)
    assert sorted(ops(graph)) == ["Add", "Expand", "Mul"]
    check_all_levels(model, {"x": x})


def test_graph_output_that_is_computable_still_comes_from_a_node():
    model = make_model([helper.make_node("Shape", ["x"], ["y"])], {"x": randn(2, 3)}, ["y"])
    graph, _ = optimize(model, 3)
    assert ops(graph) == ["Shape"]
    check_all_levels(model, {"x": randn(2, 3)})


# ---------------------------------------------------------------------------- remove_identity


def test_identity_and_dropout_chains_disappear():
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Identity", ["r"], ["i1"]),
             helper.make_node("Dropout", ["i1"], ["d"]),
             helper.make_node("Identity", ["d"], ["i2"]),
             helper.make_node("Sigmoid", ["i2"], ["s"]),
             helper.make_node("Identity", ["s"], ["y"])]
    x = randn(1, 3, 4, 4)
    model = make_model(nodes, {"x": x}, ["y"])
    graph, _ = optimize(model, 1)
    assert ops(graph) == ["Relu", "Sigmoid"]
    assert graph.outputs == ["y"] and graph.nodes[-1].outputs == ["y"]
    check_all_levels(model, {"x": x})


def test_identity_kept_where_removing_it_would_lose_an_output():
    nodes = [helper.make_node("Identity", ["x"], ["y0"]),  # input straight to output
             helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Identity", ["r"], ["y1"]),  # r is also an output
             helper.make_node("Identity", ["r"], ["y2"])]
    x = randn(2, 3)
    model = make_model(nodes, {"x": x}, ["y0", "r", "y1", "y2"])
    graph, _ = optimize(model, 3)
    assert ops(graph).count("Identity") == 3
    check_all_levels(model, {"x": x})


# ------------------------------------------------------------------------ eliminate_transposes


def _transposes(perms, extra=(), outputs=("y",), shape=(1, 2, 3, 4)):
    nodes, cur = [], "x"
    for i, perm in enumerate(perms):
        out = f"t{i}" if i < len(perms) - 1 or extra else "y"
        nodes.append(helper.make_node("Transpose", [cur], [out], perm=list(perm)))
        cur = out
    nodes.extend(extra)
    x = randn(*shape)
    return make_model(nodes, {"x": x}, list(outputs)), {"x": x}


def test_inverse_transposes_vanish():
    model, inputs = _transposes([(0, 2, 3, 1), (0, 3, 1, 2)], [helper.make_node("Relu", ["t1"], ["y"])])
    graph, _ = optimize(model, 1)
    assert ops(graph) == ["Relu"]
    check_all_levels(model, inputs)


def test_transpose_chain_collapses_to_one():
    model, inputs = _transposes([(0, 2, 3, 1), (3, 1, 2, 0), (1, 0, 3, 2)])
    graph, _ = optimize(model, 1)
    assert ops(graph) == ["Transpose"]
    check_all_levels(model, inputs)


def test_inverse_transposes_between_input_and_output_stay_correct():
    model, inputs = _transposes([(0, 2, 3, 1), (0, 3, 1, 2)])
    graph, _ = optimize(model, 1)
    assert len(graph.nodes) == 1  # an identity Transpose: a graph input cannot be renamed to an output
    check_all_levels(model, inputs)


def test_shared_transpose_keeps_its_other_reader():
    extra = [helper.make_node("Transpose", ["t0"], ["u"], perm=[0, 3, 1, 2]),
             helper.make_node("Relu", ["t0"], ["v"]),
             helper.make_node("Relu", ["u"], ["y"])]
    model, inputs = _transposes([(0, 2, 3, 1)], extra, outputs=("y", "v"))
    graph, _ = optimize(model, 1)
    assert ops(graph) == ["Transpose", "Relu", "Relu"]
    check_all_levels(model, inputs)


def test_reshape_pairs_collapse():
    nodes = [helper.make_node("Reshape", ["x", "s1"], ["a"]),
             helper.make_node("Reshape", ["a", "s2"], ["b"]),
             helper.make_node("Reshape", ["b", "s3"], ["y"])]
    init = {"s1": np.array([0, -1], np.int64), "s2": np.array([0, 3, -1], np.int64),
            "s3": np.array([-1, 0], np.int64)}
    x = randn(2, 3, 4)
    model = make_model(nodes, {"x": x}, ["y"], init)
    graph, _ = optimize(model, 1)
    assert ops(graph) == ["Reshape"] and graph.nodes[0].inputs[0] == "x"
    assert graph.tensors[graph.nodes[0].inputs[1]].data.tolist() == [8, 3]
    check_all_levels(model, {"x": x})
    identity = make_model(nodes[:2], {"x": x}, ["b"], {k: init[k] for k in ("s1", "s2")})
    identity.graph.node.append(helper.make_node("Relu", ["b"], ["y"]))
    identity.graph.output[0].name = "y"
    graph, _ = optimize(identity, 1)
    assert ops(graph) == ["Relu"]  # (2,3,4) -> (2,12) -> (2,3,4) does nothing
    check_all_levels(model, {"x": x})


# -------------------------------------------------------------------------- protected tensors


def _preprocessed_model():
    r = rng(9)
    init = {"w": r.standard_normal((4, 3, 3, 3)).astype(F32), "b": r.standard_normal(4).astype(F32),
            "gamma": r.uniform(0.5, 2, 4).astype(F32), "beta": r.standard_normal(4).astype(F32),
            "mean": r.standard_normal(4).astype(F32), "var": r.uniform(0.5, 2, 4).astype(F32)}
    nodes = [helper.make_node("Identity", ["x"], ["xi"]),
             helper.make_node("Conv", ["xi", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["n"]),
             helper.make_node("Relu", ["n"], ["y"])]
    return make_model(nodes, {"x": np.zeros((1, 3, 6, 6), F32)}, ["y"], init)


@pytest.mark.parametrize("level", LEVELS)
def test_pass_through_feeds_the_protected_preprocessed_tensor(level, tmp_path):
    path = save_model(_preprocessed_model(), str(tmp_path))
    tk = Toolkit()
    tk.config(optimization_level=level, channel_mean_value="1 2 3 4")
    tk.load("load_onnx", model=path)
    model = tk.build(do_quantization=False)
    pre = model.preprocessed["x"]
    folded = model.graph.metadata.get("folded_preprocess", {})  # level 3: into the conv (fold_preprocess)
    assert (pre in folded) == (level == 3)
    assert pre in folded or (pre in model.graph.tensors and any(pre in n.inputs for n in model.graph.nodes))
    tk.init_runtime()
    raw = rng(10).uniform(0, 255, (1, 3, 6, 6)).astype(F32)
    done = (raw - np.array([1, 2, 3], F32).reshape(1, 3, 1, 1)) / F32(4)
    plain = tk.inference([raw], data_type="float32", data_format="nchw")[0]
    through = tk.inference([done], data_type="float32", data_format="nchw", inputs_pass_through=[1])[0]
    np.testing.assert_allclose(through, plain, rtol=1e-5, atol=1e-4)


def _graph(nodes, inputs, outputs, consts=None):
    g = Graph("g", nodes, {}, list(inputs), list(outputs))
    for name, shape in inputs.items():
        g.add_tensor(Tensor(name, shape))
    for name, data in (consts or {}).items():
        g.add_tensor(Tensor(name, data.shape, str(data.dtype), data))
    for n in nodes:
        for o in n.outputs:
            g.tensors.setdefault(o, Tensor(o))
    infer_shapes(g, default_registry())
    return g


def test_passes_leave_protected_tensors_in_place():
    nodes = [Node("t0", "Transpose", ["x"], ["p"], {"perm": [1, 0]}),
             Node("t1", "Transpose", ["p"], ["q"], {"perm": [1, 0]}),
             Node("id", "Identity", ["q"], ["p2"]),
             Node("r", "Relu", ["p2"], ["y"])]
    g = _graph(nodes, {"x": (2, 3)}, ["y"])
    run_passes(g, PassContext(default_registry(), 3, {"protected": {"p", "p2"}, "verify": True}))
    assert {"p", "p2"} <= set(g.tensors) and ops(g) == ["Transpose", "Transpose", "Identity", "Relu"]
    g = _graph(nodes, {"x": (2, 3)}, ["y"])
    run_passes(g, PassContext(default_registry(), 3, {"verify": True}))
    assert ops(g) == ["Relu"]


# ------------------------------------------------------------------------------- verify_graph


def test_verify_accepts_built_graphs():
    model, _ = _conv_bn_relu()
    for level in LEVELS:
        verify_graph(built(model, level), default_registry())


def _ok_graph():
    consts = {"k": np.ones((2, 3), F32)}
    nodes = [Node("add", "Add", ["x", "k"], ["a"]), Node("relu", "Relu", ["a"], ["y"])]
    return _graph(nodes, {"x": (2, 3)}, ["y"], consts)


BREAKAGES = {
    "undefined input": (lambda g: g.nodes[1].inputs.__setitem__(0, "nope"), "relu"),
    "dangling name": (lambda g: (g.tensors.pop("a"), g.nodes[1].inputs.__setitem__(0, "ghost"),
                                 g.add_tensor(Tensor("ghost", (2, 3)))), "add"),
    "order": (lambda g: g.nodes.reverse(), "relu"),
    "two producers": (lambda g: g.nodes.append(Node("again", "Relu", ["x"], ["a"])), "again"),
    "unproduced output": (lambda g: g.outputs.append("k"), "'k'"),
    "unregistered op": (lambda g: setattr(g.nodes[1], "op", "NoSuchOp"), "relu"),
    "stale shape": (lambda g: setattr(g.tensors["a"], "shape", (3, 2)), "add"),
    "writes an input": (lambda g: g.nodes[1].outputs.__setitem__(0, "x"), "relu"),
}


@pytest.mark.parametrize("case", sorted(BREAKAGES))
def test_verify_rejects_broken_graphs(case):
    g = _ok_graph()
    verify_graph(g, default_registry())
    breakage, named = BREAKAGES[case]
    breakage(g)
    with pytest.raises(RknnError, match=named):
        verify_graph(g, default_registry())


def test_the_verifier_names_a_pass_that_breaks_the_graph():
    from rknn_core.records import PassSpec

    def drop_first_node(graph, ctx):
        graph.nodes.pop(0)
        graph.outputs.append(graph.nodes[0].inputs[0])  # now produced by nobody
        return True

    registry = default_registry().copy()
    registry.add("passes", PassSpec("breaker", drop_first_node, min_level=1), "test")
    g = _ok_graph()
    with pytest.raises(RknnError, match="breaker"):
        run_passes(g, PassContext(registry, 1, {"verify": True}))


def _conv_mul_add(rng, mul_shape, add_shape):
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    inits = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
             "s": (rng.random(mul_shape) + 0.5).astype(np.float32),
             "t": rng.standard_normal(add_shape).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["c", "s"], ["m"]), helper.make_node("Add", ["t", "m"], ["a"]),
             helper.make_node("Relu", ["a"], ["y"])]
    return make_model(nodes, {"x": x}, ["y"], inits), {"x": x}


def test_per_channel_mul_add_fold_into_the_conv_at_level_3():
    model, inputs = _conv_mul_add(np.random.default_rng(5), (1, 4, 1, 1), (4, 1, 1))
    assert [n.op for n in built(model, 3).nodes] == ["Conv"]
    assert [n.op for n in built(model, 2).nodes] == ["Conv", "Mul", "Add", "Relu"]
    for level in (2, 3):
        check_against_ort(model, inputs, optimization_level=level)


@pytest.mark.parametrize("group", [1, 2])
def test_bias_and_batchnorm_after_a_transposed_conv_fold_into_it_at_level_3(group):
    """PP-OCR's detection head: ConvTranspose -> Add(bias) -> Mul -> Add (batch normalization) -> Relu; one group
    folds (the weights' output channels are axis 1), two groups stay."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    inits = {"w": rng.standard_normal((4, 6 // group, 2, 2)).astype(np.float32),
             "b": rng.standard_normal((1, 6, 1, 1)).astype(np.float32),
             "s": (rng.random((1, 6, 1, 1)) + 0.5).astype(np.float32),
             "t": rng.standard_normal((1, 6, 1, 1)).astype(np.float32)}
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["c"], strides=[2, 2], group=group),
             helper.make_node("Add", ["c", "b"], ["a1"]), helper.make_node("Mul", ["a1", "s"], ["m"]),
             helper.make_node("Add", ["m", "t"], ["a2"]), helper.make_node("Relu", ["a2"], ["y"])]
    model, inputs = make_model(nodes, {"x": x}, ["y"], inits), {"x": x}
    folded = ["ConvTranspose", "Relu"] if group == 1 else ["ConvTranspose", "Add", "Mul", "Add", "Relu"]
    assert [n.op for n in built(model, 3).nodes] == folded
    check_against_ort(model, inputs, optimization_level=3)


@pytest.mark.parametrize("perm", [[0, 2, 3, 1], [0, 3, 2, 1], [1, 0, 2, 3]])
def test_a_transpose_only_flattened_into_a_matmul_folds_into_its_rows_at_level_3(perm):
    """Keras' NHWC flatten before a dense layer (MTCNN R-Net's head): the Transpose disappears into the weights'
    row order; a Transpose that moves the batch axis stays."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    transposed = [x.shape[p] for p in perm]
    inits = {"w": rng.standard_normal((int(np.prod(transposed[1:])), 7)).astype(np.float32)}
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=perm), helper.make_node("Flatten", ["t"], ["f"]),
             helper.make_node("MatMul", ["f", "w"], ["y"])]
    model, inputs = make_model(nodes, {"x": x}, ["y"], inits), {"x": x}
    want = ["Flatten", "MatMul"] if perm[0] == 0 else ["Transpose", "Flatten", "MatMul"]
    assert [n.op for n in built(model, 3).nodes] == want
    assert [n.op for n in built(model, 2).nodes] == ["Transpose", "Flatten", "MatMul"]
    check_against_ort(model, inputs, optimization_level=3)


@pytest.mark.parametrize("add_first", [False, True])
def test_a_residual_scale_becomes_one_mul_at_level_3(add_first):
    """PP-OCR det's residual squeeze-excite: x + x * s, s from GlobalAveragePool -> Conv -> HardSigmoid, becomes
    x * (s + 1) (the + 1 fused into the gate's conv as a post op); a gate as large as x stays an Add."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 8, 6, 6)).astype(np.float32)
    inits = {"w": rng.standard_normal((8, 8, 1, 1)).astype(np.float32) * 0.3,
             "v": rng.standard_normal((8, 8, 3, 3)).astype(np.float32) * 0.2}
    nodes = [helper.make_node("Conv", ["x", "v"], ["f"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["f"], ["g"]), helper.make_node("Conv", ["g", "w"], ["c"]),
             helper.make_node("HardSigmoid", ["c"], ["s"], alpha=0.2, beta=0.5),
             helper.make_node("Mul", ["f", "s"], ["m"]),
             helper.make_node("Add", ["m", "f"] if add_first else ["f", "m"], ["y"])]
    model, inputs = make_model(nodes, {"x": x}, ["y"], inits, opset=13), {"x": x}
    ops = [n.op for n in built(model, 3).nodes]
    assert ops == ["Conv", "GlobalAveragePool", "Conv", "Mul"]
    assert "Add" in [n.op for n in built(model, 2).nodes]
    check_against_ort(model, inputs, optimization_level=3)


def test_spatially_varying_mul_is_not_folded():
    model, inputs = _conv_mul_add(np.random.default_rng(6), (1, 4, 8, 8), (4, 1, 1))
    assert [n.op for n in built(model, 3).nodes] == ["Conv", "Mul", "Add", "Relu"]
    check_against_ort(model, inputs)
