"""``rknn plugins`` and the plugin API version: listing the installed plugins, skipping incompatible ones."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import logging
import os
import pathlib
import subprocess
import sys

import pytest
from fake_dist import forget_modules, make_distribution

from rknn_core import hookspecs
from rknn_core.plugin_list import describe_plugins, format_plugins
from rknn_core.plugins import KINDS, Registry, api_range, default_registry, entry_point_package, new_plugin_manager
from rknn_core.testing import source_packages

RKNN_CLI = pathlib.Path(sys.executable).with_name("rknn")
ROOT = pathlib.Path(__file__).resolve().parent.parent


def _repository_plugins() -> dict[str, str]:
    """Entry-point name -> module of the installed plugins this repository ships (the core's also when the
    tests run outside the source tree), so a third-party plugin installed next to them is not judged here."""
    ours = source_packages(ROOT) | {"rknn_core"}
    return {ep.name: ep.value for ep in _installed() if entry_point_package(ep) in ours}


PLUGIN = """
from rknn_core.hookspecs import hookimpl
from rknn_core.ir import TensorInfo
from rknn_core.records import OpDef

{declaration}

@hookimpl
def rknn_ops():
    return [OpDef("{op}", lambda i, a: [TensorInfo(i[0].shape, i[0].dtype)], lambda i, a: [i[0] * 2])]
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on ``sys.path`` for fake distributions; their modules are forgotten afterwards."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for package in ("rknn_fake_future", "rknn_fake_plain", "rknn_fake_wide", "rknn_fake_odd"):
        forget_modules(package)


def _future_plugin(site: pathlib.Path, declaration: str = "RKNN_PLUGIN_API = (2, 3)"):
    return make_distribution(site, "rknn-fake-future", "0.3.0", "rknn_fake_future",
                             PLUGIN.format(declaration=declaration, op="FutureOp"), "future")


def _installed() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=hookspecs.PROJECT))


def _run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [str(RKNN_CLI)] if RKNN_CLI.exists() else [sys.executable, "-m", "rknn_core.cli"]
    return subprocess.run([*command, "plugins", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


# --- the listing of the installed plugins ----------------------------------------------------------------

def test_cli_lists_every_installed_plugin_with_its_distribution_and_records():
    result = _run_cli()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"rknn-core {importlib.metadata.version('rknn-core')}, plugin API {hookspecs.PLUGIN_API}"
    registry = default_registry()
    ours = _repository_plugins()
    for ep in _installed():
        header = next((line for line in lines if not line[:1].isspace() and line.split()[:1] == [ep.name]), None)
        assert header is not None, f"plugin '{ep.name}' is not listed:\n{result.stdout}"
        assert f"{ep.dist.metadata['Name']} {ep.dist.version}" in header and ep.value in header
        if ep.name in ours:  # every plugin of this repository declares its range
            assert header.endswith(f"api {hookspecs.PLUGIN_API}..{hookspecs.PLUGIN_API}"), header
    core_ops = [n for n in registry.table("ops") if registry.origin("ops", n) == "core"]
    assert f"    ops ({len(core_ops)}): Abs, Add, " in result.stdout and "more)" in result.stdout
    assert "    frontends (1): onnx" in result.stdout
    # the chips are declared by their own target plugins, one compatibility family each
    assert "    platforms (3): rk1806, rk1808, rk3399pro" in result.stdout
    assert "    platforms (2): rv1109, rv1126" in result.stdout
    skipped = result.stdout.split("\nskipped")[1]
    assert not any(f"  {name} (" in skipped for name in ours), skipped


def test_cli_json_matches_the_registry():
    result = _run_cli("--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert listing["core"] == {"version": importlib.metadata.version("rknn-core"), "plugin_api": hookspecs.PLUGIN_API}
    assert not {p["name"] for p in listing["skipped"]} & set(_repository_plugins())
    registry = default_registry()
    by_name = {p["name"]: p for p in listing["plugins"]}
    assert set(by_name) == {ep.name for ep in _installed()}
    for name, plugin in by_name.items():
        expected = {kind: sorted(n for n in registry.table(kind) if registry.origin(kind, n) == name) for kind in KINDS}
        assert plugin["provides"] == {k: v for k, v in expected.items() if v}, name
        assert plugin["problem"] is None
    assert by_name["onnx"]["distribution"] == "rknn-onnx"
    assert by_name["targets"]["platforms"] == []  # the simulator serves no platform name of its own
    assert by_name["target_rk18xx"]["platforms"] == ["rk1806", "rk1808", "rk3399pro"]
    assert by_name["target_rv11xx"]["platforms"] == ["rv1109", "rv1126"]


def test_cli_shows_an_incompatible_installed_plugin_as_skipped(site):
    _future_plugin(site)
    result = _run_cli(env={"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])})
    assert result.returncode == 0, result.stderr
    reason = ("plugin 'future' (rknn-fake-future 0.3.0) supports plugin API 2..3, but this rknn-core has plugin "
              "API 1; it is skipped: install a version of rknn-fake-future made for plugin API 1")
    assert f"W {reason}\n" in result.stderr
    assert result.stdout.endswith(f"skipped (1):\n  future (rknn-fake-future 0.3.0, rknn_fake_future.plugin): {reason}\n")


# --- the plugin API version -------------------------------------------------------------------------------

def test_incompatible_plugin_is_skipped_with_a_warning(site, rknn_log):
    eps = _future_plugin(site)
    assert eps[0].dist.metadata["Name"] == "rknn-fake-future"
    registry = Registry(*new_plugin_manager(entry_points=[*eps, *_installed()]))
    assert registry.op("FutureOp") is None and registry.op("Relu") is not None
    assert not registry.pm.has_plugin("future")
    assert "supports plugin API 2..3, but this rknn-core has plugin API 1" in registry.broken["rknn_fake_future"]
    warnings = [r.getMessage() for r in rknn_log if r.levelno == logging.WARNING]
    assert any(w.startswith("plugin 'future' (rknn-fake-future 0.3.0) supports plugin API 2..3") for w in warnings)
    skipped = [i for i in describe_plugins(registry) if i.api is None]
    assert [(i.name, i.distribution, i.version, i.module) for i in skipped] == [
        ("future", "rknn-fake-future", "0.3.0", "rknn_fake_future.plugin")]


def test_entry_point_to_a_module_attribute_is_checked(site, rknn_log):
    """``module:attr`` entry points: the API range is read from the object the entry point names."""
    make_distribution(site, "rknn-fake-odd", "1.0", "rknn_fake_odd", """
        class Plugin:
            RKNN_PLUGIN_API = (5, 9)

        PLUGIN = Plugin()
    """, "odd")
    ep = importlib.metadata.EntryPoint("odd", "rknn_fake_odd.plugin:PLUGIN", hookspecs.PROJECT)
    registry = Registry(*new_plugin_manager(entry_points=[ep]))
    assert not registry.pm.has_plugin("odd")
    assert registry.broken["rknn_fake_odd"].startswith("plugin 'odd' supports plugin API 5..9, but this rknn-core")
    assert any("plugin 'odd' supports plugin API 5..9" in r.getMessage() for r in rknn_log)


@pytest.mark.parametrize("declaration, api", [("", "undeclared"), ("RKNN_PLUGIN_API = (0, 4)", "0..4"),
                                              ("RKNN_PLUGIN_API = [1, 1]", "1..1")])
def test_compatible_or_undeclared_plugin_is_accepted(site, declaration, api):
    eps = make_distribution(site, "rknn-fake-plain", "0.1.0", "rknn_fake_plain",
                            PLUGIN.format(declaration=declaration, op="PlainOp"), "plain")
    registry = Registry(*new_plugin_manager(entry_points=[*eps, *_installed()]))
    assert registry.origin("ops", "PlainOp") == "plain"
    info = next(i for i in describe_plugins(registry) if i.name == "plain")
    assert (info.api, info.distribution, info.provides) == (api, "rknn-fake-plain", {"ops": ["PlainOp"]})
    assert "rknn-fake-plain 0.1.0  rknn_fake_plain.plugin" in format_plugins([info])


@pytest.mark.parametrize("declaration", ["RKNN_PLUGIN_API = 1", "RKNN_PLUGIN_API = (1, '2')",
                                         "RKNN_PLUGIN_API = (1, 2, 3)"])
def test_malformed_api_declaration_is_skipped(site, declaration, rknn_log):
    eps = make_distribution(site, "rknn-fake-wide", "0.1.0", "rknn_fake_wide",
                            PLUGIN.format(declaration=declaration, op="WideOp"), "wide")
    registry = Registry(*new_plugin_manager(entry_points=eps))
    assert registry.op("WideOp") is None
    assert registry.broken["rknn_fake_wide"].startswith("TypeError: RKNN_PLUGIN_API must be a (min, max) pair")
    assert any("plugin 'wide' (rknn_fake_wide.plugin) failed to load" in r.getMessage() for r in rknn_log)


def test_every_plugin_of_this_repository_declares_the_current_api():
    ours = _repository_plugins()
    assert "core" in ours
    if (ROOT / "plugins").is_dir():  # in the source tree every installed plugin of it is judged
        assert {"onnx", "targets"} <= set(ours)
    for name, module in ours.items():
        declared = api_range(importlib.import_module(module))
        assert declared is not None and declared[0] <= hookspecs.PLUGIN_API <= declared[1], name
