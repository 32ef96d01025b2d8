"""Registries for testing a plugin: the installed plugins plus the one under test, and the records a
set of packages supplied (so a project's meta-tests judge only its own plugins)."""

from __future__ import annotations

import importlib
import importlib.metadata
import types
from collections.abc import Iterable
from typing import Any

from rknn_core import hookspecs
from rknn_core.plugins import Registry, _package_of, new_plugin_manager


def registry_with(plugin: Any, name: str = "under_test", exclude: Iterable[str] = (),
                  installed: bool = True) -> Registry:
    """A registry of the installed plugins plus ``plugin`` (a module, a dotted module name or an object with
    ``hookimpl`` methods) registered as ``name``.

    ``exclude`` names installed entry points to leave out; ``installed=False`` leaves out all of them but
    the core. An installed entry point naming the same module (or called ``name``) is replaced by it.
    """
    if isinstance(plugin, str):
        plugin = importlib.import_module(plugin)
    module = plugin.__name__ if isinstance(plugin, types.ModuleType) else None
    skip = {*exclude, name}
    found = importlib.metadata.entry_points(group=hookspecs.PROJECT) if installed else []
    chosen = [ep for ep in found if ep.name == "core" or (ep.name not in skip and ep.value != module)]
    return Registry(*new_plugin_manager(extra_plugins=((name, plugin),), entry_points=chosen))


def plugin_package(registry: Registry, kind: str, key: str) -> str | None:
    """The top-level import package of the plugin that supplied a record (``None`` for records added at
    run time, e.g. by ``register_op``)."""
    plugin = registry.pm.get_plugin(registry.origin(kind, key))
    return None if plugin is None else _package_of(plugin, "")


def records_from(registry: Registry, kind: str, packages: Iterable[str]) -> dict[str, Any]:
    """The records of one kind (by key) whose plugin lives in one of ``packages`` (top-level names)."""
    packages = set(packages)
    return {key: record for key, record in registry.table(kind).items()
            if plugin_package(registry, kind, key) in packages}
