"""The core's own records, registered through the same hooks as any plugin."""

from __future__ import annotations

from rknn_core.hookspecs import PLUGIN_API, hookimpl

RKNN_PLUGIN_API = (PLUGIN_API, PLUGIN_API)  # the core's own plugin always matches its core


@hookimpl
def rknn_ops():
    from rknn_core.ops import builtin_ops

    return builtin_ops()


@hookimpl
def rknn_passes():
    from rknn_core.passes import builtin_passes

    return builtin_passes()


@hookimpl
def rknn_quantizers():
    from rknn_core.quant.schemes import builtin_quantizers

    return builtin_quantizers()
