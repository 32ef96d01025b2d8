"""The .rknn container: lossless round trip, zero-copy constants, clear refusals, atomic writes."""

from __future__ import annotations

import json
import mmap
import os
import struct

import numpy as np
import pytest
from onnx import helper
from onnx_util import make_model, run_ort, save_model

from rknn.api import RKNN
from rknn_core import fileformat
from rknn_core.ir import Graph, Node, QuantParams, Tensor
from rknn_core.model import RknnModel


def _conv_model(rng):
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    return make_model(nodes, {"x": x}, ["y"], {"w": w, "b": b}), x


@pytest.fixture
def built(tmp_path):
    """(onnx path, rknn path, input) for a small Conv+Relu model exported as .rknn."""
    model, x = _conv_model(np.random.default_rng(0))
    onnx_path = save_model(model, str(tmp_path))
    rknn_path = str(tmp_path / "model.rknn")
    rknn = RKNN()
    assert rknn.load_onnx(onnx_path) == 0
    assert rknn.build(do_quantization=False) == 0
    assert rknn.export_rknn(rknn_path) == 0
    rknn.release()
    return onnx_path, rknn_path, x


def _rich_model() -> RknnModel:
    """A model using every field the container stores (not necessarily runnable)."""
    g = Graph("rich", inputs=["in"], outputs=["out", "aux"], metadata={"producer": "test", "nested": {"k": [1, 2]},
                                                                       "arr": np.arange(3, dtype=np.int32)})
    g.add_tensor(Tensor("in", (1, 3, 4, 4), "float32", layout="NHWC"))
    g.add_const("w", np.linspace(-1, 1, 27, dtype=np.float32).reshape(3, 1, 3, 3))
    g.add_const("half", np.arange(5, dtype=np.float16))
    g.add_const("idx", np.array([2, 1, 0], np.int64))
    g.add_const("mask", np.array([True, False, True]))
    g.add_const("scalar", np.array(2.5, np.float32))
    g.add_const("empty", np.zeros((0,), np.float32))
    g.add_const("u8", np.arange(7, dtype=np.uint8))
    g.add_tensor(Tensor("mid", (1, 3, 4, 4), "float32", layout="NCHW",
                        quant=QuantParams("u8", 0.0125, 128, min_value=-1.6, max_value=1.5875)))
    g.add_tensor(Tensor("out", (1, 3, 4, 4), "float32"))
    g.add_tensor(Tensor("aux", None, "int64"))
    # a constant whose tensor dtype says float32 while its data is float64: the data's type must survive
    g.add_tensor(Tensor("wide", (2,), "float32", np.array([1.0, 2.0], np.float64)))
    g.nodes = [
        Node("conv", "Conv", ["in", "w", ""], ["mid"], {"group": 3, "pads": [1, 1, 1, 1], "auto_pad": "NOTSET",
                                                        "alpha": 0.25, "flag": True, "none": None,
                                                        "table": np.arange(6, dtype=np.float32).reshape(2, 3),
                                                        "nested": {"a": [1.5, 2.5], "b": "text"}}),
        Node("gather", "Gather", ["mid", "idx"], ["out"], {"axis": 1}),
        Node("shape", "Shape", ["out"], ["aux"], {}),
    ]
    return RknnModel(g, ["rv1109", "rv1126"], True, 4, "asymmetric_quantized-u8", {"in": "mid"},
                     {"config": {"optimization_level": 2, "reorder_channel": "2 1 0"}, "sync_uids": [0, 2]})


def _same_value(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b)
        for k in a:
            _same_value(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same_value(x, y)
    else:
        assert a == b and type(a) is type(b), (a, b)


def _root_base(arr):
    base = arr
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return base.obj if isinstance(base, memoryview) else base


def test_round_trip_preserves_everything(tmp_path):
    model = _rich_model()
    path = str(tmp_path / "rich.rknn")
    fileformat.save(model, path)
    back = fileformat.load(path)
    assert back.target_platform == model.target_platform
    assert back.pre_compile is True and back.rknn_batch_size == 4
    assert back.quantized_dtype == model.quantized_dtype
    assert back.preprocessed == model.preprocessed
    _same_value(back.extra, model.extra)
    g, h = model.graph, back.graph
    assert (h.name, h.inputs, h.outputs) == (g.name, g.inputs, g.outputs)
    _same_value(h.metadata, g.metadata)
    assert list(h.tensors) == list(g.tensors)
    for name, t in g.tensors.items():
        u = h.tensors[name]
        assert (u.name, u.shape, u.dtype, u.layout, u.quant) == (t.name, t.shape, t.dtype, t.layout, t.quant), name
        if t.data is None:
            assert u.data is None
        else:
            _same_value(np.asarray(u.data), np.asarray(t.data))
    assert len(h.nodes) == len(g.nodes)
    for n, m in zip(g.nodes, h.nodes):
        assert (m.name, m.op, m.inputs, m.outputs) == (n.name, n.op, n.inputs, n.outputs)
        _same_value(m.attrs, n.attrs)


def test_round_trip_keeps_outputs(built):
    onnx_path, rknn_path, x = built
    rknn = RKNN()
    assert rknn.load_rknn(rknn_path) == 0
    assert rknn.init_runtime() == 0
    ours = rknn.inference([x], data_type="float32", data_format="nchw")
    rknn.release()
    np.testing.assert_allclose(ours[0], run_ort(onnx_path, {"x": x})[0], rtol=1e-4, atol=1e-5)


def test_resave_of_loaded_model_is_identical(built, tmp_path):
    _, rknn_path, _ = built
    again = str(tmp_path / "again.rknn")
    fileformat.save(fileformat.load(rknn_path), again)
    with open(rknn_path, "rb") as a, open(again, "rb") as b:
        assert a.read() == b.read()


def test_constants_are_memory_mapped(tmp_path):
    path = str(tmp_path / "rich.rknn")
    fileformat.save(_rich_model(), path)
    model = fileformat.load(path)
    consts = [t for t in model.graph.tensors.values() if t.data is not None and t.data.size]
    assert consts
    for t in consts:
        assert not t.data.flags.writeable, t.name
        assert isinstance(_root_base(t.data), mmap.mmap), t.name
    mm = _root_base(consts[0].data)
    start = np.frombuffer(mm, np.uint8)
    for t in consts:  # views into that one map, each blob 64-byte aligned in the file
        assert _root_base(t.data) is mm
        assert np.shares_memory(t.data, start)
        assert (t.data.ctypes.data - start.ctypes.data) % fileformat.ALIGN == 0
    w = model.graph.tensors["w"].data
    with pytest.raises(ValueError):
        w[0, 0, 0, 0] = 1.0


def test_file_is_aligned_and_sized(tmp_path):
    path = str(tmp_path / "rich.rknn")
    fileformat.save(_rich_model(), path)
    size = os.path.getsize(path)
    _magic, _version, _flags, meta_len, data_len, _digest = fileformat._HEADER.unpack(open(path, "rb").read(fileformat._HEADER.size))
    head = fileformat._align(fileformat._HEADER.size + meta_len)
    assert head % 64 == 0 and head + data_len == size
    assert fileformat.file_version(path) == fileformat.FORMAT_VERSION


# refusals ---------------------------------------------------------------------------------------------
def _load_fails(path, capsys, *words):
    rknn = RKNN()
    assert rknn.load_rknn(str(path)) == -1
    err = capsys.readouterr().err
    rknn.release()
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("E ")]
    assert lines, err
    for word in words:
        assert word.lower() in err.lower(), (word, err)
    return err


def _meta_span(path):
    data = open(path, "rb").read()
    meta_len = struct.unpack_from("<Q", data, 16)[0]
    start = fileformat._HEADER.size
    return data, start, meta_len


def test_corrupted_meta_byte_refused(built, capsys):
    _, path, _ = built
    data, start, meta_len = _meta_span(path)
    data = bytearray(data)
    data[start + meta_len // 2] ^= 0x20
    open(path, "wb").write(bytes(data))
    _load_fails(path, capsys, "corrupted", os.path.basename(path))


def test_corrupted_weight_byte_refused(built, capsys):
    _, path, _ = built
    data = bytearray(open(path, "rb").read())
    data[-70] ^= 0xFF  # inside the constant data
    open(path, "wb").write(bytes(data))
    _load_fails(path, capsys, "corrupted")


def test_truncated_file_refused(built, capsys):
    _, path, _ = built
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-100])
    _load_fails(path, capsys, "truncated")


def test_truncated_inside_header_refused(built, capsys):
    _, path, _ = built
    open(path, "wb").write(open(path, "rb").read()[:20])
    _load_fails(path, capsys, "too short")


def test_garbage_refused(tmp_path, capsys):
    path = tmp_path / "garbage.rknn"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    _load_fails(path, capsys, "not an rknn model")


def test_onnx_file_given_to_load_rknn_refused(built, capsys):
    onnx_path, _, _ = built
    _load_fails(onnx_path, capsys, "not an rknn model")


def test_empty_file_refused(tmp_path, capsys):
    path = tmp_path / "empty.rknn"
    path.write_bytes(b"")
    _load_fails(path, capsys, "too short", "0 bytes")


def test_missing_file_refused(tmp_path, capsys):
    _load_fails(tmp_path / "nope.rknn", capsys, "does not exist", "nope.rknn")


def test_folder_refused(tmp_path, capsys):
    _load_fails(tmp_path, capsys, "does not exist")


def test_newer_version_refused(built, capsys):
    _, path, _ = built
    data = bytearray(open(path, "rb").read())
    struct.pack_into("<I", data, 8, fileformat.FORMAT_VERSION + 1)
    open(path, "wb").write(bytes(data))
    err = _load_fails(path, capsys, "newer", "upgrade", f"version {fileformat.FORMAT_VERSION + 1}")
    assert "corrupted" not in err


def test_malformed_description_with_valid_checksum_refused(tmp_path, capsys):
    """A well-formed container whose JSON lacks required fields is refused, not a KeyError."""
    import hashlib

    meta = json.dumps({"graph": {"name": "g"}}).encode()
    head = fileformat._align(fileformat._HEADER.size + len(meta))
    digest = hashlib.sha256(meta).digest()
    blob = fileformat._HEADER.pack(fileformat.MAGIC, 1, 0, len(meta), 0, digest) + meta
    path = tmp_path / "odd.rknn"
    path.write_bytes(blob + b"\0" * (head - len(blob)))
    _load_fails(path, capsys, "malformed")


# atomic export -----------------------------------------------------------------------------------------
def _leftovers(folder):
    return [n for n in os.listdir(folder) if n.startswith(".rknn-") or n.endswith(".tmp")]


def _session(onnx_path):
    rknn = RKNN()
    assert rknn.load_onnx(onnx_path) == 0
    assert rknn.build(do_quantization=False) == 0
    return rknn


def test_export_to_missing_folder_fails_cleanly(built, tmp_path, capsys):
    onnx_path, _, _ = built
    rknn = _session(onnx_path)
    target = tmp_path / "no" / "such" / "m.rknn"
    assert rknn.export_rknn(str(target)) == -1
    err = capsys.readouterr().err
    rknn.release()
    assert "E " in err and "does not exist" in err and "Traceback" not in err
    assert not target.exists() and not (tmp_path / "no").exists()


def test_export_to_a_folder_fails_cleanly(built, tmp_path, capsys):
    onnx_path, _, _ = built
    rknn = _session(onnx_path)
    (tmp_path / "dir.rknn").mkdir()
    assert rknn.export_rknn(str(tmp_path / "dir.rknn")) == -1
    err = capsys.readouterr().err
    rknn.release()
    assert "folder" in err and "Traceback" not in err
    assert not _leftovers(tmp_path)


@pytest.mark.parametrize("failing", ["fsync", "replace", "write"])
def test_failed_write_keeps_existing_file(built, tmp_path, capsys, monkeypatch, failing):
    onnx_path, good_path, _ = built
    before = open(good_path, "rb").read()
    rknn = _session(onnx_path)
    rknn.config(optimization_level=0)  # something different would be written

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if failing == "write":
        real_fdopen = os.fdopen

        class Full:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, data):
                self.f.write(data[: len(data) // 2])
                raise OSError(28, "No space left on device")

        monkeypatch.setattr(fileformat.os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    else:
        monkeypatch.setattr(fileformat.os, failing, boom)
    assert rknn.export_rknn(good_path) == -1
    monkeypatch.undo()
    err = capsys.readouterr().err
    rknn.release()
    assert "No space left on device" in err and good_path in err and "Traceback" not in err
    assert open(good_path, "rb").read() == before
    assert not _leftovers(tmp_path)
    # and the old file still loads
    again = RKNN()
    assert again.load_rknn(good_path) == 0
    again.release()


def test_export_overwrites_atomically_and_keeps_permissions(built, tmp_path):
    onnx_path, good_path, _ = built
    old = os.umask(0o022)
    try:
        rknn = _session(onnx_path)
        assert rknn.export_rknn(good_path) == 0
        rknn.release()
    finally:
        os.umask(old)
    assert os.stat(good_path).st_mode & 0o777 == 0o644
    assert not _leftovers(tmp_path)


def test_export_over_the_loaded_file(built):
    """Re-exporting a model loaded (memory-mapped) from the same path works and stays valid."""
    _, path, x = built
    rknn = RKNN()
    assert rknn.load_rknn(path) == 0
    assert rknn.export_rknn(path) == 0
    assert rknn.init_runtime() == 0
    first = rknn.inference([x], data_type="float32", data_format="nchw")
    rknn.release()
    again = RKNN()
    assert again.load_rknn(path) == 0 and again.init_runtime() == 0
    np.testing.assert_array_equal(again.inference([x], data_type="float32", data_format="nchw")[0], first[0])
    again.release()
