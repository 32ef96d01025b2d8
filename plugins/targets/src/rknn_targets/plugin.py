"""Registers the targets this package provides."""

from rknn_core.hookspecs import hookimpl
from rknn_core.records import Target


def _simulator(model, registry, **options):
    from rknn_targets.simulator import SimulatorRuntime

    return SimulatorRuntime(model, registry, **options)


@hookimpl
def rknn_targets():
    return [Target("simulator", "host", (), _simulator,
                   doc="Runs the model on the PC with the core's reference kernels (init_runtime(target=None)).")]
