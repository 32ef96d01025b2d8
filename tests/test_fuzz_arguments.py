"""Fuzzing every public RKNN method with hypothesis: each argument is a valid value or junk (None, bools,
huge integers, NaN, strings, bytes, nested lists, dicts, arrays of the wrong rank or kind).

Every call must return the method's success value or its failure value (-1/None) with an ``E`` line,
never the facade's catch-all ("failed unexpectedly"), never raise. Calls run in a scratch working
directory (junk paths are relative names without '/', so everything written stays in it).
"""

from __future__ import annotations

import inspect
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper

from rknn.api import RKNN
from rknn_core.log import collect_errors
from rknn_core.testing import make_model, save_model, write_dataset

pytest.importorskip("rknn_onnx", reason="the ONNX frontend builds the models these calls use")

X = np.random.default_rng(0).standard_normal((1, 3, 6, 6)).astype(np.float32)
NAME_CHARS = st.characters(blacklist_characters="/\\\0", blacklist_categories=("Cs",))
ATOMS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                  st.complex_numbers(max_magnitude=1e3), st.text(NAME_CHARS, max_size=6), st.binary(max_size=6))
JUNK = st.one_of(
    ATOMS, st.lists(ATOMS, max_size=4), st.lists(st.lists(ATOMS, max_size=4), max_size=3),
    st.dictionaries(st.text(NAME_CHARS, max_size=4), ATOMS, max_size=3),
    st.sampled_from([np.zeros((2,) * 8, np.float32), np.ones(3, np.complex64), np.array(["a", "b"]), [X, X],
                     np.zeros((1, 3, 6), np.float32), [np.array([object()])], [X.astype(np.float64)], ("x",),
                     float("inf"), 10**20, "", ".", "..", [0, 1, 2], [[0, -1]], [[3, 6, 6, 1, 1, 1, 1, 1]]]))
METHODS = sorted(name for name, _ in inspect.getmembers(RKNN, inspect.isfunction)
                 if not name.startswith("_") and name != "release")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A working directory with an ONNX model, its .rknn, a dataset and a snapshot folder; the cwd meanwhile."""
    folder = tmp_path_factory.mktemp("fuzz_args")
    rng = np.random.default_rng(0)
    model = make_model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                        helper.make_node("Relu", ["c"], ["y"])], {"x": X}, ["y"],
                       {"w": rng.standard_normal((2, 3, 3, 3)).astype(np.float32)})
    onnx_path = save_model(model, str(folder))
    rknn = RKNN()
    rknn_path = str(folder / "m.rknn")
    assert rknn.load_onnx(onnx_path) == 0 and rknn.build(do_quantization=False) == 0
    assert rknn.export_rknn(rknn_path) == 0
    rknn.release()
    dataset = write_dataset([[X[0]]], str(folder))
    previous = os.getcwd()
    os.chdir(folder)
    yield {"onnx": onnx_path, "rknn": rknn_path, "dataset": dataset, "folder": str(folder)}
    os.chdir(previous)


def valid_values(method: str, param: str, files: dict) -> list:
    """Arguments that make sense for ``param`` (so that junk in one argument meets good ones elsewhere)."""
    by_method = {("inference", "inputs"): [[X]], ("eval_perf", "inputs"): [[X], None],
                 ("accuracy_analysis", "inputs"): [files["dataset"]], ("load_onnx", "inputs"): [["x"], None],
                 ("load_onnx", "outputs"): [["y"], None], ("load_tensorflow", "inputs"): [["x"]],
                 ("load_tensorflow", "outputs"): [["y"]], ("list_support_target_platform", "rknn_model"): [files["rknn"]]}
    by_name = {"model": [files["onnx"]], "path": [files["rknn"]], "input_model": [files["rknn"]],
               "export_path": ["out.rknn"], "output_model": ["sync.rknn", None], "dataset": [files["dataset"], None],
               "input_size_list": [[[3, 6, 6]], None], "do_quantization": [False, True], "pre_compile": [False],
               "rknn_batch_size": [1, 2], "target": [None, "rk1808"], "device_id": [None], "data_type": ["float32"],
               "data_format": ["nchw", "nhwc"], "inputs_pass_through": [None, [0]], "sync_uids": [[0]],
               "is_print": [False], "output_dir": ["snapshot"], "calc_qnt_error": [True, False],
               "channel_mean_value": ["0 0 0 1", None], "reorder_channel": ["2 1 0"], "optimization_level": [3, 0]}
    return by_method.get((method, param), by_name.get(param, [None]))


def arguments(method: str, files: dict):
    params = [p for p in inspect.signature(getattr(RKNN, method)).parameters.values() if p.name != "self"]
    if method == "config":  # keyword-only: a few of the vendor's names, one of them junk
        names = ["channel_mean_value", "reorder_channel", "optimization_level", "quantized_dtype", "batch_size",
                 "target_platform", "need_horizontal_merge", "no_such_option"]
        return st.dictionaries(st.sampled_from(names), st.one_of(JUNK, st.sampled_from(["0 0 0 1", "2 1 0", 3])),
                               max_size=3)
    return st.fixed_dictionaries({p.name: st.one_of(st.sampled_from(valid_values(method, p.name, files)), JUNK)
                                  for p in params})


def _session(files: dict, state: str) -> RKNN:
    rknn = RKNN()
    if state in ("loaded", "ready"):
        assert rknn.load_onnx(files["onnx"]) == 0
    if state == "ready":
        assert rknn.build(do_quantization=False) == 0 and rknn.init_runtime() == 0
    return rknn


FAILED = {"config": lambda r: False, "inference": lambda r: r is None, "eval_perf": lambda r: r is None,
          "eval_memory": lambda r: r is None, "list_support_target_platform": lambda r: r is None,
          "get_sdk_version": lambda r: r == -1, "list_devices": lambda r: False}


@pytest.mark.parametrize("method", METHODS)
def test_junk_arguments_end_in_clear_errors(method, scratch):
    sessions = {state: _session(scratch, state) for state in ("fresh", "loaded", "ready")}

    @settings(max_examples=int(os.environ.get("RKNN_FUZZ_EXAMPLES", "25")), deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(state=st.sampled_from(sorted(sessions)), kwargs=arguments(method, scratch))
    def call(state, kwargs):
        before = len(errors)
        result = getattr(sessions[state], method)(**kwargs)
        new = errors[before:]
        assert not [line for line in new if "failed unexpectedly" in line], (kwargs, new)
        if FAILED.get(method, lambda r: r != 0)(result) and method != "config":
            assert new, f"{method}(**{kwargs!r}) returned {result!r} without an E line"

    try:
        with collect_errors() as errors:
            call()
    finally:
        for rknn in sessions.values():
            rknn.release()
