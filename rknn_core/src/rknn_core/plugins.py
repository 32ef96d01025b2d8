"""Finding plugins (entry-point group ``rknn``) and collecting their records into registries."""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import types
from collections.abc import Iterable
from typing import Any

import pluggy

from rknn_core import hookspecs, records
from rknn_core.errors import RknnError

log = logging.getLogger("rknn")

KINDS = {
    "frontends": "rknn_frontends",
    "ops": "rknn_ops",
    "converters": "rknn_converters",
    "passes": "rknn_passes",
    "quantizers": "rknn_quantizers",
    "targets": "rknn_targets",
    "transports": "rknn_transports",
}
RECORD_TYPES = {
    "frontends": records.Frontend,
    "ops": records.OpDef,
    "converters": records.Converter,
    "passes": records.PassSpec,
    "quantizers": records.Quantizer,
    "targets": records.Target,
    "transports": records.Transport,
}

# Which package provides which loader, for the "pip install ..." hint.
LOADER_PACKAGES = {
    "load_onnx": "rknn_onnx",
    "load_tensorflow": "rknn_tf",
    "load_tflite": "rknn_tflite",
    "load_caffe": "rknn_caffe",
    "load_darknet": "rknn_darknet",
    "load_pytorch": "rknn_torch",
    "load_mxnet": "rknn_mxnet",
}


def install_hint(package_dir: str) -> str:
    """The pip command that installs a plugin of this repository."""
    dist = package_dir.replace("_", "-")
    return f"the {dist} plugin: pip install plugins/{package_dir}"


class Registry:
    """Records of every kind, keyed by name, each remembering the plugin that supplied it."""

    def __init__(self, pm: pluggy.PluginManager, broken: dict[str, str]):
        self.pm = pm
        self.broken = broken
        self._tables: dict[str, dict[str, Any]] = {}
        self._origin: dict[str, dict[str, str]] = {}
        for kind, hook in KINDS.items():
            table: dict[str, Any] = {}
            origin: dict[str, str] = {}
            for impl in getattr(pm.hook, hook).get_hookimpls():
                plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
                try:  # a plugin whose hook fails (or returns junk) is skipped, like one that fails to import
                    found = list(impl.function() or ())
                    wrong = [r for r in found if not isinstance(r, RECORD_TYPES[kind])]
                    if wrong:
                        raise TypeError(f"{hook} returned {type(wrong[0]).__name__}, not "
                                        f"{RECORD_TYPES[kind].__name__}")
                except Exception as exc:
                    broken[_package_of(impl.plugin, plugin_name)] = f"{type(exc).__name__}: {exc}"
                    log.warning("plugin '%s' failed in %s and is skipped: %s", plugin_name, hook, exc)
                    continue
                for record in found:
                    self._add(kind, table, origin, record, plugin_name)
            self._tables[kind] = table
            self._origin[kind] = origin

    @staticmethod
    def _add(kind: str, table: dict, origin: dict, record: Any, plugin_name: str) -> None:
        key = record.key if kind == "ops" else record.name
        if key in table:
            raise RknnError(
                f"{kind[:-1]} '{key}' is provided twice: by plugin '{origin[key]}' "
                f"and by plugin '{plugin_name}'; uninstall one of them"
            )
        table[key] = record
        origin[key] = plugin_name

    def table(self, kind: str) -> dict[str, Any]:
        """All records of one kind (``ops``, ``frontends`` ...) by name."""
        return self._tables[kind]

    def origin(self, kind: str, name: str) -> str:
        """The plugin that supplied a record."""
        return self._origin[kind][name]

    def add(self, kind: str, record: Any, plugin_name: str) -> None:
        """Add one record at run time (``register_op``); a clash is refused like at load."""
        self._add(kind, self._tables[kind], self._origin[kind], record, plugin_name)

    def copy(self) -> Registry:
        """A registry sharing the plugins but with its own tables, for per-session additions."""
        new = object.__new__(Registry)
        new.pm, new.broken = self.pm, dict(self.broken)
        new._tables = {k: dict(v) for k, v in self._tables.items()}
        new._origin = {k: dict(v) for k, v in self._origin.items()}
        return new

    def op(self, name: str) -> Any:
        """The op definition for ``name`` (an op key: ``Conv``, ``com.example:Mish``), or ``None``."""
        return self._tables["ops"].get(name)

    def converters(self, frontend: str) -> dict[str, Any]:
        """The ``convert`` callables of one frontend, by framework op name."""
        return {c.op: c.convert for c in self._tables["converters"].values() if c.frontend == frontend}

    def frontend_for(self, loader: str) -> Any:
        """The frontend serving ``loader`` (``load_onnx``), or a clear error naming the package."""
        for frontend in self._tables["frontends"].values():
            if frontend.loader == loader:
                return frontend
        package = LOADER_PACKAGES.get(loader, loader)
        reason = f" (the installed plugin failed to load: {self.broken[package]})" if package in self.broken else ""
        raise RknnError(f"{loader} needs {install_hint(package)}{reason}")


def _package_of(plugin: Any, fallback: str) -> str:
    """The top-level import package of a plugin module or object (``rknn_onnx``)."""
    module = getattr(plugin, "__name__", None) if isinstance(plugin, types.ModuleType) else None
    module = module or getattr(type(plugin), "__module__", None) or fallback
    return module.split(".")[0]


def new_plugin_manager(extra_plugins: tuple = (), entry_points: Iterable[Any] | None = None,
                       ) -> tuple[pluggy.PluginManager, dict[str, str]]:
    """A plugin manager with every installed ``rknn`` entry point; broken plugins are skipped.

    ``entry_points`` replaces the installed ones (tests pass their own ``EntryPoint`` objects);
    ``extra_plugins`` are ``(name, plugin)`` pairs registered after them.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    broken: dict[str, str] = {}
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=hookspecs.PROJECT)
    for ep in sorted(entry_points, key=lambda e: e.name):
        if pm.has_plugin(ep.name):
            continue
        try:
            pm.register(ep.load(), name=ep.name)
            try:  # a misspelled hook (rknn_op) would otherwise be ignored silently
                pm.check_pending()
            except pluggy.PluginValidationError:
                pm.unregister(name=ep.name)
                raise
        except Exception as exc:  # a broken plugin must not take the toolkit down
            package = ep.value.split(".")[0].split(":")[0]
            broken[package] = f"{type(exc).__name__}: {exc}"
            log.warning("plugin '%s' (%s) failed to load and is skipped: %s", ep.name, ep.value, exc)
    if not pm.has_plugin("core"):  # running from a source tree without the entry point installed
        pm.register(importlib.import_module("rknn_core.builtin"), name="core")
    for name, plugin in extra_plugins:
        pm.register(plugin, name=name)
    return pm, broken


_default: Registry | None = None


def default_registry() -> Registry:
    """The registry of installed plugins, built on first use (never at import time)."""
    global _default
    if _default is None:
        _default = Registry(*new_plugin_manager())
    return _default
