"""A real installed distribution for plugin tests: a package plus its ``.dist-info`` (METADATA and
``entry_points.txt``) in a folder of the test's own, so ``EntryPoint.dist`` names it as pip would."""

from __future__ import annotations

import importlib.metadata
import pathlib
import sys
import textwrap


def make_distribution(site: pathlib.Path, dist: str, version: str, package: str, plugin_source: str,
                      entry_name: str) -> list[importlib.metadata.EntryPoint]:
    """Write ``package/plugin.py`` and ``<dist>-<version>.dist-info`` under ``site``; return its ``rknn``
    entry points (each with ``.dist`` set). ``site`` must be on ``sys.path`` for the plugin to import."""
    site.mkdir(parents=True, exist_ok=True)
    (site / package).mkdir(exist_ok=True)
    (site / package / "__init__.py").write_text("")
    (site / package / "plugin.py").write_text(textwrap.dedent(plugin_source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[rknn]\n{entry_name} = {package}.plugin\n")
    return list(importlib.metadata.Distribution.at(info).entry_points.select(group="rknn"))


def forget_modules(package: str) -> None:
    """Drop an imported test package so the next import reads its files again."""
    for name in [m for m in sys.modules if m.split(".")[0] == package]:
        del sys.modules[name]
