"""What ``rknn plugins`` shows: every installed plugin, its distribution, API range and records, and the
skipped ones with why."""

from __future__ import annotations

import importlib.metadata
import types
from typing import Any

import attrs

from rknn_core import hookspecs
from rknn_core.plugins import KINDS, Registry, api_range, entry_point_distribution, entry_point_package, plugin_package

SHOWN_NAMES = 6  # longer lists of record names are cut to this many plus a count


@attrs.frozen
class PluginInfo:
    """One plugin as ``rknn plugins`` lists it; ``problem`` says why it was (partly) skipped."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    api: str | None  # "1..1", "undeclared", or None when the plugin could not be loaded
    provides: dict[str, list[str]]  # kind -> names of its records
    platforms: list[str]  # the target_platform names its targets declare
    problem: str | None = None


def core_version() -> str:
    """The installed rknn-core version (``unknown`` when run from a source tree without metadata)."""
    try:
        return importlib.metadata.version("rknn-core")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def describe_plugins(registry: Registry) -> list[PluginInfo]:
    """The loaded plugins (by name), then the entry points that were skipped."""
    pm = registry.pm
    infos = []
    for name, plugin in sorted(pm.list_name_plugin()):
        ep = pm.entry_points.get(name)
        declared = api_range(plugin)
        provides = {kind: sorted(n for n in registry.table(kind) if registry.origin(kind, n) == name) for kind in KINDS}
        infos.append(PluginInfo(name, ep.value if ep is not None else _module_of(plugin),
                                *entry_point_distribution(ep),
                                "undeclared" if declared is None else f"{declared[0]}..{declared[1]}",
                                {kind: names for kind, names in provides.items() if names},
                                sorted({p for t in provides["targets"] for p in registry.table("targets")[t].platforms}),
                                registry.broken.get(plugin_package(plugin, name))))
    for name, ep in sorted(pm.entry_points.items()):
        if not pm.has_plugin(name):
            infos.append(PluginInfo(name, ep.value, *entry_point_distribution(ep), None, {}, [],
                                    registry.broken.get(entry_point_package(ep), "not loaded")))
    return infos


def _module_of(plugin: Any) -> str:
    return plugin.__name__ if isinstance(plugin, types.ModuleType) else type(plugin).__module__


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN_NAMES])
    return shown if len(names) <= SHOWN_NAMES else f"{shown}, ... ({len(names) - SHOWN_NAMES} more)"


def _distribution(info: PluginInfo) -> str:
    return f"{info.distribution} {info.version}" if info.distribution else "(no distribution)"


def format_plugins(infos: list[PluginInfo]) -> str:
    """The listing as text: one line per plugin (name, distribution, module, API range), one indented
    line per kind of record it provides; then the skipped plugins with why."""
    lines = [f"rknn-core {core_version()}, plugin API {hookspecs.PLUGIN_API}"]
    loaded = [i for i in infos if i.api is not None]
    skipped = [i for i in infos if i.api is None]
    widths = [max((len(text(i)) for i in infos), default=0)
              for text in (lambda i: i.name, _distribution, lambda i: i.module)]
    for info in loaded:
        lines.append(f"{info.name:<{widths[0]}}  {_distribution(info):<{widths[1]}}  {info.module:<{widths[2]}}  "
                     f"api {info.api}")
        lines.extend(f"    {kind} ({len(names)}): {_names(names)}" for kind, names in info.provides.items())
        if info.platforms:
            lines.append(f"    platforms ({len(info.platforms)}): {_names(info.platforms)}")
        if info.problem:
            lines.append(f"    partly skipped: {info.problem}")
    lines.append(f"skipped ({len(skipped)}):" if skipped else "skipped: none")
    lines.extend(f"  {i.name} ({_distribution(i)}, {i.module}): {i.problem}" for i in skipped)
    return "\n".join(lines) + "\n"


def plugins_json(infos: list[PluginInfo]) -> dict[str, Any]:
    """The listing as a JSON-ready dict: the core's version and API, the loaded and the skipped plugins."""
    rows = [attrs.asdict(i) for i in infos]
    return {"core": {"version": core_version(), "plugin_api": hookspecs.PLUGIN_API},
            "plugins": [r for r in rows if r["api"] is not None],
            "skipped": [r for r in rows if r["api"] is None]}
