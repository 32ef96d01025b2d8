"""Finding plugins (entry-point group ``rknn``) and collecting their records into registries."""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import types
from collections.abc import Iterable
from typing import Any

import attrs
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
                    broken[plugin_package(impl.plugin, plugin_name)] = f"{type(exc).__name__}: {exc}"
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

    def supplier(self, kind: str, name: str) -> Supplier:
        """The plugin that supplied a record, with the distribution and version that installed it."""
        plugin = self.origin(kind, name)
        return Supplier(plugin, *entry_point_distribution(self.pm.entry_points.get(plugin)))

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


def plugin_package(plugin: Any, fallback: str) -> str:
    """The top-level import package of a plugin module or object (``rknn_onnx``)."""
    module = getattr(plugin, "__name__", None) if isinstance(plugin, types.ModuleType) else None
    module = module or getattr(type(plugin), "__module__", None) or fallback
    return module.split(".")[0]


class PluginManager(pluggy.PluginManager):
    """pluggy's manager for the ``rknn`` project; remembers the entry point each plugin came from."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.entry_points: dict[str, importlib.metadata.EntryPoint] = {}  # every one tried, loaded or not


@attrs.frozen
class Supplier:
    """Who supplied a record: the plugin (entry-point name) and, when installed, its distribution."""

    plugin: str
    distribution: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.distribution} {self.version}" if self.distribution else f"plugin '{self.plugin}'"


def entry_point_distribution(ep: importlib.metadata.EntryPoint | None) -> tuple[str | None, str | None]:
    """The distribution name and version that declared an entry point (``None``s when unknown)."""
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def api_range(plugin: Any) -> tuple[int, int] | None:
    """The plugin API versions a plugin declares (``RKNN_PLUGIN_API = (min, max)``), ``None`` if undeclared."""
    declared = getattr(plugin, "RKNN_PLUGIN_API", None)
    if declared is None:
        return None
    if (not isinstance(declared, (tuple, list)) or len(declared) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in declared)):
        raise TypeError(f"RKNN_PLUGIN_API must be a (min, max) pair of integers, got {declared!r}")
    return int(declared[0]), int(declared[1])


def _incompatibility(plugin: Any, name: str, ep: importlib.metadata.EntryPoint | None) -> str | None:
    """Why a plugin cannot work with this core's plugin API, or ``None`` when it can (or does not say)."""
    declared = api_range(plugin)
    if declared is None or declared[0] <= hookspecs.PLUGIN_API <= declared[1]:
        return None
    dist, version = entry_point_distribution(ep)
    source = f" ({dist} {version})" if dist else ""
    return (f"plugin '{name}'{source} supports plugin API {declared[0]}..{declared[1]}, but this rknn-core "
            f"has plugin API {hookspecs.PLUGIN_API}; it is skipped: install a version of "
            f"{dist or 'it'} made for plugin API {hookspecs.PLUGIN_API}")


def new_plugin_manager(extra_plugins: tuple = (), entry_points: Iterable[Any] | None = None,
                       ) -> tuple[PluginManager, dict[str, str]]:
    """A plugin manager with every installed ``rknn`` entry point; broken plugins are skipped.

    ``entry_points`` replaces the installed ones (tests pass their own ``EntryPoint`` objects);
    ``extra_plugins`` are ``(name, plugin)`` pairs registered after them. A plugin declaring a
    ``RKNN_PLUGIN_API`` range without :data:`hookspecs.PLUGIN_API` is skipped like a broken one.
    """
    pm = PluginManager()
    broken: dict[str, str] = {}
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=hookspecs.PROJECT)
    for ep in sorted(entry_points, key=lambda e: e.name):
        if pm.has_plugin(ep.name):
            continue
        pm.entry_points[ep.name] = ep
        _register(pm, broken, ep.name, ep.load, ep)
    if not pm.has_plugin("core"):  # running from a source tree without the entry point installed
        pm.register(importlib.import_module("rknn_core.builtin"), name="core")
    for name, plugin in extra_plugins:
        _register(pm, broken, name, lambda plugin=plugin: plugin, None)
    return pm, broken


def _register(pm: PluginManager, broken: dict[str, str], name: str, load: Any,
              ep: importlib.metadata.EntryPoint | None) -> None:
    """Load and register one plugin; a failing or incompatible one is recorded in ``broken`` and skipped."""
    where = f" ({ep.value})" if ep is not None else ""
    try:
        plugin = load()
        problem = _incompatibility(plugin, name, ep)
    except Exception as exc:  # a broken plugin must not take the toolkit down
        broken[entry_point_package(ep) if ep is not None else name] = f"{type(exc).__name__}: {exc}"
        log.warning("plugin '%s'%s failed to load and is skipped: %s", name, where, exc)
        return
    if problem is not None:
        broken[plugin_package(plugin, name)] = problem
        log.warning("%s", problem)
        return
    pm.register(plugin, name=name)
    try:  # a misspelled hook (rknn_op) would otherwise be ignored silently
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        pm.unregister(name=name)
        broken[plugin_package(plugin, name)] = f"{type(exc).__name__}: {exc}"
        log.warning("plugin '%s'%s failed to load and is skipped: %s", name, where, exc)


def entry_point_package(ep: importlib.metadata.EntryPoint) -> str:
    """The top-level import package an entry point names (``rknn_onnx`` for ``rknn_onnx.plugin``),
    which keys ``Registry.broken``."""
    return ep.value.split(".")[0].split(":")[0]


_default: Registry | None = None


def default_registry() -> Registry:
    """The registry of installed plugins, built on first use (never at import time)."""
    global _default
    if _default is None:
        _default = Registry(*new_plugin_manager())
    return _default
