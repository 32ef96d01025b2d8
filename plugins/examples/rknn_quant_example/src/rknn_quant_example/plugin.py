"""The plugin module the ``rknn`` entry point names: it implements only the ``rknn_quantizers`` hook.

Keep this module cheap to import: the toolkit imports every plugin when it builds its registry.
"""

from __future__ import annotations

from rknn_core.hookspecs import hookimpl
from rknn_core.records import Quantizer

RKNN_PLUGIN_API = (1, 1)  # the rknn-core plugin API versions this plugin works with
NAME = "asymmetric_quantized-i8"


@hookimpl
def rknn_quantizers():
    from rknn_quant_example import scheme

    return [Quantizer(NAME, scheme.activation_params, qtype="i8", quantize_weights=scheme.weight_params,
                      doc="int8 activations (scale and zero point per tensor) with symmetric int8 weights "
                          "per output channel, as newer NPUs quantize")]
