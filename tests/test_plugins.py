"""Plugin loading: entry points, typed records, duplicate names, broken plugins, missing frontends."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import pathlib
import subprocess
import sys
import textwrap

import attrs
import numpy as np
import pytest
from onnx_util import assert_close, run_ort, save_model, single_op

import rknn_core.plugins as plugins
from rknn.api import RKNN
from rknn_core import hookspecs, records
from rknn_core.errors import RknnError
from rknn_core.hookspecs import hookimpl
from rknn_core.ir import TensorInfo
from rknn_core.plugins import KINDS, RECORD_TYPES, Registry, default_registry, new_plugin_manager
from rknn_core.records import Converter, Cost, Frontend, OpDef, PassSpec, Quantizer, Target, Transport
from rknn_core.testing import source_packages
from rknn_core.toolkit import Toolkit

HAVE_OP_EXAMPLE = importlib.util.find_spec("rknn_op_example") is not None
INSTALLED = {"core": "rknn_core.builtin", "onnx": "rknn_onnx.plugin", "targets": "rknn_targets.plugin",
             **({"op_example": "rknn_op_example.plugin"} if HAVE_OP_EXAMPLE else {})}
needs_op_example = pytest.mark.skipif(not HAVE_OP_EXAMPLE, reason="rknn-op-example is not installed in this session")


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder on ``sys.path`` for plugin modules written by a test; they are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.split(".")[0].startswith(("rknn_fake", "rknn_tflite", "rknn_dup")):
            del sys.modules[name]


def _write_module(folder, dotted: str, text: str) -> None:
    """Write a module (and its package ``__init__``s) under ``folder``."""
    parts = dotted.split(".")
    for i in range(1, len(parts)):
        pkg = folder.joinpath(*parts[:i])
        pkg.mkdir(exist_ok=True)
        (pkg / "__init__.py").touch()
    folder.joinpath(*parts[:-1], parts[-1] + ".py").write_text(textwrap.dedent(text))


def _ep(name: str, value: str) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name, value, hookspecs.PROJECT)


def _installed_eps(*names: str) -> list[importlib.metadata.EntryPoint]:
    return [_ep(n, INSTALLED[n]) for n in names]


def _relu_model_path(tmp_path) -> tuple[str, dict]:
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 4)).astype(np.float32)
    return save_model(single_op("Relu", {"x": x}), str(tmp_path)), {"x": x}


def _convert_and_run(registry: Registry, path: str, inputs: dict) -> list[np.ndarray]:
    tk = Toolkit(registry=registry)
    tk.load("load_onnx", model=path)
    tk.build(do_quantization=False)
    tk.init_runtime(None)
    return tk.inference(list(inputs.values()), "float32", "nchw")


def _op(name: str) -> OpDef:
    return OpDef(name, lambda i, a: [TensorInfo(i[0].shape, i[0].dtype)], lambda i, a: [i[0].copy()],
                 doc=f"test op {name}")


class OpPlugin:
    """A plugin object providing ops by name."""

    def __init__(self, *names: str):
        self.names = names

    @hookimpl
    def rknn_ops(self):
        return [_op(n) for n in self.names]


# --- the installed plugins ------------------------------------------------------------------------------

def test_installed_entry_points_are_found():
    found = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="rknn")}
    for name, value in INSTALLED.items():
        assert found.get(name) == value, f"entry point rknn:{name} is not installed"


def test_default_registry_loads_every_installed_plugin():
    """This repository's plugins all load (a broken plugin installed from elsewhere is not judged here)."""
    registry = default_registry()
    ours = source_packages(pathlib.Path(__file__).resolve().parents[1])
    broken = {package: why for package, why in registry.broken.items() if package in ours}
    assert not broken, broken
    for name, module in INSTALLED.items():
        plugin = registry.pm.get_plugin(name)
        assert plugin is not None and plugin.__name__ == module
    assert registry.origin("ops", "Conv") == "core"
    if HAVE_OP_EXAMPLE:
        assert registry.origin("ops", "Mish") == "op_example"
    assert registry.origin("frontends", "onnx") == "onnx"
    assert registry.origin("targets", "simulator") == "targets"
    assert registry.frontend_for("load_onnx").name == "onnx"


def test_records_are_typed_attrs_classes():
    registry = default_registry()
    assert set(RECORD_TYPES) == set(KINDS)
    assert [RECORD_TYPES[k] for k in KINDS] == [Frontend, OpDef, Converter, PassSpec, Quantizer, Target, Transport]
    for kind, cls in RECORD_TYPES.items():
        assert attrs.has(cls) and cls.__module__ == records.__name__
        for name, record in registry.table(kind).items():
            assert type(record) is cls, f"{kind} '{name}' is a {type(record).__name__}"
            assert record.name == name
            with pytest.raises(attrs.exceptions.FrozenInstanceError):
                record.name = "other"
    assert registry.table("ops") and registry.table("frontends") and registry.table("targets")
    for opdef in registry.table("ops").values():
        assert callable(opdef.infer) and callable(opdef.kernel)
        assert opdef.cost is None or callable(opdef.cost)


def test_every_record_type_round_trips_through_a_plugin():
    """A plugin returning one record of each kind: all six hooks are called and fill their tables."""

    class Everything:
        @hookimpl
        def rknn_frontends(self):
            return [Frontend("fake", "load_fake", lambda **kw: None)]

        @hookimpl
        def rknn_ops(self):
            return [_op("FakeOp")]

        @hookimpl
        def rknn_passes(self):
            return [PassSpec("fake_pass", lambda graph, ctx: False, min_level=2, after=("x",))]

        @hookimpl
        def rknn_quantizers(self):
            return [Quantizer("fake-q8", lambda *a, **k: None)]

        @hookimpl
        def rknn_targets(self):
            return [Target("fake_target", "fake", ("fake1",), lambda *a, **k: None)]

        @hookimpl
        def rknn_transports(self):
            return [Transport("fake_tcp", lambda *a, **k: None, lambda: ["dev0"])]

    registry = Registry(*new_plugin_manager((("everything", Everything()),), entry_points=[]))
    expected = {"frontends": "fake", "ops": "FakeOp", "passes": "fake_pass", "quantizers": "fake-q8",
                "targets": "fake_target", "transports": "fake_tcp"}
    for kind, name in expected.items():
        assert isinstance(registry.table(kind)[name], RECORD_TYPES[kind])
        assert registry.origin(kind, name) == "everything"
    assert registry.frontend_for("load_fake").name == "fake"
    assert registry.table("transports")["fake_tcp"].list_devices() == ["dev0"]
    assert Cost().macs == 0 and Cost(3, 4).bytes == 4


def test_core_registers_even_without_its_entry_point():
    """From a source tree without installed metadata the core's built-ins still register as 'core'."""
    registry = Registry(*new_plugin_manager(entry_points=[]))
    assert registry.origin("ops", "Relu") == "core"
    assert registry.op("Mish") is None and not registry.table("frontends")


def test_registry_copy_is_independent():
    base = default_registry()
    copy = base.copy()
    copy.add("ops", _op("OnlyInCopy"), "test")
    assert copy.op("OnlyInCopy") is not None and base.op("OnlyInCopy") is None
    assert copy.origin("ops", "OnlyInCopy") == "test"


# --- duplicate names ------------------------------------------------------------------------------------

def test_duplicate_op_from_two_plugin_objects_is_refused():
    pm, broken = new_plugin_manager((("first_pkg", OpPlugin("Twin")), ("second_pkg", OpPlugin("Twin"))),
                                    entry_points=[])
    with pytest.raises(RknnError) as info:
        Registry(pm, broken)
    message = str(info.value)
    assert "op 'Twin' is provided twice" in message
    assert "'first_pkg'" in message and "'second_pkg'" in message


def test_duplicate_op_from_two_entry_point_modules_is_refused(plugin_dir):
    for pkg in ("rknn_dup_a", "rknn_dup_b"):
        _write_module(plugin_dir, f"{pkg}.plugin", """
            from rknn_core.hookspecs import hookimpl
            from rknn_core.ir import TensorInfo
            from rknn_core.records import OpDef

            @hookimpl
            def rknn_ops():
                return [OpDef("Gelu2", lambda i, a: [TensorInfo(i[0].shape, i[0].dtype)], lambda i, a: [i[0]])]
        """)
    eps = [_ep("dup_a", "rknn_dup_a.plugin"), _ep("dup_b", "rknn_dup_b.plugin"), *_installed_eps("core")]
    with pytest.raises(RknnError, match=r"op 'Gelu2' is provided twice: by plugin 'dup_a' and by plugin 'dup_b'"):
        Registry(*new_plugin_manager(entry_points=eps))


@needs_op_example
def test_plugin_redefining_an_installed_op_is_refused():
    eps = _installed_eps("core", "op_example")
    with pytest.raises(RknnError, match=r"op 'Mish' is provided twice: by plugin 'op_example' and by plugin 'rogue'"):
        Registry(*new_plugin_manager((("rogue", OpPlugin("Mish")),), entry_points=eps))
    with pytest.raises(RknnError, match=r"op 'Conv' is provided twice: by plugin 'core' and by plugin 'rogue'"):
        Registry(*new_plugin_manager((("rogue", OpPlugin("Conv")),), entry_points=eps))


def test_duplicate_frontend_is_refused():
    class OtherOnnx:
        @hookimpl
        def rknn_frontends(self):
            return [Frontend("onnx", "load_onnx", lambda **kw: None)]

    with pytest.raises(RknnError, match=r"frontend 'onnx' is provided twice: by plugin 'onnx' and by plugin 'other'"):
        Registry(*new_plugin_manager((("other", OtherOnnx()),), entry_points=_installed_eps("core", "onnx")))


# --- broken plugins -------------------------------------------------------------------------------------

def test_plugin_failing_to_import_is_skipped_with_a_warning(plugin_dir, rknn_log, tmp_path):
    _write_module(plugin_dir, "rknn_fake_broken.plugin", """
        raise ImportError("No module named 'frobnicator'")
    """)
    eps = [*_installed_eps("core", "onnx", "targets"), _ep("broken", "rknn_fake_broken.plugin")]
    registry = Registry(*new_plugin_manager(entry_points=eps))
    assert registry.broken == {"rknn_fake_broken": "ImportError: No module named 'frobnicator'"}
    assert not registry.pm.has_plugin("broken")
    warnings = [r.getMessage() for r in rknn_log if r.levelno == logging.WARNING]
    assert any("plugin 'broken' (rknn_fake_broken.plugin) failed to load and is skipped" in w
               and "frobnicator" in w for w in warnings), warnings
    # the rest still works: a model converts and runs
    path, inputs = _relu_model_path(tmp_path)
    assert_close(_convert_and_run(registry, path, inputs), run_ort(path, inputs))


def test_entry_point_naming_a_missing_module_is_skipped(rknn_log):
    eps = [*_installed_eps("core"), _ep("ghost", "rknn_fake_ghost.plugin")]
    registry = Registry(*new_plugin_manager(entry_points=eps))
    assert "ModuleNotFoundError" in registry.broken["rknn_fake_ghost"]
    assert registry.op("Relu") is not None


def test_plugin_whose_hook_raises_is_skipped(rknn_log, tmp_path):
    class Raising:
        @hookimpl
        def rknn_ops(self):
            raise RuntimeError("op table is corrupt")

    eps = _installed_eps("core", "onnx", "targets")
    registry = Registry(*new_plugin_manager((("raising", Raising()),), entry_points=eps))
    assert registry.broken == {__name__.split(".")[0]: "RuntimeError: op table is corrupt"}
    assert any("plugin 'raising' failed in rknn_ops and is skipped" in r.getMessage() for r in rknn_log)
    path, inputs = _relu_model_path(tmp_path)
    assert_close(_convert_and_run(registry, path, inputs), run_ort(path, inputs))


def test_plugin_returning_wrong_record_type_is_skipped(rknn_log):
    class Confused:
        @hookimpl
        def rknn_ops(self):
            return [Frontend("Oops", "load_oops", lambda **kw: None)]

    registry = Registry(*new_plugin_manager((("confused", Confused()),), entry_points=_installed_eps("core")))
    assert registry.op("Oops") is None and registry.op("Relu") is not None
    assert "rknn_ops returned Frontend, not OpDef" in next(iter(registry.broken.values()))


def test_broken_frontend_plugin_is_named_in_the_load_error(plugin_dir, monkeypatch, capsys):
    for name in [m for m in sys.modules if m.split(".")[0] == "rknn_tflite"]:  # the real plugin, if installed
        monkeypatch.delitem(sys.modules, name)
    _write_module(plugin_dir, "rknn_tflite.plugin", """
        raise ImportError("No module named 'tflite'")
    """)
    eps = [*_installed_eps("core", "onnx", "targets"), _ep("tflite", "rknn_tflite.plugin")]
    monkeypatch.setattr(plugins, "_default", Registry(*new_plugin_manager(entry_points=eps)))
    rknn = RKNN()
    assert rknn.load_tflite("model.tflite") == -1
    err = capsys.readouterr().err
    assert ("E load_tflite needs the rknn-tflite plugin: pip install plugins/rknn_tflite "
            "(the installed plugin failed to load: ImportError: No module named 'tflite')") in err
    rknn.release()


# --- missing frontends ------------------------------------------------------------------------------------

def test_missing_tflite_frontend(capsys):
    if any(f.loader == "load_tflite" for f in default_registry().table("frontends").values()):
        pytest.skip("the rknn-tflite plugin is installed")
    rknn = RKNN()
    assert rknn.load_tflite("mobilenet.tflite") == -1
    err = capsys.readouterr().err
    assert "E load_tflite needs the rknn-tflite plugin: pip install plugins/rknn_tflite\n" in err
    assert "Traceback" not in err
    rknn.release()


@pytest.mark.parametrize("call, message", [
    (lambda r: r.load_caffe("m.prototxt", "caffe", "m.caffemodel"),
     "E load_caffe needs the rknn-caffe plugin: pip install plugins/rknn_caffe"),
    (lambda r: r.load_darknet("yolo.cfg", "yolo.weights"),
     "E load_darknet needs the rknn-darknet plugin: pip install plugins/rknn_darknet"),
])
def test_missing_other_frontends(call, message, capsys):
    registry = default_registry()
    loader = message.split()[1]
    if any(f.loader == loader for f in registry.table("frontends").values()):
        pytest.skip(f"a {loader} frontend is installed")
    rknn = RKNN()
    assert call(rknn) == -1
    assert message in capsys.readouterr().err
    rknn.release()


def test_missing_onnx_frontend_names_the_onnx_plugin(tmp_path, monkeypatch, capsys):
    pm, broken = new_plugin_manager()
    pm.unregister(name="onnx")
    monkeypatch.setattr(plugins, "_default", Registry(pm, broken))
    path, _ = _relu_model_path(tmp_path)
    rknn = RKNN()
    assert rknn.load_onnx(path) == -1
    assert "E load_onnx needs the rknn-onnx plugin: pip install plugins/rknn_onnx" in capsys.readouterr().err
    rknn.release()


# --- laziness -------------------------------------------------------------------------------------------

def test_default_registry_is_not_built_at_import_time():
    code = textwrap.dedent("""
        import importlib.metadata as md
        calls = []
        real = md.entry_points
        def spy(*args, **kwargs):
            calls.append(kwargs.get("group"))
            return real(*args, **kwargs)
        md.entry_points = spy
        import rknn.api
        import rknn_core.plugins as plugins
        assert plugins._default is None, "the registry was built at import time"
        assert "rknn" not in calls, calls
        assert "rknn_onnx" not in __import__("sys").modules, "a plugin was imported at import time"
        rknn.api.RKNN()
        assert plugins._default is not None and "rknn" in calls
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_plugin_modules_import_no_framework():
    """Importing a plugin module stays cheap: the onnx frontend does not import onnx until it loads."""
    code = ("import sys, rknn_onnx.plugin, rknn_targets.plugin\n"
            "assert 'onnx' not in sys.modules, 'rknn_onnx.plugin imported onnx'\n")
    if HAVE_OP_EXAMPLE:
        code += "import rknn_op_example.plugin\nassert 'rknn_op_example.mish' not in sys.modules\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_plugin_with_a_misspelled_hook_is_skipped(plugin_dir, rknn_log):
    _write_module(plugin_dir, "rknn_fake_typo.plugin", """
        from rknn_core.hookspecs import hookimpl

        @hookimpl
        def rknn_op():
            return []
    """)
    eps = [*_installed_eps("core"), _ep("typo", "rknn_fake_typo.plugin")]
    registry = Registry(*new_plugin_manager(entry_points=eps))
    assert "unknown hook 'rknn_op'" in registry.broken["rknn_fake_typo"]
    assert not registry.pm.has_plugin("typo") and registry.op("Relu") is not None
