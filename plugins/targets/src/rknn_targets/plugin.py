"""Registers the targets this package provides."""

from rknn_core.hookspecs import hookimpl
from rknn_core.records import Target

RKNN_PLUGIN_API = (1, 1)  # the rknn-core plugin API versions this plugin works with


def _simulator(model, registry, **options):
    from rknn_targets.simulator import SimulatorRuntime

    return SimulatorRuntime(model, registry, **options)


@hookimpl
def rknn_targets():
    # the chips live in their own distributions (rknn-target-rk18xx, rknn-target-rv11xx), which use rknn_targets.npu
    return [Target("simulator", "host", (), _simulator,
                   doc="Runs the model on the PC with the core's reference kernels (init_runtime(target=None)); "
                       "eval_perf / eval_memory model the model's chip")]
