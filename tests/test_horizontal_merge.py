"""config(need_horizontal_merge=True): parallel convolutions of one tensor become one Conv + Split; the
graph shrinks, float outputs stay those of onnxruntime, quantized outputs stay within a few LSB."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from rknn_core import fileformat
from rknn_core.plugins import default_registry
from rknn_core.shape_inference import infer_shapes
from rknn_core.testing import assert_close, make_model, run_ort, save_model, vendor_flow

# on a calibration sample, u8 outputs of the merged and the unmerged build stay within a few output
# steps (of the output's range / 255) of the float result (both measured under 3)
QUANT_LSB = 4


def inception_block() -> object:
    """An Inception-v1 block: three 1x1 convs of one input (with Relu), two 3x3 convs (another geometry,
    no activation), a pool branch; a 1x1 conv after the concat."""
    rng = np.random.default_rng(3)
    w = lambda *s: (rng.standard_normal(s) * 0.4).astype(np.float32)  # noqa: E731
    nodes = [
        helper.make_node("Conv", ["x", "w_a", "b_a"], ["a"]),
        helper.make_node("Relu", ["a"], ["ra"]),
        helper.make_node("Conv", ["x", "w_b", "b_b"], ["b"]),
        helper.make_node("Relu", ["b"], ["rb"]),
        helper.make_node("Conv", ["x", "w_c"], ["c"]),
        helper.make_node("Relu", ["c"], ["rc"]),
        helper.make_node("Conv", ["x", "w_d", "b_d"], ["d"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x", "w_e", "b_e"], ["e"], pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Concat", ["ra", "rb", "rc", "d", "e", "p"], ["cat"], axis=1),
        helper.make_node("Conv", ["cat", "w_f", "b_f"], ["y"]),
    ]
    inits = {"w_a": w(8, 4, 1, 1), "b_a": w(8), "w_b": w(5, 4, 1, 1), "b_b": w(5), "w_c": w(3, 4, 1, 1),
             "w_d": w(6, 4, 3, 3), "b_d": w(6), "w_e": w(2, 4, 3, 3), "b_e": w(2), "w_f": w(7, 28, 1, 1), "b_f": w(7)}
    return make_model(nodes, {"x": np.zeros((1, 4, 10, 10), np.float32)}, ["y"], inits, opset=13)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    return save_model(inception_block(), str(tmp_path_factory.mktemp("merge")))


def _inputs(seed: int) -> list[np.ndarray]:
    return [np.random.default_rng(seed).uniform(-1, 1, (1, 4, 10, 10)).astype(np.float32)]


def _build(model_path: str, folder, merge: bool, quantize: bool = False) -> tuple[list[np.ndarray], list[str]]:
    """Outputs for sample 0 (of the 4 calibration samples) and the op of every node of the exported model."""
    folder.mkdir(exist_ok=True)
    samples = [_inputs(seed) for seed in range(4)]
    outputs = vendor_flow(model_path, samples[0], quantize=quantize, dataset=samples if quantize else None,
                          tmp_dir=str(folder), config={"need_horizontal_merge": merge})
    return outputs, [node.op for node in fileformat.load(str(folder / "model.rknn")).graph.nodes]


def test_merge_changes_the_graph_not_the_float_outputs(model_path, tmp_path):
    merged, merged_ops = _build(model_path, tmp_path / "merged", merge=True)
    plain, plain_ops = _build(model_path, tmp_path / "plain", merge=False)
    # 1x1 convs a, b, c -> one Conv + Split; 3x3 convs d, e -> one Conv + Split; the last conv alone
    assert plain_ops.count("Conv") == 6 and "Split" not in plain_ops
    assert merged_ops.count("Conv") == 3 and merged_ops.count("Split") == 2
    assert len(merged_ops) == len(plain_ops) - 1
    assert_close(merged, run_ort(model_path, {"x": _inputs(0)[0]}))
    np.testing.assert_allclose(merged[0], plain[0], rtol=1e-6, atol=1e-6)


def test_merged_quantized_build_stays_within_a_few_lsb(model_path, tmp_path):
    reference = run_ort(model_path, {"x": _inputs(0)[0]})[0]
    merged, merged_ops = _build(model_path, tmp_path / "merged", merge=True, quantize=True)
    plain, _ = _build(model_path, tmp_path / "plain", merge=False, quantize=True)
    assert merged_ops.count("Split") == 2
    lsb = float(np.ptp(reference)) / 255
    assert np.abs(plain[0] - reference).max() <= QUANT_LSB * lsb
    assert np.abs(merged[0] - reference).max() <= QUANT_LSB * lsb
    assert not np.array_equal(merged[0], plain[0])  # the merged Conv's one range does change the grid


def test_pass_merges_only_same_geometry_and_activation():
    from rknn_core.passes.manager import PassContext, run_passes
    from rknn_core.passes.merge_horizontal import OPTION
    from rknn_onnx.importer import load_onnx

    registry = default_registry()
    graph = load_onnx(save_model(inception_block()))
    infer_shapes(graph, registry)
    untouched = graph.clone()
    run_passes(untouched, PassContext(registry, 3))
    assert [n.op for n in untouched.nodes].count("Split") == 0  # the flag off: nothing merged
    conv_d = graph.producers()["d"]  # d gets another kernel size, so it no longer merges with e
    conv_d.inputs[1] = graph.add_const("w_d_5x5", np.zeros((6, 4, 5, 5), np.float32))
    conv_d.attrs["pads"] = [2, 2, 2, 2]
    run_passes(graph, PassContext(registry, 0, {OPTION: True}))
    assert [n.op for n in graph.nodes].count("Split") == 0  # level 0: every optimization off, this one too
    run_passes(graph, PassContext(registry, 1, {OPTION: True}))
    splits = [n for n in graph.nodes if n.op == "Split"]
    assert [s.outputs for s in splits] == [["ra", "rb", "rc"]]  # after their fused Relu
    assert list(graph.tensors[splits[0].inputs[1]].data) == [8, 5, 3]
    merged = graph.producers()[splits[0].inputs[0]]
    assert merged.op == "Conv" and graph.tensors[merged.inputs[1]].shape == (16, 4, 1, 1)
    assert [n.op for n in graph.nodes].count("Conv") == 4
