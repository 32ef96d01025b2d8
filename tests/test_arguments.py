"""Validation at the door, safe export targets and load-time checks of .rknn descriptions.

Every bad argument is refused by the facade with an ``E`` line naming the argument and what it accepts;
``export_rknn`` writes only regular files (devices, FIFOs and folders refused, symbolic links written
through) and leaves no temporary file behind a killed export; ``load_rknn`` refuses an edited
description with a recomputed checksum at load, not at inference.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
from error_lines import e_lines
from fuzz_corpus import pack_rknn, split_rknn
from onnx import helper

from rknn.api import RKNN
from rknn_core import atomic
from rknn_core.testing import make_model, save_model

pytest.importorskip("rknn_onnx", reason="the ONNX frontend builds the models these tests use")

X = np.random.default_rng(0).standard_normal((1, 3, 6, 6)).astype(np.float32)


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    rng = np.random.default_rng(1)
    model = make_model([helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                        helper.make_node("Relu", ["c"], ["y"])], {"x": X}, ["y"],
                       {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "b": np.ones(4, np.float32)})
    return save_model(model, str(tmp_path_factory.mktemp("args")))


def _built(onnx_path: str) -> RKNN:
    """A session with the model built (made inside each test, so its log goes to that test's capsys)."""
    rknn = RKNN()
    assert rknn.load_onnx(onnx_path) == 0 and rknn.build(do_quantization=False) == 0
    return rknn


def _ready(onnx_path: str) -> RKNN:
    rknn = _built(onnx_path)
    assert rknn.init_runtime() == 0
    return rknn


# ---- arguments ---------------------------------------------------------------------------------------
LOAD_CALLS = [
    (lambda r, p: r.load_onnx(model=5), ["load_onnx", "model", "file path", "int 5"]),
    (lambda r, p: r.load_onnx(p, outputs="y"), ["outputs", "list of names", "['y']"]),
    (lambda r, p: r.load_onnx(p, inputs=5), ["inputs", "list of names"]),
    (lambda r, p: r.load_onnx(p, inputs=["x", "x"]), ["inputs", "twice"]),
    (lambda r, p: r.load_onnx(p, input_size_list=[[1] * 7 + [3]]), ["input_size_list", "8 dimensions", "at most 6"]),
    (lambda r, p: r.load_onnx(p, input_size_list=[[3, 6.5, 6]]), ["input_size_list", "integer sizes"]),
    (lambda r, p: r.load_onnx(p, input_size_list=[[3, 2**20 + 1, 6]]), ["input_size_list", "sizes from 1"]),
    (lambda r, p: r.load_onnx(p, input_size_list=[[3, 2**15, 2**15]]), ["input_size_list", "elements"]),
    (lambda r, p: r.load_tensorflow(p, "x", [[6, 6, 3]], ["y"]), ["load_tensorflow", "inputs", "the string 'x'"]),
    (lambda r, p: r.load_tensorflow(p, ["x"], [[6, 6, 3]], ["y"], mean_values=[[float("nan")]]),
     ["mean_values", "finite"]),
    (lambda r, p: r.load_caffe(p, proto="caffe2", blobs=p), ["load_caffe", "proto", "'lstm_caffe'"]),
    (lambda r, p: r.load_rknn(p, load_model_in_npu="no"), ["load_rknn", "load_model_in_npu", "True or False"]),
    (lambda r, p: r.register_op(b"op.py"), ["register_op", "op_path"]),
    (lambda r, p: r.load_tflite("bad\0name"), ["load_tflite", "NUL"]),
]


@pytest.mark.parametrize("call,words", LOAD_CALLS, ids=["-".join(w[:2]) for _, w in LOAD_CALLS])
def test_load_arguments_refused(call, words, onnx_path, capsys):
    rknn = RKNN()
    assert call(rknn, onnx_path) == -1
    e_lines(capsys, *words)


BUILT_CALLS = [
    (lambda r: r.build(rknn_batch_size=10**20), ["build", "rknn_batch_size", "from 1 to 256", "100000000000000000000"]),
    (lambda r: r.build(rknn_batch_size=True), ["rknn_batch_size", "bool"]),
    (lambda r: r.build(rknn_batch_size=2.0), ["rknn_batch_size", "float"]),
    (lambda r: r.build(do_quantization="yes"), ["do_quantization", "True or False"]),
    (lambda r: r.build(do_quantization=False, dataset=["d.txt"]), ["build", "dataset", "file path"]),
    (lambda r: r.export_rknn(None), ["export_rknn", "export_path", "NoneType"]),
    (lambda r: r.export_rknn(""), ["export_path", "non-empty"]),
    (lambda r: r.export_rknn_sync_model("m.rknn", "0"), ["sync_uids", "layer ids"]),
    (lambda r: r.init_runtime(target=1808), ["init_runtime", "target"]),
    (lambda r: r.init_runtime(perf_debug="on"), ["perf_debug", "True or False"]),
    (lambda r: r.accuracy_analysis(inputs=None), ["accuracy_analysis", "inputs"]),
    (lambda r: r.hybrid_quantization_step2("m.json", "m.data", "m.cfg", "d.txt", pre_compile=2), ["pre_compile"]),
]


@pytest.mark.parametrize("call,words", BUILT_CALLS, ids=["-".join(w[:2]) for _, w in BUILT_CALLS])
def test_build_and_file_arguments_refused(call, words, onnx_path, capsys):
    assert call(_built(onnx_path)) == -1
    e_lines(capsys, *words)


RUN_CALLS = [
    (lambda r: r.inference([np.zeros((1,) * 8, np.float32)]), ["inference", "inputs[0]", "8 dimensions"]),
    (lambda r: r.inference([X.astype(np.complex64)]), ["inputs[0]", "real numeric", "complex64"]),
    (lambda r: r.inference("image.jpg"), ["inference", "inputs", "list of numpy arrays"]),
    (lambda r: r.inference([X], data_type=np.float32), ["data_type", "'float32'"]),
    (lambda r: r.inference([X], data_format="hwc"), ["data_format", "'nchw'"]),
    (lambda r: r.inference([X], inputs_pass_through=[2]), ["inputs_pass_through", "0 or 1"]),
    (lambda r: r.eval_perf(inputs=[X], is_print="yes"), ["eval_perf", "is_print"]),
    (lambda r: r.eval_memory(is_print=None), ["eval_memory", "is_print"]),
]


@pytest.mark.parametrize("call,words", RUN_CALLS, ids=["-".join(w[:2]) for _, w in RUN_CALLS])
def test_runtime_arguments_refused(call, words, onnx_path, capsys):
    assert call(_ready(onnx_path)) is None
    e_lines(capsys, *words)


CONFIGS = [
    ({"channel_mean_value": "nan 0 0 1"}, ["channel_mean_value", "finite"]),
    ({"channel_mean_value": "0 0 0 inf"}, ["channel_mean_value", "finite"]),
    ({"channel_mean_value": "0 0 0 0"}, ["scale", "must not be 0"]),
    ({"channel_mean_value": [0, 0, 0, 1]}, ["channel_mean_value", "a string"]),
    ({"reorder_channel": "0 1 x"}, ["reorder_channel", "numbers"]),
    ({"reorder_channel": "0 1"}, ["reorder_channel", "permutation of 0 1 2"]),
    ({"reorder_channel": "0 1.5 2"}, ["reorder_channel", "permutation"]),
    ({"reorder_channel": "1 2 3"}, ["reorder_channel", "permutation"]),
    ({"channel_mean_value": "0 0 0 1#0 0 0 1", "reorder_channel": "0 1 2#0 1 2#2 1 0"}, ["one group per input", "2 and 3"]),
    ({"target_platform": 1808}, ["target_platform", "list of platform names"]),
]


@pytest.mark.parametrize("kwargs,words", CONFIGS, ids=[str(k) for k, _ in CONFIGS])
def test_config_values_refused_at_config(kwargs, words, onnx_path, capsys):
    rknn = RKNN()
    assert rknn.config(**kwargs) is None
    e_lines(capsys, *words)


def test_valid_values_of_other_types_are_accepted(onnx_path, tmp_path):
    """numpy integers, 0/1 flags, tuples of names, a 4-channel reorder and an upper-case data_type work."""
    rknn = RKNN()
    rknn.config(channel_mean_value="0 0 0 1", reorder_channel="2 1 0")
    assert rknn.load_onnx(onnx_path, outputs=("y",)) == 0
    assert rknn.build(do_quantization=0, rknn_batch_size=np.int64(2)) == 0
    assert rknn.init_runtime(perf_debug=np.bool_(False)) == 0
    batch = np.concatenate([X, X])
    out = rknn.inference([batch], data_type="FLOAT32", data_format="nchw")
    assert out[0].shape == (2, 4, 6, 6)
    np.testing.assert_array_equal(out[0][0], out[0][1])
    rknn.release()
    assert RKNN().config(reorder_channel="3 2 1 0") is None  # a permutation of 0..3 is fine for config


def test_bad_constructor_arguments_fail_every_call(onnx_path, tmp_path, capsys):
    rknn = RKNN(verbose="yes")
    assert rknn.load_onnx(onnx_path) == -1
    assert "verbose" in e_lines(capsys)
    missing = tmp_path / "no" / "log.txt"
    rknn = RKNN(verbose=True, verbose_file=str(missing))
    assert rknn.load_onnx(onnx_path) == -1
    assert "log file" in e_lines(capsys)
    assert not missing.parent.exists()


# ---- export targets -----------------------------------------------------------------------------------
def _leftovers(folder) -> list[str]:
    return [n for n in os.listdir(folder) if n.startswith(atomic.TEMP_PREFIX)]


def test_export_refuses_a_fifo(onnx_path, tmp_path, capsys):
    built = _built(onnx_path)
    fifo = tmp_path / "pipe.rknn"
    os.mkfifo(fifo)
    assert built.export_rknn(str(fifo)) == -1  # (opening a FIFO to write would block: it is never opened)
    assert "FIFO" in e_lines(capsys)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and not _leftovers(tmp_path)


def test_export_refuses_a_character_device(onnx_path, tmp_path, capsys):
    built = _built(onnx_path)
    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    node = tmp_path / "null.rknn"
    try:  # a node with /dev/null's numbers, inside tmp_path (only /dev/null's metadata is read)
        os.mknod(node, stat.S_IFCHR | 0o600, os.stat("/dev/null").st_rdev)
    except OSError as exc:
        pytest.skip(f"cannot create a device node here: {exc}")
    assert built.export_rknn(str(node)) == -1
    assert "character device" in e_lines(capsys)
    assert stat.S_ISCHR(os.lstat(node).st_mode) and not _leftovers(tmp_path)


def test_export_through_a_symlink_replaces_its_destination(onnx_path, tmp_path, capsys):
    built = _built(onnx_path)
    real = tmp_path / "real"
    real.mkdir()
    dest = real / "model.rknn"
    dest.write_bytes(b"old")
    link = tmp_path / "link.rknn"
    link.symlink_to(dest)
    assert built.export_rknn(str(link)) == 0
    assert link.is_symlink() and os.readlink(link) == str(dest)
    assert dest.read_bytes()[:8] == b"RKNNOPEN"
    assert not _leftovers(tmp_path) and not _leftovers(real)
    again = RKNN()
    assert again.load_rknn(str(link)) == 0 and again.init_runtime() == 0
    assert again.inference([X], data_type="float32", data_format="nchw")[0].shape == (1, 4, 6, 6)
    dangling = tmp_path / "dangling.rknn"
    dangling.symlink_to(real / "new.rknn")
    assert built.export_rknn(str(dangling)) == 0 and (real / "new.rknn").is_file() and dangling.is_symlink()
    pipe_link = tmp_path / "pipe_link.rknn"
    os.mkfifo(real / "pipe")
    pipe_link.symlink_to(real / "pipe")
    assert built.export_rknn(str(pipe_link)) == -1
    assert "FIFO" in e_lines(capsys)


KILLED_WRITER = """
import os, sys, time
from rknn_core import atomic
atomic.USE_TMPFILE = sys.argv[2] == "tmpfile"
def parts():
    yield b"x" * 1000
    open(sys.argv[1] + ".started", "w").close()
    time.sleep(60)
    yield b"y"
atomic.write_atomic(os.path.join(sys.argv[1], "model.rknn"), parts())
"""


def _kill_during_write(folder, mode: str) -> int:
    """Start a write of ``folder``/model.rknn in a child, SIGKILL it mid-write; the child's pid."""
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(folder), mode])
    marker = str(folder) + ".started"
    deadline = time.monotonic() + 60
    while not os.path.exists(marker):
        assert proc.poll() is None and time.monotonic() < deadline, "the writer did not start"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc.pid


def test_killed_export_leaves_no_temporary_file(tmp_path):
    if not atomic.USE_TMPFILE:
        pytest.skip("this system has no O_TMPFILE or /proc")
    folder = tmp_path / "out"
    folder.mkdir()
    _kill_during_write(folder, "tmpfile")
    assert os.listdir(folder) == []


def test_temporary_file_of_a_killed_export_is_removed_by_the_next(onnx_path, tmp_path):
    """Without O_TMPFILE the temporary file has a name; the next export in that folder removes it
    (only those of processes that no longer run)."""
    folder = tmp_path / "out"
    folder.mkdir()
    pid = _kill_during_write(folder, "named")
    left = _leftovers(folder)
    assert len(left) == 1 and left[0].startswith(f"{atomic.TEMP_PREFIX}{pid}-")  # named by the killed process
    live = folder / f"{atomic.TEMP_PREFIX}{os.getppid()}-abc{atomic.TEMP_SUFFIX}"  # a running process's
    live.write_bytes(b"busy")
    assert _built(onnx_path).export_rknn(str(folder / "other.rknn")) == 0
    assert sorted(os.listdir(folder)) == sorted(["other.rknn", live.name])


# ---- load_rknn checks the description --------------------------------------------------------------
@pytest.fixture
def rknn_file(onnx_path, tmp_path):
    path = tmp_path / "m.rknn"
    assert _built(onnx_path).export_rknn(str(path)) == 0
    return path


def _node(meta, op):
    return next(n for n in meta["graph"]["nodes"] if n["op"] == op)


def _tensor(meta, name):
    return next(t for t in meta["graph"]["tensors"] if t["name"] == name)


EDITS = {
    "dangling input": (lambda m: _node(m, "Conv")["inputs"].__setitem__(0, "nowhere"), ["Conv", "nowhere"]),
    "produced twice": (lambda m: m["graph"]["nodes"].append(dict(_node(m, "Conv"), name="again")), ["produced twice"]),
    "absurd pads": (lambda m: _node(m, "Conv")["attrs"].__setitem__("pads", [10**6] * 4), ["Conv", "shape inference"]),
    "attribute type": (lambda m: _node(m, "Conv")["attrs"].__setitem__("pads", "same"), ["Conv"]),
    "nan attribute": (lambda m: _node(m, "Conv")["attrs"].__setitem__("group", float("nan")), ["group", "NaN"]),
    "blob outside": (lambda m: next(t for t in m["graph"]["tensors"] if "data" in t)["data"].__setitem__("offset", 10**6),
                     ["outside the file's data section"]),
    "blob before": (lambda m: next(t for t in m["graph"]["tensors"] if "data" in t)["data"].__setitem__("offset", -64),
                    ["outside the file's data section"]),
    "object dtype": (lambda m: next(t for t in m["graph"]["tensors"] if "data" in t)["data"].__setitem__("dtype", "|O"),
                     ["numeric type"]),
    "recorded shape": (lambda m: _tensor(m, m["graph"]["outputs"][0]).__setitem__("shape", [1, 4, 7, 6]),
                       ["shape inference gives"]),
    "unknown op": (lambda m: _node(m, "Conv").__setitem__("op", "NoSuchOp"), ["NoSuchOp"]),
    "batch size": (lambda m: m.__setitem__("rknn_batch_size", 10**20), ["rknn_batch_size"]),
    "sync uids": (lambda m: m["extra"].__setitem__("sync_uids", [99]), ["sync_uids"]),
    "no outputs": (lambda m: m["graph"].__setitem__("outputs", []), ["no outputs"]),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_edited_description_with_recomputed_checksum_fails_at_load(edit, rknn_file, capsys):
    change, words = EDITS[edit]
    meta, blob = split_rknn(rknn_file.read_bytes())
    change(meta)
    rknn_file.write_bytes(pack_rknn(meta, blob))
    rknn = RKNN()
    assert rknn.load_rknn(str(rknn_file)) == -1
    e_lines(capsys, str(rknn_file), *words)
    assert rknn.init_runtime() == -1  # nothing was accepted
    rknn.release()


def test_unedited_repack_still_loads(rknn_file):
    """The editing helpers themselves are faithful: a description re-packed unchanged loads and runs."""
    meta, blob = split_rknn(rknn_file.read_bytes())
    rknn_file.write_bytes(pack_rknn(meta, blob))
    rknn = RKNN()
    assert rknn.load_rknn(str(rknn_file)) == 0 and rknn.init_runtime() == 0
    assert rknn.inference([X], data_type="float32", data_format="nchw")[0].shape == (1, 4, 6, 6)
    rknn.release()
