"""Which chip platforms a model (or the toolkit) supports, grouped by compatible family."""

from __future__ import annotations

from rknn_core.config import FAMILIES


def family_members(family: str) -> list[str]:
    return [p for p, f in FAMILIES.items() if f == family]


def list_platforms(rknn_model: str | None = None) -> dict[str, list[str]]:
    """Without a model: every platform by family. With one: the platforms that model runs on."""
    if rknn_model is None:
        families: dict[str, list[str]] = {}
        for platform, family in FAMILIES.items():
            families.setdefault(f"{family} family", []).append(platform)
        return families
    from rknn_core import fileformat

    model = fileformat.load(rknn_model)
    family = FAMILIES[model.target_platform[0]]
    return {"support_target_platform": family_members(family)}
