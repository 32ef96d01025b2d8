"""Provenance in .rknn files: which distribution supplied each op, quantizer and target platform, and
load_rknn naming the package to install when one is missing."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import sys

import numpy as np
import onnx
import pytest
from error_lines import last_error
from fake_dist import forget_modules, make_distribution
from onnx import helper
from onnx_util import assert_close, make_model, save_model

import rknn_core.plugins as plugins
from rknn.api import RKNN
from rknn_core import fileformat, hookspecs
from rknn_core.ir_dump import dump_model
from rknn_core.plugins import Registry, new_plugin_manager

SWISH_PLUGIN = """
import numpy as np

from rknn_core.hookspecs import hookimpl
from rknn_core.ir import TensorInfo
from rknn_core.records import OpDef


@hookimpl
def rknn_ops():
    return [OpDef("FakeSwish", lambda i, a: [TensorInfo(i[0].shape, i[0].dtype)],
                  lambda i, a: [(i[0] / (1 + np.exp(-i[0]))).astype(i[0].dtype)], domain="com.example")]
"""
EMPTY_PLUGIN = """
from rknn_core.hookspecs import hookimpl


@hookimpl
def rknn_ops():
    return []
"""
SWISH = "com.example:FakeSwish"


def _version(dist: str) -> str:
    return importlib.metadata.version(dist)


def _installed_eps() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=hookspecs.PROJECT))


def _swish_model(folder) -> tuple[str, np.ndarray]:
    x = (np.random.default_rng(4).standard_normal((1, 2, 3, 4)) * 3).astype(np.float32)
    node = helper.make_node("FakeSwish", ["x"], ["y"], name="swish0", domain="com.example")
    graph = helper.make_graph([node], "swish", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, x.shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    model.ir_version = 8
    return save_model(model, str(folder)), x


@pytest.fixture
def swish_dist(tmp_path, monkeypatch):
    """rknn-fake-swish 0.2.0, installed in a folder on sys.path; yields (its entry points, the folder)."""
    site = tmp_path / "site_new"
    eps = make_distribution(site, "rknn-fake-swish", "0.2.0", "rknn_fake_swish", SWISH_PLUGIN, "fake_swish")
    monkeypatch.syspath_prepend(str(site))
    yield eps, site
    forget_modules("rknn_fake_swish")


def _uninstall(site, monkeypatch) -> None:
    """Take a fake distribution's folder off sys.path: its package and metadata are gone."""
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(site)])
    forget_modules("rknn_fake_swish")


def _use_registry(monkeypatch, entry_points=None) -> None:
    monkeypatch.setattr(plugins, "_default", Registry(*new_plugin_manager(entry_points=entry_points)))


def _export_swish(tmp_path, monkeypatch, eps) -> tuple[str, np.ndarray]:
    _use_registry(monkeypatch, [*eps, *_installed_eps()])
    model_path, x = _swish_model(tmp_path)
    rknn = RKNN()
    assert rknn.load_onnx(model_path) == 0 and rknn.build(do_quantization=False) == 0
    exported = str(tmp_path / "m.rknn")
    assert rknn.export_rknn(exported) == 0
    rknn.release()
    return exported, x


def test_export_records_the_supplier_of_every_op_quantizer_and_platform(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    model_path = save_model(make_model(nodes, {"x": np.zeros((1, 3, 6, 6), np.float32)}, ["y"], {"w": w}), str(tmp_path))
    for i in range(3):
        np.save(tmp_path / f"s{i}.npy", rng.standard_normal((6, 6, 3)).astype(np.float32))
    (tmp_path / "dataset.txt").write_text("s0.npy\ns1.npy\ns2.npy\n")
    rknn = RKNN()
    rknn.config(target_platform="rv1109")
    assert rknn.load_onnx(model_path) == 0
    assert rknn.build(do_quantization=True, dataset=str(tmp_path / "dataset.txt")) == 0
    exported = str(tmp_path / "q.rknn")
    assert rknn.export_rknn(exported) == 0
    rknn.release()
    core = {"plugin": "core", "distribution": "rknn-core", "version": _version("rknn-core")}
    loaded = fileformat.load(exported)
    used = {node.op for node in loaded.graph.nodes}
    assert "Conv" in used
    assert loaded.provenance == {
        "ops": {op: core for op in used},
        "quantizers": {"asymmetric_quantized-u8": core},
        "targets": {"rv1109": {"plugin": "target_rv11xx", "distribution": "rknn-target-rv11xx",
                               "version": _version("rknn-target-rv11xx"), "target": "rv1109", "family": "rv1126"}},
    }


def test_a_plugin_op_is_recorded_and_the_model_reloads_with_the_plugin(tmp_path, monkeypatch, swish_dist):
    eps, _ = swish_dist
    exported, x = _export_swish(tmp_path, monkeypatch, eps)
    assert fileformat.load(exported).provenance["ops"][SWISH] == {
        "plugin": "fake_swish", "distribution": "rknn-fake-swish", "version": "0.2.0"}
    expected = sorted(["rknn-fake-swish 0.2.0", f"rknn-target-rk18xx {_version('rknn-target-rk18xx')}"])
    assert f"\nplugins: {', '.join(expected)}\n" in dump_model(fileformat.load(exported))
    rknn = RKNN()
    assert rknn.load_rknn(exported) == 0 and rknn.init_runtime() == 0
    assert_close(rknn.inference([x], data_type="float32", data_format="nchw"), [x / (1 + np.exp(-x))])
    rknn.release()


def test_load_without_the_plugin_names_the_package_to_install(tmp_path, monkeypatch, swish_dist, capsys):
    eps, site = swish_dist
    exported, _ = _export_swish(tmp_path, monkeypatch, eps)
    _uninstall(site, monkeypatch)
    _use_registry(monkeypatch)
    assert RKNN().load_rknn(exported) == -1
    assert last_error(capsys) == (f"E load_rknn: '{exported}' uses op '{SWISH}' from rknn-fake-swish 0.2.0, which is not "
                              f"installed: pip install rknn-fake-swish")


def test_load_with_an_older_plugin_names_the_version_to_install(tmp_path, monkeypatch, swish_dist, capsys):
    eps, site = swish_dist
    exported, _ = _export_swish(tmp_path, monkeypatch, eps)
    _uninstall(site, monkeypatch)
    older = tmp_path / "site_old"
    old_eps = make_distribution(older, "rknn-fake-swish", "0.1.0", "rknn_fake_swish", EMPTY_PLUGIN, "fake_swish")
    monkeypatch.syspath_prepend(str(older))
    _use_registry(monkeypatch, [*old_eps, *_installed_eps()])
    assert RKNN().load_rknn(exported) == -1
    assert last_error(capsys) == (f"E load_rknn: '{exported}' uses op '{SWISH}' from rknn-fake-swish 0.2.0, but the "
                              f"installed rknn-fake-swish 0.1.0 does not provide it: pip install 'rknn-fake-swish==0.2.0'")


def test_load_with_the_plugin_broken_says_why(tmp_path, monkeypatch, swish_dist, capsys):
    eps, site = swish_dist
    exported, _ = _export_swish(tmp_path, monkeypatch, eps)
    (site / "rknn_fake_swish" / "plugin.py").write_text("raise ImportError(\"No module named 'swishlib'\")\n")
    forget_modules("rknn_fake_swish")
    _use_registry(monkeypatch, [*eps, *_installed_eps()])
    assert RKNN().load_rknn(exported) == -1
    assert last_error(capsys) == (f"E load_rknn: '{exported}' uses op '{SWISH}' from rknn-fake-swish 0.2.0, which is "
                              f"installed but was skipped: ImportError: No module named 'swishlib'")


def test_every_missing_supplier_is_named(tmp_path, monkeypatch, swish_dist, capsys):
    """Without the chip plugin and the op plugin, both are named (the quantizer and core ops remain)."""
    eps, site = swish_dist
    exported, _ = _export_swish(tmp_path, monkeypatch, eps)
    _uninstall(site, monkeypatch)
    _use_registry(monkeypatch, [ep for ep in _installed_eps() if ep.name in ("core", "onnx")])
    assert RKNN().load_rknn(exported) == -1
    message = last_error(capsys)
    assert f"uses op '{SWISH}' from rknn-fake-swish 0.2.0, which is not installed" in message
    assert (f"; target platform 'rk1808' from rknn-target-rk18xx {_version('rknn-target-rk18xx')}, which is installed "
            f"but does not provide it (is its plugin 'target_rk18xx' disabled?)") in message


def _rewrite_description(path: str, edit) -> None:
    """Rewrite a .rknn file's JSON description (the way an older toolkit would have written it)."""
    blob = open(path, "rb").read()
    magic, version, flags, meta_len, data_len, _ = fileformat._HEADER.unpack_from(blob, 0)
    start = fileformat._HEADER.size
    head = fileformat._align(start + meta_len)
    meta = json.loads(blob[start:start + meta_len])
    edit(meta)
    meta_bytes = json.dumps(meta).encode()
    data = blob[head:head + data_len]
    digest = hashlib.sha256(meta_bytes + data).digest()
    header = fileformat._HEADER.pack(magic, version, flags, len(meta_bytes), data_len, digest)
    pad = b"\0" * (fileformat._align(start + len(meta_bytes)) - start - len(meta_bytes))
    with open(path, "wb") as f:
        f.write(header + meta_bytes + pad + data)


def test_old_files_without_provenance_still_load(tmp_path, monkeypatch, swish_dist, capsys):
    eps, site = swish_dist
    exported, x = _export_swish(tmp_path, monkeypatch, eps)
    _rewrite_description(exported, lambda meta: meta.pop("provenance"))
    assert fileformat.load(exported).provenance == {}
    rknn = RKNN()  # with the plugin: loads and runs
    assert rknn.load_rknn(exported) == 0 and rknn.init_runtime() == 0
    assert_close(rknn.inference([x], data_type="float32", data_format="nchw"), [x / (1 + np.exp(-x))])
    _uninstall(site, monkeypatch)
    _use_registry(monkeypatch)
    assert RKNN().load_rknn(exported) == -1  # without it: the op and node are named, as before provenance
    assert f"unsupported op '{SWISH}' at node 'swish0'" in last_error(capsys)
