"""A quantized kernel against its float kernel, in output LSBs (one LSB is the output's scale).

The bound: ``check_quant_kernel`` quantizes the float inputs, runs the float kernel on the dequantized
inputs (so input rounding is the same on both sides and is not counted) and the integer kernel on the
storage integers, and requires every dequantized output within ``lsb`` output scales of the float one.
An exact lookup table (``rknn_core.quant.kernels.lut_kernel``) is within 0.5 LSB (output rounding
only); one fixed-point requantization (``rescale``, ``requantize_channels``) adds at most 0.5 LSB more,
so the default bound is 1 LSB.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rknn_core.ir import QuantParams
from rknn_core.plugins import Registry, default_registry
from rknn_core.quant.params import dequantize, quantize
from rknn_core.records import OpDef


def _opdef(op: OpDef | str, registry: Registry) -> OpDef:
    opdef = op if isinstance(op, OpDef) else registry.op(op)
    if opdef is None:
        raise AssertionError(f"op '{op}' is not in the registry")
    if not opdef.quantizable:
        raise AssertionError(f"op '{opdef.name}' has no quantized form (quant_kernel or quant_same_scale)")
    return opdef


def _params(quantizer, values: np.ndarray) -> QuantParams:
    return quantizer.quantize(float(values.min(initial=0.0)), float(values.max(initial=0.0)))


def check_quant_kernel(op: OpDef | str, inputs: Sequence[np.ndarray], attrs: dict | None = None,
                       quantized_dtype: str = "asymmetric_quantized-u8", lsb: float = 1.0,
                       registry: Registry | None = None) -> float:
    """Run ``op``'s integer form on quantized ``inputs`` and assert it is within ``lsb`` output LSBs of
    its float kernel on the same (dequantized) inputs; returns the largest error in LSBs.

    Float inputs are quantized; integer inputs (axes, indices), ``None`` and the op's ``quant_param_inputs``
    pass unchanged with ``None`` parameters, as the executor gives them.
    ``op`` is an ``OpDef`` or an op key looked up in ``registry`` (default: the installed plugins);
    ``quantized_dtype`` names an installed quantizer (``asymmetric_quantized-u8``,
    ``dynamic_fixed_point-8``, ``dynamic_fixed_point-16`` or a plugin's), which gives every tensor's
    parameters from its range.
    """
    registry = registry or default_registry()
    opdef, attrs = _opdef(op, registry), attrs or {}
    quantizer = registry.table("quantizers")[quantized_dtype]
    real = [i not in opdef.quant_param_inputs and x is not None and np.asarray(x).dtype.kind == "f"
            for i, x in enumerate(inputs)]
    in_q = [_params(quantizer, np.asarray(x)) if r else None for x, r in zip(inputs, real)]
    stored = [quantize(np.asarray(x), q) if q else x for x, q in zip(inputs, in_q)]
    expected = opdef.kernel([dequantize(s, q) if q else s for s, q in zip(stored, in_q)], attrs)
    if opdef.quant_kernel is None:  # same-scale op: the float kernel moves storage integers
        out_q = [in_q[0]] * len(expected)
        got = opdef.kernel(stored, attrs)
    else:
        out_q = [_params(quantizer, np.asarray(y)) for y in expected]
        got = opdef.quant_kernel(stored, in_q, out_q, attrs)
    worst = 0.0
    for i, (g, e, q) in enumerate(zip(got, expected, out_q)):
        assert np.asarray(g).dtype.kind in "iu", f"{opdef.name} output {i}: {np.asarray(g).dtype}, not storage integers"
        error = np.abs(dequantize(g, q).astype(np.float64) - np.asarray(e, dtype=np.float64)) / q.scale[0]
        worst = max(worst, float(error.max(initial=0.0)))
        assert worst <= lsb, (f"{opdef.name} ({quantized_dtype}) output {i}: {worst:.3f} LSB from the float kernel, "
                              f"more than {lsb}")
    return worst
