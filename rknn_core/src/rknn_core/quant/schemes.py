"""Quantization schemes: the core's three built-in quantizers and the registry look-up every
quantization step goes through (``config``, ``build``, hybrid quantization)."""

from __future__ import annotations

import functools

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import QuantParams
from rknn_core.plugins import Registry
from rknn_core.quant.params import SCHEMES, params_from_range
from rknn_core.records import Quantizer

DOCS = {
    "asymmetric_quantized-u8": "uint8 with a per-tensor scale and zero point (the chips' default)",
    "dynamic_fixed_point-8": "int8 with a power-of-two scale (fractional length) and zero point 0",
    "dynamic_fixed_point-16": "int16 with a power-of-two scale (fractional length) and zero point 0",
}


def builtin_quantizers() -> list[Quantizer]:
    """``Quantizer.quantize(lo, hi) -> QuantParams`` for each scheme; weights per tensor."""
    return [Quantizer(name, functools.partial(params_from_range, quantized_dtype=name), qtype=SCHEMES[name][1],
                      doc=DOCS[name]) for name in SCHEMES]


def find_quantizer(registry: Registry, name: str) -> Quantizer:
    """The installed quantizer named ``name``, or an error listing the installed ones."""
    table = registry.table("quantizers")
    if name not in table:
        raise RknnError(f"quantized_dtype '{name}' is unknown; the installed quantizers are "
                        f"{', '.join(sorted(table)) or 'none'}")
    return table[name]


def weight_params(quantizer: Quantizer, data: np.ndarray, axis: int | None) -> QuantParams:
    """A constant weight's parameters: per channel along ``axis`` when the quantizer does that."""
    if quantizer.quantize_weights is not None:
        return quantizer.quantize_weights(data, None if axis is None else axis % max(data.ndim, 1))
    return quantizer.quantize(data.min(initial=0.0), data.max(initial=0.0))
