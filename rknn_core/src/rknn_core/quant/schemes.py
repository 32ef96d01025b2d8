"""The built-in quantizers, one per ``config(quantized_dtype=...)`` value."""

from __future__ import annotations

import functools

from rknn_core.quant.params import SCHEMES, params_from_range
from rknn_core.records import Quantizer

DOCS = {
    "asymmetric_quantized-u8": "uint8 with a per-tensor scale and zero point (the chips' default)",
    "dynamic_fixed_point-8": "int8 with a power-of-two scale (fractional length) and zero point 0",
    "dynamic_fixed_point-16": "int16 with a power-of-two scale (fractional length) and zero point 0",
}


def builtin_quantizers() -> list[Quantizer]:
    """``Quantizer.quantize(lo, hi) -> QuantParams`` for each scheme."""
    return [Quantizer(name, functools.partial(params_from_range, quantized_dtype=name), qtype=SCHEMES[name][1],
                      doc=DOCS[name]) for name in SCHEMES]
