"""A convolution's fused epilogue: the residual add (input 3 with ``fused_add=1``) and the activation
(``activation``), computed as the unfused graph computes them, float and quantized.

Float: y = act(conv(x) + b + r), each step rounded to float32 as the standalone ops round it.
Quantized (bit-identical to the unfused graph): the sums are requantized to the grid of the old conv
output (``add_conv_q``) when a residual is fused, else to the activation's input grid (``act_in_q``)
when the activation is a table (HardSwish, HardSigmoid, PRelu), else to the output; then the core's
integer ADD with the residual (to the activation's input grid or the output, a Relu/Clip as its
bounds); then the activation's lookup table, as the standalone quantized op builds it (PRelu: one
table per output channel, from the quantized PRelu kernel applied to every code with that channel's
slope).

PRelu's activation carries its per-channel slopes: ``{"op": "PRelu", "slope": [one per output
channel]}``, and in a quantized model the slopes' storage codes and grid (``"slope_codes"``,
``"slope_q"``) instead.
"""

from __future__ import annotations

import functools

import numpy as np
from attrs import frozen

from rknn_core.errors import RknnError
from rknn_core.ir import QuantParams
from rknn_core.ops._quant import _add_constants, activation_bounds, lut_table, quantized_add
from rknn_core.ops.elementwise import OPS as ELEMENTWISE_OPS
from rknn_core.ops.elementwise import _prelu_quant, hard_sigmoid, hard_swish
from rknn_core.quant.params import QTYPES, dequantize

ACT_CLAMP, ACT_HARD_SIGMOID, ACT_HARD_SWISH, ACT_PRELU = 0, 1, 2, 3
TABLE_ACTIVATIONS = ("HardSigmoid", "HardSwish", "PRelu")


def residual_of(inputs: list, attrs: dict):
    """The fused residual (input 3 of a Conv with ``fused_add=1``), or None."""
    return inputs[3] if len(inputs) > 3 and inputs[3] is not None and int(attrs.get("fused_add", 0)) else None


def clamp_bounds(act: dict | None) -> tuple[float, float] | None:
    """The fused activation as a clamp range (Relu, Clip, none), or None when it is not a clamp."""
    if not act:
        return -np.inf, np.inf
    if act.get("op") == "Relu":
        return 0.0, np.inf
    if act.get("op") == "Clip":
        lo, hi = act.get("min"), act.get("max")
        return (-np.inf if lo is None else float(lo)), (np.inf if hi is None else float(hi))
    return None


def float_epilogue(act: dict | None) -> tuple[float, float, int, float, float, np.ndarray | None] | None:
    """The compiled kernels' epilogue arguments (lo, hi, act code, alpha, beta, slopes) for this activation,
    or None when they have none (LeakyRelu: applied afterwards)."""
    bounds = clamp_bounds(act)
    if bounds is not None:
        return (*bounds, ACT_CLAMP, 0.0, 0.0, None)
    if act.get("op") == "HardSigmoid":
        return -np.inf, np.inf, ACT_HARD_SIGMOID, float(act.get("alpha", 0.2)), float(act.get("beta", 0.5)), None
    if act.get("op") == "HardSwish":
        return -np.inf, np.inf, ACT_HARD_SWISH, 1 / 6, 0.5, None
    if act.get("op") == "PRelu":
        return -np.inf, np.inf, ACT_PRELU, 0.0, 0.0, prelu_slopes(act)
    return None


POST_MUL, POST_ADD = 0.0, 1.0  # the compiled kernels' post op codes


def float_post_ops(attrs: dict) -> np.ndarray | None:
    """The compiled kernels' ``post`` argument: (code, value) float32 pairs of the fused post ops, or None."""
    steps = attrs.get("post_ops")
    if not steps:
        return None
    return _float32_constants(tuple(v for step in steps for v in ({"Mul": POST_MUL, "Add": POST_ADD}[step["op"]],
                                                          float(step["value"]))))


def apply_post_ops(y: np.ndarray, attrs: dict) -> np.ndarray:
    """The fused float post ops (Mul / Add by one value), in order, as the standalone ops round them."""
    for step in attrs.get("post_ops") or ():
        value = np.asarray(step["value"], dtype=np.float32).astype(y.dtype)
        y = y * value if step["op"] == "Mul" else y + value
    return y


def prelu_slopes(act: dict) -> np.ndarray:
    """A fused PRelu's real slopes, one float32 per output channel (a quantized one's dequantized codes)."""
    if "slope" in act:
        return _float32_constants(tuple(act["slope"]))
    q = _params(act, "slope_q", "a fused PRelu")
    return _float32_constants(tuple(float(v) for v in dequantize(np.asarray(act["slope_codes"]), q)))


@functools.lru_cache(maxsize=256)
def _float32_constants(values: tuple) -> np.ndarray:
    slopes = np.asarray(values, dtype=np.float32)
    slopes.flags.writeable = False
    return slopes


def activation_function(act: dict):
    """The float function of a table activation (HardSigmoid, HardSwish, a Relu between two grids), as the
    standalone op's."""
    if act.get("op") == "HardSwish":
        return hard_swish
    if act.get("op") == "Relu":
        return lambda x: np.maximum(x, 0)
    return lambda x: hard_sigmoid(x, act.get("alpha", 0.2), act.get("beta", 0.5))


def apply_activation(y: np.ndarray, act: dict | None) -> np.ndarray:
    """A fused activation (set by the fusion passes), computed in place where it can be, as the standalone
    op does."""
    if not act:
        return y
    op = act.get("op")
    if op == "Relu":
        return np.maximum(y, 0, out=y)
    if op == "LeakyRelu":
        return np.where(y < 0, y * np.asarray(act.get("alpha", 0.01), y.dtype), y).astype(y.dtype, copy=False)
    if op == "Clip":
        lo, hi = act.get("min"), act.get("max")
        if lo is not None:
            np.maximum(y, np.asarray(lo).astype(y.dtype), out=y)
        if hi is not None:
            np.minimum(y, np.asarray(hi).astype(y.dtype), out=y)
        return y
    if op == "PRelu":
        slope = prelu_slopes(act).reshape(1, -1, *[1] * (y.ndim - 2)).astype(y.dtype, copy=False)
        return np.where(y < 0, y * slope, y)
    if op in TABLE_ACTIVATIONS:
        return np.asarray(activation_function(act)(y)).astype(y.dtype, copy=False)
    raise RknnError(f"Conv fused activation {op!r} is unknown (expected Relu, Clip, LeakyRelu, HardSigmoid, "
                    "HardSwish or PRelu)")


def is_table_activation(act: dict | None, attrs: dict) -> bool:
    """Whether a quantized epilogue runs ``act`` as a lookup table: HardSwish, HardSigmoid, PRelu, and a Relu whose
    output has a grid of its own (``act_in_q`` given: the standalone quantized Relu's table)."""
    return bool(act) and (act.get("op") in TABLE_ACTIVATIONS or (act.get("op") == "Relu" and "act_in_q" in attrs))


def _params(attrs: dict, key: str, why: str) -> QuantParams:
    value = attrs.get(key)
    if not isinstance(value, dict) or not {"qtype", "scale", "zero_point"} <= set(value):
        raise RknnError(f"quantized Conv with {why} needs attribute {key} = {{'qtype', 'scale', 'zero_point'}} "
                        f"(the grid of the unfused graph's intermediate tensor), got {value!r}")
    return QuantParams(value["qtype"], value["scale"], value["zero_point"])


def prelu_tables(act: dict, x_q: QuantParams, out_q: QuantParams) -> np.ndarray:
    """A fused quantized PRelu as one table per output channel (C, codes): the standalone quantized PRelu
    kernel applied to every storage code of ``x_q`` with each channel's slope code."""
    lo, hi, dtype = QTYPES[x_q.qtype]
    slope_q = _params(act, "slope_q", "a fused PRelu")
    slope_codes = np.asarray(act["slope_codes"], dtype=QTYPES[slope_q.qtype][2]).reshape(1, -1, 1)
    codes = np.broadcast_to(np.arange(lo, hi + 1, dtype=np.int64).astype(dtype), (1, slope_codes.shape[1], hi - lo + 1))
    return _prelu_quant([np.ascontiguousarray(codes), slope_codes], [x_q, slope_q], [out_q], {})[0][0]


@frozen
class QuantStages:
    """Where a quantized convolution's sums go: requantized to ``conv_q`` (clamped to ``conv_bounds``),
    then the integer ADD of a residual with ``residual_q`` into ``add_q`` (clamped to ``add_bounds``),
    then a lookup ``table`` into the output (of type ``out_qtype``)."""

    conv_q: QuantParams
    conv_bounds: tuple[int, int] | None
    residual_q: QuantParams | None
    add_q: QuantParams | None
    add_bounds: tuple[int, int] | None
    table: np.ndarray | None
    out_qtype: str


def quant_stages(attrs: dict, out_q: QuantParams, residual_q: QuantParams | None) -> QuantStages:
    """The stages of a quantized Conv's epilogue (see the module docstring)."""
    act = attrs.get("activation")
    post_ops = attrs.get("post_ops") or []
    act_out = _params(post_ops[0], "in_q", "a fused post op") if post_ops else out_q  # the activation's grid
    table_act = is_table_activation(act, attrs)
    if act and residual_q is not None and act.get("op") == "LeakyRelu":
        raise RknnError("a quantized Conv with a fused residual add cannot fuse LeakyRelu (keep it a separate node)")
    before_act = _params(attrs, "act_in_q", f"a fused {act.get('op')}") if table_act else act_out
    bounds = None if table_act else activation_bounds(act, act_out)
    table = None
    if table_act:
        table = prelu_tables(act, before_act, act_out) if act["op"] == "PRelu" else \
            lut_table(activation_function(act), before_act, act_out)
    if post_ops:
        lo, hi, dtype = QTYPES[act_out.qtype]
        table = post_op_table(np.arange(lo, hi + 1).astype(dtype) if table is None else table, post_ops, out_q)
    if residual_q is None:
        return QuantStages(before_act, bounds, None, None, None, table, out_q.qtype)
    conv_q = _params(attrs, "add_conv_q", "a fused residual add")
    return QuantStages(conv_q, None, residual_q, before_act, bounds, table, out_q.qtype)


def post_op_table(codes: np.ndarray, post_ops: list[dict], out_q: QuantParams) -> np.ndarray:
    """``codes`` (storage of the first post op's input grid) mapped through the fused post ops, each the
    standalone integer Mul / Add with its constant's code, into ``out_q``."""
    kernels = {op.name: op.quant_kernel for op in ELEMENTWISE_OPS if op.name in ("Mul", "Add")}
    for k, step in enumerate(post_ops):
        x_q = _params(step, "in_q", "a fused post op")
        const_q = _params(step, "const_q", "a fused post op")
        to_q = _params(post_ops[k + 1], "in_q", "a fused post op") if k + 1 < len(post_ops) else out_q
        const = np.asarray([step["code"]], dtype=QTYPES[const_q.qtype][2])
        codes = kernels[step["op"]]([codes, const], [x_q, const_q], [to_q], {})[0]
    return np.asarray(codes)


def finish_quantized(y: np.ndarray, residual, stages: QuantStages) -> np.ndarray:
    """The stages after the requantization, in numpy: the ADD of the residual, then the table."""
    if stages.residual_q is not None:
        y = quantized_add(y, residual, stages.conv_q, stages.residual_q, stages.add_q)
        if stages.add_bounds is not None:
            y = np.clip(y, *stages.add_bounds).astype(y.dtype, copy=False)
    if stages.table is not None:
        codes = np.asarray(y, dtype=np.int64) - QTYPES[(stages.add_q or stages.conv_q).qtype][0]
        if stages.table.ndim == 1:
            return stages.table[codes]
        channel = np.arange(stages.table.shape[0]).reshape(1, -1, *[1] * (codes.ndim - 2))
        return stages.table[channel, codes]
    return y


@frozen
class CompiledPost:
    """The compiled integer kernels' epilogue arguments: quantized_add's constants (after the residual in
    the ``add`` tuple) and the lookup table."""

    add_constants: tuple | None
    table: np.ndarray | None

    def add(self, residual) -> tuple | None:
        """The ``add`` argument for this run's residual (None without one)."""
        return None if residual is None else (np.ascontiguousarray(residual), *self.add_constants)


def compiled_post(stages: QuantStages, residual_dtype) -> CompiledPost | None:
    """The compiled kernels' form of the stages after the requantization, or None when they cannot run
    them (every stage must use one storage type, the residual's)."""
    kinds = {stages.conv_q.qtype} | ({stages.residual_q.qtype, stages.add_q.qtype} if stages.residual_q else set())
    if stages.table is not None:
        kinds.add(stages.out_qtype)
    if len(kinds) != 1:
        return None
    qtype = kinds.pop()
    table = None if stages.table is None else np.ascontiguousarray(stages.table, dtype=QTYPES[qtype][2])
    if stages.residual_q is None:
        return CompiledPost(None, table)
    if residual_dtype != np.dtype(QTYPES[qtype][2]):
        return None
    (shift, ma, sa, mb, sb), (mo, so, pot) = _add_constants(stages.conv_q.scale[0], stages.residual_q.scale[0],
                                                            stages.add_q.scale[0], qtype)
    lo, hi, _ = QTYPES[qtype]
    if stages.add_bounds is not None:
        lo, hi = max(lo, stages.add_bounds[0]), min(hi, stages.add_bounds[1])
    return CompiledPost((stages.conv_q.zero_point[0], stages.residual_q.zero_point[0], shift, ma, sa, mb, sb,
                         mo, so, bool(pot), stages.add_q.zero_point[0], lo, hi), table)
