"""Registries for testing a plugin: the installed plugins plus the one under test, and the records a
set of packages supplied (so a project's meta-tests judge only its own plugins)."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import types
from collections.abc import Iterable
from typing import Any

from rknn_core import hookspecs
from rknn_core.plugins import Registry, new_plugin_manager, plugin_package


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


def record_package(registry: Registry, kind: str, key: str) -> str | None:
    """The top-level import package of the plugin that supplied a record (``None`` for records added at
    run time, e.g. by ``register_op``)."""
    plugin = registry.pm.get_plugin(registry.origin(kind, key))
    return None if plugin is None else plugin_package(plugin, "")


def records_from(registry: Registry, kind: str, packages: Iterable[str]) -> dict[str, Any]:
    """The records of one kind (by key) whose plugin lives in one of ``packages`` (top-level names)."""
    packages = set(packages)
    return {key: record for key, record in registry.table(kind).items()
            if record_package(registry, kind, key) in packages}


def source_packages(root: str | os.PathLike) -> set[str]:
    """The top-level import packages whose source lives under ``root`` in ``src`` layouts
    (``root/**/src/<package>/`` holding ``.py`` files; hidden folders such as ``.venv`` are not searched),
    so a project's meta-tests can judge only its own plugins:
    ``records_from(default_registry(), "ops", source_packages(repo_root))``."""
    found = set()
    for folder, dirs, _files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("__pycache__", "node_modules")]
        if os.path.basename(folder) == "src":
            found.update(d for d in dirs if any(f.endswith(".py") for f in os.listdir(os.path.join(folder, d))))
    return found
