"""Registers the targets this package provides."""

from rknn_core.hookspecs import hookimpl
from rknn_core.records import Target

RKNN_PLUGIN_API = (1, 1)  # the rknn-core plugin API versions this plugin works with


def _simulator(model, registry, **options):
    from rknn_targets.simulator import SimulatorRuntime

    return SimulatorRuntime(model, registry, **options)


@hookimpl
def rknn_targets():
    from rknn_targets.chips import chip_families

    return [Target("simulator", "host", (), _simulator,
                   doc="Runs the model on the PC with the core's reference kernels (init_runtime(target=None))."),
            *chip_families()]
