"""A model of Rockchip's first-generation NPU (RK18xx, RV11xx), shared by the chip target plugins.

One place for what every chip of that NPU generation has in common: the chip record (facts as data,
clocks adjustable), the supported-op constraint framework, layer fusion, the per-layer performance
model, the memory planner and the pre-compiled program. A chip plugin only declares data
(``Chip``) and its constraint table; it copies no modelling code. It lives in rknn-targets, not in
the core: it models one vendor's NPU, while the core stays chip-agnostic.
"""

from rknn_targets.npu.chip import Calibration, Chip, chip_target
from rknn_targets.npu.constraints import OpRule

__all__ = ["Calibration", "Chip", "OpRule", "chip_target"]
