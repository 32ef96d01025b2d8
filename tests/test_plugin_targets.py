"""Chip platforms come from target plugins: config, init_runtime, the .rknn header, list_support_target_platform."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
from error_lines import last_error
from onnx_util import assert_close, run_ort, save_model, single_op

import rknn_core.plugins as plugins
from rknn.api import RKNN
from rknn_core import fileformat, hookspecs
from rknn_core.errors import RknnError
from rknn_core.hookspecs import hookimpl
from rknn_core.platforms import check_platforms, platform_families
from rknn_core.plugins import Registry, new_plugin_manager
from rknn_core.records import Target


class Rk3588Plugin:
    """A third-party target plugin for a chip the core has never heard of; it runs models on the
    simulator's runtime and counts the runtimes it created."""

    def __init__(self, family: str = "rk3588", create: bool = True, name: str = "rk3588-board"):
        self.family, self.create, self.name, self.created = family, create, name, []

    def _runtime(self, model, registry, **options):
        from rknn_targets.simulator import SimulatorRuntime

        runtime = SimulatorRuntime(model, registry, **{k: v for k, v in options.items() if k != "device_id"})
        self.created.append(options.get("device_id"))
        return runtime

    @hookimpl
    def rknn_targets(self):
        return [Target(self.name, self.family, ("rk3588", "rk3588s"), self._runtime if self.create else None,
                       doc="test chip target")]


def _eps(*names: str) -> list[importlib.metadata.EntryPoint]:
    return [ep for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT) if ep.name in names]


@pytest.fixture
def relu(tmp_path):
    x = np.random.default_rng(3).standard_normal((1, 3, 4, 4)).astype(np.float32)
    return save_model(single_op("Relu", {"x": x}), str(tmp_path)), x


def _use_registry(monkeypatch, *extra, entry_points=None) -> None:
    """Make every new RKNN() work on a registry of the installed plugins plus ``extra`` (name, plugin) pairs."""
    monkeypatch.setattr(plugins, "_default", Registry(*new_plugin_manager(tuple(extra), entry_points)))


def test_installed_chips_come_from_the_chip_plugins():
    registry = Registry(*new_plugin_manager(entry_points=_eps("core", "targets", "target_rk18xx", "target_rv11xx")))
    assert platform_families(registry) == {"rk1806": "rk1808", "rk1808": "rk1808", "rk3399pro": "rk1808",
                                           "rv1109": "rv1126", "rv1126": "rv1126"}
    assert {registry.origin("targets", n) for n in ("rk1806", "rk1808", "rk3399pro")} == {"target_rk18xx"}
    assert {registry.origin("targets", n) for n in ("rv1109", "rv1126")} == {"target_rv11xx"}
    assert platform_families(Registry(*new_plugin_manager(entry_points=_eps("core", "targets")))) == {}
    without = Registry(*new_plugin_manager(entry_points=_eps("core", "onnx")))
    assert platform_families(without) == {}
    with pytest.raises(RknnError, match=r"config target_platform \['rk1808'\] is unknown; no installed target "
                                        r"plugin declares any chip .*pip install plugins/targets"):
        check_platforms("RK1808", without)


def test_vendor_platforms_and_the_default_keep_working(relu, tmp_path, capsys, monkeypatch):
    path, x = relu
    # without the device plugin (rknn-server), a chip target says a device plugin is needed
    _use_registry(monkeypatch, entry_points=[ep for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT)
                                             if ep.name != "server"])
    rknn = RKNN()
    rknn.config(target_platform=["RV1109", "rv1126"])
    assert rknn.load_onnx(path) == 0 and rknn.build(do_quantization=False) == 0
    assert rknn._tk.model.target_platform == ["rv1109", "rv1126"]
    assert rknn.init_runtime(target="rk1808") == -1
    assert "the model was built for rv1109, rv1126 (family rv1126), which cannot run on rk1808" in last_error(capsys)
    assert rknn.init_runtime(target="rv1126") == -1
    assert last_error(capsys) == ("E init_runtime: running on a connected rv1126 needs a device target and transport "
                              "plugin; none is installed")
    default = RKNN()
    assert default.load_onnx(path) == 0 and default.build(do_quantization=False) == 0
    assert default._tk.model.target_platform == ["rk1808"]
    assert default.init_runtime(target="rk3399pro") == -1
    assert "running on a connected rk3399pro needs a device target" in last_error(capsys)


def test_unknown_platform_lists_the_installed_ones(capsys):
    rknn = RKNN()
    rknn.config(target_platform=["rk9999"])
    assert last_error(capsys) == ("E config target_platform ['rk9999'] is unknown; the installed target plugins serve "
                              "rk1806, rk1808, rk3399pro, rv1109, rv1126")
    rknn.config(target_platform=["rk1808", "rv1126"])
    assert last_error(capsys) == ("E config target_platform ['rk1808', 'rv1126'] mixes incompatible chip families "
                              "(rk1808 family: rk1806, rk1808, rk3399pro; rv1126 family: rv1109, rv1126); "
                              "one model serves one family")


def test_a_target_plugin_adds_a_chip_without_editing_the_core(relu, tmp_path, monkeypatch, capsys):
    target = Rk3588Plugin()
    _use_registry(monkeypatch, ("rk3588", target))
    path, x = relu
    rknn = RKNN()
    families = rknn.list_support_target_platform()
    assert families == {"rk1808 family": ["rk1806", "rk1808", "rk3399pro"], "rk3588 family": ["rk3588", "rk3588s"],
                        "rv1126 family": ["rv1109", "rv1126"]}
    assert "rk3588 family: rk3588, rk3588s" in capsys.readouterr().out
    rknn.config(target_platform=["RK3588S"])
    assert rknn.load_onnx(path) == 0 and rknn.build(do_quantization=False) == 0
    exported = str(tmp_path / "rk3588.rknn")
    assert rknn.export_rknn(exported) == 0
    assert fileformat.load(exported).target_platform == ["rk3588s"]
    assert rknn.list_support_target_platform(rknn_model=exported) == {"filled_target_platform": ["rk3588s"],
                                                                      "support_target_platform": ["rk3588", "rk3588s"]}
    assert rknn.init_runtime(target="rk3588", device_id="board-7") == 0
    assert target.created == ["board-7"]
    out = rknn.inference([x], data_type="float32", data_format="nchw")
    assert_close(out, run_ort(path, {"x": x}))
    assert rknn.init_runtime(target="rv1126") == -1
    assert "which cannot run on rv1126 (family rv1126)" in last_error(capsys)
    rknn.release()


def test_a_model_for_a_plugin_chip_names_the_plugin_when_it_is_gone(relu, tmp_path, monkeypatch, capsys):
    _use_registry(monkeypatch, ("rk3588", Rk3588Plugin()))
    path, _ = relu
    rknn = RKNN()
    rknn.config(target_platform="rk3588")
    assert rknn.load_onnx(path) == 0 and rknn.build(do_quantization=False) == 0
    exported = str(tmp_path / "m.rknn")
    assert rknn.export_rknn(exported) == 0
    _use_registry(monkeypatch)
    again = RKNN()
    assert again.list_support_target_platform(rknn_model=exported) is None
    assert last_error(capsys) == (f"E list_support_target_platform: '{exported}' uses target platform 'rk3588' from "
                              f"plugin 'rk3588', which is not loaded here")
    assert again.load_rknn(exported) == -1
    assert "E load_rknn:" in last_error(capsys)


def test_two_plugins_disagreeing_on_a_family_are_named(monkeypatch, capsys):
    _use_registry(monkeypatch, ("rk3588", Rk3588Plugin()), ("other", Rk3588Plugin("rk35xx", False, "rk35xx")))
    RKNN().config(target_platform="rk3588")
    message = last_error(capsys)
    assert "platform 'rk3588' is in family 'rk3588'" in message and "'rk35xx'" in message
    assert "(plugin 'rk3588')" in message and "(plugin 'other')" in message


def test_a_chip_declared_twice_in_one_family_runs_on_the_runnable_target(relu, monkeypatch):
    """A catalogue entry (no runtime) and a device target may declare the same chip."""
    runnable = Rk3588Plugin()
    _use_registry(monkeypatch, ("catalogue", Rk3588Plugin(create=False, name="rk3588-chips")), ("device", runnable))
    path, x = relu
    rknn = RKNN()
    rknn.config(target_platform="rk3588")
    assert rknn.load_onnx(path) == 0 and rknn.build(do_quantization=False) == 0
    assert rknn.init_runtime(target="rk3588") == 0 and runnable.created == [None]
    rknn.release()
