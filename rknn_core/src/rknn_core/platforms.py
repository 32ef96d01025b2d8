"""Chip platforms and their families, as the installed target plugins declare them (the core keeps no list)."""

from __future__ import annotations

from typing import Any

from rknn_core.errors import RknnError
from rknn_core.plugins import Registry
from rknn_core.records import Target

SIMULATOR = "simulator"  # the target init_runtime(target=None) uses


def platform_families(registry: Registry) -> dict[str, str]:
    """Every platform an installed target declares, with its family; two plugins disagreeing is an error."""
    families: dict[str, str] = {}
    declared_by: dict[str, str] = {}
    for target in registry.table("targets").values():
        for platform in target.platforms:
            if platform in families and families[platform] != target.family:
                raise RknnError(
                    f"platform '{platform}' is in family '{families[platform]}' for target '{declared_by[platform]}' "
                    f"(plugin '{registry.origin('targets', declared_by[platform])}') but in family '{target.family}' "
                    f"for target '{target.name}' (plugin '{registry.origin('targets', target.name)}'); "
                    f"uninstall one of them")
            families[platform] = target.family
            declared_by[platform] = target.name
    return families


def _installed(families: dict[str, str]) -> str:
    if not families:
        return ("no installed target plugin declares any chip (the rknn-targets plugin declares the Rockchip "
                "chips: pip install plugins/targets)")
    return f"the installed target plugins serve {', '.join(sorted(families))}"


def family_of(platform: str, registry: Registry) -> str:
    """The family of one platform, or an error listing the installed platforms."""
    families = platform_families(registry)
    if platform not in families:
        raise RknnError(f"target platform '{platform}' is unknown; {_installed(families)}")
    return families[platform]


def check_platforms(platforms: Any, registry: Registry) -> list[str]:
    """``config(target_platform=...)``: lower-case names that installed targets declare, all of one family."""
    names = [platforms] if isinstance(platforms, str) else platforms
    if not isinstance(names, (list, tuple)) or not all(isinstance(p, str) for p in names):
        raise RknnError(f"config target_platform must be a list of platform names, e.g. ['rk1808'], got {platforms!r}")
    names = [p.lower() for p in names]
    families = platform_families(registry)
    bad = [p for p in names if p not in families]
    if not names or bad:
        raise RknnError(f"config target_platform {bad or names} is unknown; {_installed(families)}")
    groups = sorted({families[p] for p in names})
    if len(groups) > 1:
        members = "; ".join(f"{f} family: {', '.join(family_members(f, registry))}" for f in groups)
        raise RknnError(f"config target_platform {names} mixes incompatible chip families ({members}); "
                        f"one model serves one family")
    return names


def family_members(family: str, registry: Registry) -> list[str]:
    """The installed platforms of one family."""
    return sorted(p for p, f in platform_families(registry).items() if f == family)


def targets_for(platform: str, registry: Registry) -> list[Target]:
    """The targets declaring ``platform``, those that can run a model first."""
    found = [t for t in registry.table("targets").values() if platform in t.platforms]
    return sorted(found, key=lambda t: (t.create_runtime is None, t.name))


def chip_for(platforms: list[str], registry: Registry) -> Any:
    """The chip model (``Target.chip``) of the first of ``platforms`` an installed target models, or None."""
    for platform in platforms:
        for target in targets_for(platform, registry):
            if target.chip is not None:
                return target.chip
    return None


def runtime_target(target: str | None, model_platforms: list[str], registry: Registry) -> Target:
    """The target ``init_runtime(target=...)`` runs on: the simulator for ``None``, else the one runnable
    target declaring that platform, whose family must be the model's."""
    targets = registry.table("targets")
    if target is None:
        if SIMULATOR not in targets:
            raise RknnError("init_runtime: the PC simulator needs the rknn-targets plugin: pip install plugins/targets")
        return targets[SIMULATOR]
    name = str(target).lower()
    families = platform_families(registry)
    if name not in families:
        raise RknnError(f"init_runtime target '{target}' is unknown; {_installed(families)} (or None for the "
                        f"PC simulator)")
    model_families = {families[p] for p in model_platforms if p in families}
    if model_families and families[name] not in model_families:
        raise RknnError(f"init_runtime: the model was built for {', '.join(model_platforms)} (family "
                        f"{', '.join(sorted(model_families))}), which cannot run on {name} (family {families[name]}); "
                        f"build it with config(target_platform=['{name}'])")
    runnable = [t for t in targets_for(name, registry) if t.create_runtime is not None]
    if not runnable:
        raise RknnError(f"init_runtime: running on a connected {name} needs a device target and transport plugin; "
                        f"none is installed")
    if len(runnable) > 1:
        names = ", ".join(f"'{t.name}' (plugin '{registry.origin('targets', t.name)}')" for t in runnable)
        raise RknnError(f"init_runtime: {name} is served by several targets: {names}; uninstall one of them")
    return runnable[0]


def list_platforms(registry: Registry, rknn_model: str | None = None) -> dict[str, list[str]]:
    """Without a model: every installed platform by family. With one: the platforms that model runs on."""
    if rknn_model is None:
        grouped: dict[str, list[str]] = {}
        for platform, family in sorted(platform_families(registry).items()):
            grouped.setdefault(f"{family} family", []).append(platform)
        return grouped
    from rknn_core import fileformat
    from rknn_core.provenance import check_installed

    model = fileformat.load(rknn_model)
    check_installed(model, registry, rknn_model, "list_support_target_platform")
    return {"filled_target_platform": list(model.target_platform),
            "support_target_platform": family_members(family_of(model.target_platform[0], registry), registry)}
