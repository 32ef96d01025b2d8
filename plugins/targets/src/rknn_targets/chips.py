"""The Rockchip NPU chips models can be built for, grouped by compatible family.

One model serves one family. These records declare the chips for ``config(target_platform=...)``,
``init_runtime(target=...)`` and ``list_support_target_platform``; they cannot run a model
(``create_runtime`` is ``None``): running on a connected chip needs that family's device target plugin.
"""

from __future__ import annotations

from rknn_core.records import Target

FAMILIES = {
    "rk1808": ("rk1808", "rk3399pro"),
    "rv1126": ("rv1109", "rv1126"),
}


def chip_families() -> list[Target]:
    """One record per chip family, named ``<family>-family``."""
    return [Target(f"{family}-family", family, chips,
                   doc=f"Rockchip {', '.join(chips)}: models are built for them; running on a device needs "
                       f"a device target plugin for the {family} family")
            for family, chips in FAMILIES.items()]
