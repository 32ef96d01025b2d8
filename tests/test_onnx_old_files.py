"""Old and odd ONNX files: opsets 1-8 (upgraded with onnx's version converter), Dropout with its mask,
initializers listed as graph inputs, unused initializers, and model-zoo-like graphs of the opset-9 era
(AlexNet, SqueezeNet, Inception-v1: Dropout with mask, LRN) at reduced sizes, compared with onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from onnx_util import check_against_ort, run_ort, run_rknn, save_model

from rknn.api import RKNN

RNG_SEED = 7


def _const(name: str, shape: tuple[int, ...], rng: np.random.Generator, low: float = -0.5, high: float = 0.5):
    return numpy_helper.from_array(rng.uniform(low, high, shape).astype(np.float32), name)


def _weights(rng: np.random.Generator) -> list:
    return [_const("conv_w", (4, 3, 3, 3), rng), _const("conv_b", (4,), rng),
            _const("bn_scale", (4,), rng, 0.5, 1.5), _const("bn_bias", (4,), rng),
            _const("bn_mean", (4,), rng), _const("bn_var", (4,), rng, 0.5, 1.5),
            _const("shift", (4,), rng), _const("fc_w", (5, 64), rng), _const("fc_b", (5,), rng),
            _const("unused_w", (3, 3), rng)]  # an unused initializer, as old exporters left them


def _classifier(opset: int, rng: np.random.Generator) -> tuple:
    """Conv -> BatchNormalization -> Add(per-channel shift) -> Relu -> MaxPool -> LRN -> Flatten -> Gemm ->
    Dropout -> Softmax written with the attributes of ``opset``; IR version 3 for opsets 1-8."""
    old = opset < 7  # before opset 7: broadcast/axis attributes, is_test, consumed_inputs
    bn = ({"consumed_inputs": [0, 0, 0, 1, 1]} if opset < 6 else {}) | ({"is_test": 1} if old else {})
    shift = "shift" if old else "shift_c11"
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["conv", "bn_scale", "bn_bias", "bn_mean", "bn_var"], ["bn"],
                         epsilon=1e-5, **({"spatial": 1} if opset < 9 else {}), **bn),
        helper.make_node("Add", ["bn", shift], ["shifted"], **({"broadcast": 1, "axis": 1} if old else {})),
        helper.make_node("Relu", ["shifted"], ["relu"]),
        helper.make_node("MaxPool", ["relu"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("LRN", ["pool"], ["lrn"], size=3, alpha=1e-3, beta=0.75, bias=1.0),
        helper.make_node("Flatten", ["lrn"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["fc"], transB=1, **({"broadcast": 1} if old else {})),
        helper.make_node("Dropout", ["fc"], ["drop"] if old else ["drop", "mask"], ratio=0.4,
                         **({"is_test": 1} if old else {})),
        helper.make_node("Softmax", ["drop"], ["prob"], axis=1),
    ]
    inits = _weights(rng)
    if not old:
        shift_init = next(i for i in inits if i.name == "shift")
        inits.append(numpy_helper.from_array(numpy_helper.to_array(shift_init).reshape(4, 1, 1), "shift_c11"))
    outputs = [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 5])]
    if not old:
        outputs.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 5]))  # bool from opset 10
    # IR 3: every initializer is listed among the graph inputs too
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])]
    inputs += [helper.make_tensor_value_info(i.name, TensorProto.FLOAT, list(i.dims)) for i in inits]
    graph = helper.make_graph(nodes, f"classifier_opset{opset}", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=3)


def _modern_classifier(rng: np.random.Generator):
    """The same network at opset 13 (no legacy attributes): onnxruntime's reference for every opset."""
    model = _classifier(9, rng)
    model.graph.output.pop()  # the mask
    dropout = model.graph.node[8]
    dropout.output.pop()
    del dropout.attribute[:]  # ratio became an input in opset 12
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("", 13))
    model.ir_version = 7
    return model


def _reference_mask(opset: int, shape: tuple[int, ...]) -> np.ndarray:
    """The Dropout mask onnx's reference evaluator gives at inference for ``opset``."""
    graph = helper.make_graph([helper.make_node("Dropout", ["x"], ["y", "mask"], ratio=0.4)], "dropout",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(shape)) for n in ("y", "mask")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=3)
    return ReferenceEvaluator(model).run(None, {"x": np.ones(shape, np.float32)})[1]


@pytest.mark.parametrize("opset", range(1, 9))
def test_old_opsets_upgrade_and_match_onnxruntime(opset, tmp_path):
    x = np.random.default_rng(opset).uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)
    (tmp_path / "old").mkdir(), (tmp_path / "modern").mkdir()
    old = save_model(_classifier(opset, np.random.default_rng(RNG_SEED)), str(tmp_path / "old"))
    modern = save_model(_modern_classifier(np.random.default_rng(RNG_SEED)), str(tmp_path / "modern"))
    ours = run_rknn(old, {"x": x})
    ref = run_ort(modern, {"x": x})[0]
    np.testing.assert_allclose(ours[0], ref, rtol=1e-4, atol=1e-6)
    assert ref.std() > 0.01  # the classes differ: a wrong weight or layout would show
    if opset >= 7:  # onnxruntime runs opsets 7 and 8 itself, and the mask output exists there
        np.testing.assert_allclose(ours[0], run_ort(old, {"x": x})[0], rtol=1e-4, atol=1e-6)
        # the mask keeps everything, as onnx's reference says (onnxruntime gives zeros for a float mask)
        reference = _reference_mask(opset, ours[0].shape)
        assert ours[1].dtype == np.float32 and reference.all()
        np.testing.assert_array_equal(ours[1], reference.astype(np.float32))


def test_converter_failure_names_the_node(tmp_path, capsys):
    """Upsample at opset 6 still had width_scale/height_scale: a 'scales' attribute cannot be upgraded."""
    node = helper.make_node("Upsample", ["x"], ["y"], name="up", scales=[1.0, 1.0, 2.0, 2.0])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["x1"], name="first"), node], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    graph.node[1].input[0] = "x1"
    path = save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 6)], ir_version=3), str(tmp_path))
    rknn = RKNN()
    assert rknn.load_onnx(model=path) == -1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = next(line for line in err.splitlines() if line.startswith("E "))
    assert "opset 6" in line and "node 'up' (Upsample)" in line and "version converter" in line, line


def _zoo_model(name: str, nodes: list, inits: list, shape: tuple[int, ...], classes: int):
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("data_0", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("prob_1", TensorProto.FLOAT, [1, classes])], inits)
    for init in inits:  # zoo files of that era list every initializer as a graph input too
        graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], ir_version=4)


def _conv(name: str, src: str, cin: int, cout: int, k: int, rng, stride: int = 1, pad: int = 0) -> tuple:
    w, b = _const(f"{name}_w_0", (cout, cin, k, k), rng), _const(f"{name}_b_0", (cout,), rng, -0.1, 0.1)
    nodes = [helper.make_node("Conv", [src, w.name, b.name], [f"{name}_1"], kernel_shape=[k, k],
                              strides=[stride, stride], pads=[pad] * 4),
             helper.make_node("Relu", [f"{name}_1"], [f"{name}_2"])]
    return nodes, [w, b], f"{name}_2"


def _head(src: str, features: int, classes: int, rng) -> tuple:
    """Dropout with its (unused) mask, Reshape, Gemm, Softmax: the zoo classifiers' tail."""
    w, b = _const("fc_w_0", (classes, features), rng, -0.2, 0.2), _const("fc_b_0", (classes,), rng)
    shape = numpy_helper.from_array(np.array([1, features], np.int64), "flat_shape")
    nodes = [helper.make_node("Dropout", [src], ["drop_1", "drop_mask_1"], ratio=0.5),
             helper.make_node("Reshape", ["drop_1", "flat_shape"], ["flat_1"]),
             helper.make_node("Gemm", ["flat_1", w.name, b.name], ["fc_1"], transB=1),
             helper.make_node("Softmax", ["fc_1"], ["prob_1"])]
    return nodes, [w, b, shape]


def alexnet_like(rng):
    n1, i1, t = _conv("conv1", "data_0", 3, 8, 5, rng, stride=2)
    n2, i2, t2 = _conv("conv2", "pool1_1", 8, 12, 3, rng, pad=1)
    n3, i3, t3 = _conv("conv3", "pool2_1", 12, 12, 3, rng, pad=1)
    nodes = [*n1, helper.make_node("LRN", [t], ["norm1_1"], size=5, alpha=1e-4, beta=0.75, bias=1.0),
             helper.make_node("MaxPool", ["norm1_1"], ["pool1_1"], kernel_shape=[3, 3], strides=[2, 2]),
             *n2, helper.make_node("LRN", [t2], ["norm2_1"], size=5, alpha=1e-4, beta=0.75, bias=1.0),
             helper.make_node("MaxPool", ["norm2_1"], ["pool2_1"], kernel_shape=[3, 3], strides=[2, 2]), *n3]
    head, ih = _head(t3, 12 * 2 * 2, 10, rng)
    return _zoo_model("alexnet_like", nodes + head, i1 + i2 + i3 + ih, (1, 3, 31, 31), 10)


def squeezenet_like(rng):
    n1, i1, t = _conv("conv1", "data_0", 3, 8, 3, rng, stride=2)
    nodes, inits = [*n1, helper.make_node("MaxPool", [t], ["pool1_1"], kernel_shape=[3, 3], strides=[2, 2])], i1
    src, channels = "pool1_1", 8
    for fire in (2, 3):
        ns, is_, squeeze = _conv(f"fire{fire}_squeeze", src, channels, 4, 1, rng)
        ne1, ie1, e1 = _conv(f"fire{fire}_expand1", squeeze, 4, 6, 1, rng)
        ne3, ie3, e3 = _conv(f"fire{fire}_expand3", squeeze, 4, 6, 3, rng, pad=1)
        nodes += [*ns, *ne1, *ne3, helper.make_node("Concat", [e1, e3], [f"fire{fire}_concat_1"], axis=1)]
        inits += is_ + ie1 + ie3
        src, channels = f"fire{fire}_concat_1", 12
    nc, ic, tc = _conv("conv10", "drop_1", channels, 10, 1, rng)
    nodes += [helper.make_node("Dropout", [src], ["drop_1", "drop_mask_1"], ratio=0.5), *nc,
              helper.make_node("GlobalAveragePool", [tc], ["pool10_1"]),
              helper.make_node("Flatten", ["pool10_1"], ["flat_1"]),
              helper.make_node("Softmax", ["flat_1"], ["prob_1"])]
    return _zoo_model("squeezenet_like", nodes, inits + ic, (1, 3, 33, 33), 10)


def inception_v1_like(rng):
    n1, i1, t = _conv("conv1", "data_0", 3, 8, 7, rng, stride=2, pad=3)
    nodes = [*n1, helper.make_node("MaxPool", [t], ["pool1_1"], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1]),
             helper.make_node("LRN", ["pool1_1"], ["norm1_1"], size=5, alpha=1e-4, beta=0.75, bias=1.0)]
    inits = i1
    b1, ib1, t1 = _conv("inc_1x1", "norm1_1", 8, 4, 1, rng)
    r3, ir3, tr3 = _conv("inc_3x3_reduce", "norm1_1", 8, 4, 1, rng)
    b3, ib3, t3 = _conv("inc_3x3", tr3, 4, 6, 3, rng, pad=1)
    r5, ir5, tr5 = _conv("inc_5x5_reduce", "norm1_1", 8, 2, 1, rng)
    b5, ib5, t5 = _conv("inc_5x5", tr5, 2, 4, 5, rng, pad=2)
    bp, ibp, tp = _conv("inc_pool_proj", "inc_pool_1", 8, 4, 1, rng)
    nodes += [*b1, *r3, *b3, *r5, *b5,
              helper.make_node("MaxPool", ["norm1_1"], ["inc_pool_1"], kernel_shape=[3, 3], strides=[1, 1], pads=[1] * 4),
              *bp, helper.make_node("Concat", [t1, t3, t5, tp], ["inc_output_1"], axis=1),
              helper.make_node("AveragePool", ["inc_output_1"], ["pool5_1"], kernel_shape=[4, 4], strides=[1, 1])]
    inits += ib1 + ir3 + ib3 + ir5 + ib5 + ibp
    head, ih = _head("pool5_1", 18, 10, rng)
    return _zoo_model("inception_v1_like", nodes + head, inits + ih, (1, 3, 16, 16), 10)


@pytest.mark.parametrize("build", [alexnet_like, squeezenet_like, inception_v1_like], ids=lambda f: f.__name__)
def test_zoo_like_graphs_match_onnxruntime(build):
    rng = np.random.default_rng(RNG_SEED)
    model = build(rng)
    shape = tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim)
    x = rng.uniform(0, 1, shape).astype(np.float32)
    ours = check_against_ort(model, {"data_0": x})
    assert ours[0].shape == (1, 10) and abs(float(ours[0].sum()) - 1.0) < 1e-5 and ours[0].std() > 1e-4
