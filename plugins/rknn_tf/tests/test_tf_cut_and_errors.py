"""Cutting at inner nodes (SSD style), predef_file, mean/std recording, and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest
from tf_graphs import graph_dir
from tf_models import assert_close, load_meta, run_rknn

from rknn.api import RKNN


def expect_error(capsys, *words: str) -> None:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = "\n".join(line for line in err.splitlines() if line.startswith("E ")).lower()
    assert lines, err
    for word in words:
        assert word.lower() in lines, (word, lines)


def test_ssd_style_cut_at_inner_nodes_matches_tensorflow():
    """The uint8 preprocessing prefix and the TopK suffix are outside the cut, as in the vendor's SSD script."""
    folder = graph_dir("ssd_like")
    _, ref = load_meta(folder)
    body_in = ref["out0"]  # TensorFlow's value at the inner input node
    boxes, scores = run_rknn(folder / "model.pb", ["body_in"], [[32, 32, 3]], ["boxes", "scores"], [body_in])
    assert_close(boxes, ref["out1"])
    assert_close(scores, ref["out2"])


def test_cut_with_one_output_and_graph_metadata():
    folder = graph_dir("ssd_like")
    rknn = RKNN()
    assert rknn.load_tensorflow(str(folder / "model.pb"), ["body_in"], [[32, 32, 3]], ["scores"],
                                mean_values=[[128]], std_values=[[128]]) == 0
    graph = rknn._tk.graph
    assert graph.inputs == ["body_in"] and graph.outputs == ["scores"]
    assert graph.tensors["body_in"].shape == (1, 32, 32, 3) and graph.tensors["body_in"].layout == "NHWC"
    assert {n.op for n in graph.nodes} <= {"Transpose", "Conv", "Clip", "Reshape"}
    assert graph.metadata["input_mean_std"] == {"body_in": {"mean": [128.0], "std": [128.0]}}


def test_predef_file_feeds_a_placeholder(tmp_path):
    folder = graph_dir("predef")
    _, ref = load_meta(folder)
    np.savez(tmp_path / "predef.npz", **{"cfg#scale": ref["in1"]})  # '/' written as '#'
    (out,) = run_rknn(folder / "model.pb", ["x"], [[8, 8, 3]], ["out"], [ref["in0"]],
                      predef_file=str(tmp_path / "predef.npz"))
    assert_close(out, ref["out0"])


def test_placeholder_without_value_is_named(capsys):
    rknn = RKNN()
    assert rknn.load_tensorflow(str(graph_dir("predef") / "model.pb"), ["x"], [[8, 8, 3]], ["out"]) == -1
    expect_error(capsys, "cfg/scale", "predef_file")


def test_unsupported_op_names_op_node_and_version(capsys):
    rknn = RKNN()
    assert rknn.load_tensorflow(str(graph_dir("unsupported") / "model.pb"), ["x"], [[8]], ["out"]) == -1
    expect_error(capsys, "Cumsum", "running_total", "rknn-tf 0.1.0")
    assert rknn._tk.graph is None  # no partial graph


@pytest.mark.parametrize("kwargs, words", [
    ({"tf_pb": "/nonexistent/model.pb"}, ["/nonexistent/model.pb", "does not exist"]),
    ({"inputs": ["nope"]}, ["input node 'nope'", "image_tensor"]),
    ({"outputs": ["missing_out"]}, ["output node 'missing_out'"]),
    ({"input_size_list": [[32, 32, 3], [1]]}, ["input_size_list", "one size per input"]),
    ({"inputs": []}, ["inputs must be a non-empty list"]),
    ({"predef_file": "/nonexistent/p.npz"}, ["predef_file", "does not exist"]),
    ({"mean_values": [1, 2]}, ["mean_values", "one entry per input"]),
])
def test_bad_arguments_fail_cleanly(capsys, kwargs, words):
    args = {"tf_pb": str(graph_dir("ssd_like") / "model.pb"), "inputs": ["body_in"], "input_size_list": [[32, 32, 3]],
            "outputs": ["boxes"], **kwargs}
    assert RKNN().load_tensorflow(**args) == -1
    expect_error(capsys, *words)


def test_file_that_is_not_a_graphdef(tmp_path, capsys):
    bad = tmp_path / "model.pb"
    bad.write_bytes(b"\x00\x01 this is not a protobuf \xff" * 10)
    assert RKNN().load_tensorflow(str(bad), ["x"], [[4]], ["y"]) == -1
    expect_error(capsys, "model.pb")


def test_uncut_ssd_graph_reports_the_unsupported_postprocessing(capsys):
    """Without the cut, the TopK suffix is named (never a partial graph)."""
    folder = graph_dir("ssd_like")
    assert RKNN().load_tensorflow(str(folder / "model.pb"), ["image_tensor"], [[40, 48, 3]], ["top"]) == -1
    expect_error(capsys, "TopKV2", "top")
