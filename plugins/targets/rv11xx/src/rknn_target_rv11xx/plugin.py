"""Registers this family's chips as targets carrying their facts (rknn_target_rv11xx.chips)."""

from rknn_core.hookspecs import hookimpl

RKNN_PLUGIN_API = (1, 1)  # the rknn-core plugin API versions this plugin works with


@hookimpl
def rknn_targets():
    from rknn_target_rv11xx.chips import CHIPS
    from rknn_targets.npu import chip_target

    return [chip_target(chip) for chip in CHIPS]
