"""Which plugins a model depends on: recorded in the .rknn file at export, checked again at load.

For every op the graph uses, the quantizer it was built with and each target platform, the file
names the plugin (entry point) and the distribution and version that supplied it, the core's own
built-ins included (as ``rknn-core``). ``load_rknn`` on a machine missing one of them fails naming
the package to install. Files written before provenance existed carry none and load as before.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import attrs

from rknn_core.errors import RknnError
from rknn_core.model import RknnModel
from rknn_core.platforms import platform_families, targets_for
from rknn_core.plugins import Registry, Supplier, entry_point_package

WHAT = {"ops": "op", "quantizers": "quantizer", "targets": "target platform"}


def collect(model: RknnModel, registry: Registry) -> dict[str, dict[str, dict[str, Any]]]:
    """Kind -> name -> supplier (``plugin``, ``distribution``, ``version``) of what ``model`` uses.

    A target platform also records its ``target`` and ``family``: the target that models the chip
    (``Target.chip``) when one does, since that plugin defines the platform (a device target, such as
    rknn-server's, only reaches boards of it). Names no installed plugin knows are left out (a loaded
    old model re-exported, say).
    """
    used = {"ops": sorted({node.op for node in model.graph.nodes}),
            "quantizers": [model.quantized_dtype] if model.quantized_dtype else []}
    found: dict[str, dict[str, dict[str, Any]]] = {
        kind: {name: attrs.asdict(registry.supplier(kind, name)) for name in names if name in registry.table(kind)}
        for kind, names in used.items()}
    found["targets"] = {}
    for platform in model.target_platform:
        serving = sorted(targets_for(platform, registry), key=lambda t: t.chip is None)
        if serving:
            target = serving[0]
            found["targets"][platform] = {**attrs.asdict(registry.supplier("targets", target.name)),
                                          "target": target.name, "family": target.family}
    return {kind: entries for kind, entries in found.items() if entries}


def check_installed(model: RknnModel, registry: Registry, path: str, caller: str) -> None:
    """Refuse a model that uses an op, quantizer or target platform no installed plugin provides,
    naming the distribution (and version) that supplied it when the model was exported."""
    available = {"ops": registry.table("ops"), "quantizers": registry.table("quantizers"),
                 "targets": platform_families(registry)}
    missing = [_describe(kind, name, entry, registry)
               for kind, entries in model.provenance.items() if kind in WHAT
               for name, entry in entries.items() if name not in available[kind]]
    if missing:
        raise RknnError(f"{caller}: '{path}' uses {'; '.join(missing)}")


def _describe(kind: str, name: str, entry: dict[str, Any], registry: Registry) -> str:
    """``op 'Mish' from rknn-op-example 0.1.0, which is not installed: pip install rknn-op-example``."""
    supplier = Supplier(entry.get("plugin", "?"), entry.get("distribution"), entry.get("version"))
    return f"{WHAT[kind]} '{name}' from {supplier}, {_status(supplier, registry)}"


def _status(supplier: Supplier, registry: Registry) -> str:
    """Why the supplier's record is not here, and what to do about it."""
    dist = supplier.distribution
    if dist is None:
        return "which is not loaded here"
    try:
        installed = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return f"which is not installed: pip install {dist}"
    ep = registry.pm.entry_points.get(supplier.plugin)
    package = entry_point_package(ep) if ep is not None else None
    if package in registry.broken:
        return f"which is installed but was skipped: {registry.broken[package]}"
    if installed != supplier.version:
        return f"but the installed {dist} {installed} does not provide it: pip install '{dist}=={supplier.version}'"
    return f"which is installed but does not provide it (is its plugin '{supplier.plugin}' disabled?)"
