"""MatMul (numpy matmul semantics), and a MatMul by a weight matrix as a fully connected layer with a fused
epilogue.

A MatMul of A (..., rows, K) by a constant 2-D B is a fully connected layer: its output channels are the
columns (the last axis). The ``fuse_epilogue`` pass gives it the bias Add after it as input 2 and the
activation and Mul/Add by one constant after that as ``activation`` / ``post_ops``, with the convolutions'
contract (``ops/_epilogue.py``):
float, ``act(A @ B + bias)`` with each step rounded as the standalone ops round it; quantized, the sums
requantized to the old MatMul output's grid (``add_conv_q``), the integer ADD of the bias's storage codes, then
the activation's table, bit-identical to the unfused graph.

Float A @ B by a 2-D float32 B runs on the compiled GEMM (B's columns as the rows of its left operand, the bias,
clamp, PRelu slopes and post ops in its epilogue); integer A @ B by a 2-D B on the 8-bit GEMM where the CPU has
it, else on exact float sums.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import QuantParams, TensorInfo
from rknn_core.kernels_backend import native as _native
from rknn_core.ops import conv as conv_op
from rknn_core.ops._common import broadcast, given_inputs, memo_by_attrs, promote
from rknn_core.ops._epilogue import (
    CompiledPost,
    QuantStages,
    apply_activation,
    apply_post_ops,
    compiled_post,
    finish_quantized,
    float_epilogue,
    float_post_ops,
    quant_stages,
)
from rknn_core.ops._quant import (
    STORAGE_KINDS,
    centered,
    exact_dtype,
    requant_plan,
    requantize_accumulator,
    requantize_by_plan,
    weight_plan,
)
from rknn_core.quant.params import stored_codes
from rknn_core.records import Cost, OpDef


def matmul_shape(a_shape, b_shape) -> tuple[tuple[int, ...], int]:
    """numpy matmul result shape and the inner dimension."""
    if not a_shape or not b_shape:
        raise RknnError("MatMul does not take scalars")
    a2 = (1, *a_shape) if len(a_shape) == 1 else tuple(a_shape)
    b2 = (*b_shape, 1) if len(b_shape) == 1 else tuple(b_shape)
    if a2[-1] != b2[-2]:
        raise RknnError(f"MatMul inner dimensions differ: {tuple(a_shape)} @ {tuple(b_shape)}")
    batch = broadcast(a2[:-2], b2[:-2])
    out = list(batch)
    if len(a_shape) > 1:
        out.append(a2[-2])
    if len(b_shape) > 1:
        out.append(b2[-1])
    return tuple(out), int(a2[-1])


def _infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
    a, b = inputs[:2]
    shape, _ = matmul_shape(a.shape, b.shape)
    bias = inputs[2] if len(inputs) > 2 else None
    if bias is not None and (len(a.shape) < 2 or len(b.shape) != 2 or bias_columns(bias.shape, shape[-1]) is None):
        raise RknnError(f"MatMul input 2 (a fused bias) needs A of rank 2 or more, a 2-D B and one value or one "
                        f"per column ({shape[-1]}), got A {tuple(a.shape)}, B {tuple(b.shape)}, bias {tuple(bias.shape)}")
    return [TensorInfo(shape, promote(a.dtype, b.dtype))]


def bias_columns(shape: tuple, columns: int) -> int | None:
    """How many values a bias of ``shape`` gives the ``columns`` output columns (1 or ``columns``; None: it does
    not broadcast to one row of them)."""
    size = math.prod(shape)
    if len(shape) > 2 or any(d != 1 for d in shape[:-1]) or size not in (1, columns):
        return None
    return size


COMPILED_WEIGHTS = 1 << 24  # float B up to this many elements on the compiled GEMM (it keeps B transposed)


def _compiled_weights(b: np.ndarray, bias: np.ndarray | None) -> bool:
    """Whether A @ ``b`` (+ ``bias``) runs on the compiled GEMM (for a float32 A)."""
    return b.ndim == 2 and b.size <= COMPILED_WEIGHTS and b.dtype == np.float32 \
        and (bias is None or bias.dtype == np.float32)


def _prepare(attrs: dict, constants: list, computed: tuple[int, ...]):
    """``_kernel`` of a float fully connected node (A by a constant 2-D B, a constant bias or none) prepared once
    for a plan; None for other MatMuls."""
    b = constants[1]
    bias = constants[2] if len(constants) > 2 else None
    if computed != (0,) or b is None or not _compiled_weights(np.asarray(b), bias):
        return None
    run = _float_by_weights(attrs, objects=(b, bias))

    def call(inputs: list) -> list[np.ndarray]:
        a = inputs[0]
        return [run(a)] if a.dtype == np.float32 else _kernel(given_inputs(inputs, constants, computed), attrs)

    return call


def _kernel(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]:
    a, b = inputs[:2]
    bias = inputs[2] if len(inputs) > 2 else None
    if a.dtype == np.float32 and _compiled_weights(b, bias):
        return [_float_by_weights(attrs, objects=(b, bias))(a)]
    y = np.asarray(np.matmul(a, b), dtype=np.result_type(a, b))
    if bias is not None:
        y = (y + bias).astype(y.dtype, copy=False)
    return [apply_post_ops(apply_activation(y, attrs.get("activation")), attrs)]


@functools.lru_cache(maxsize=256)
def _row_offsets(k: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The GEMM's offsets into A (rows, K) read as its right operand: element j of row r at j + r * K."""
    taps, origins = np.arange(k, dtype=np.int64), np.arange(rows, dtype=np.int64) * k
    taps.flags.writeable = origins.flags.writeable = False
    return taps, origins


def _rows_of(a: np.ndarray, k: int, n: int) -> tuple[int, tuple]:
    """How many rows of K values A holds, and the shape of A @ B for a (K, N) B."""
    if a.shape[-1] != k:
        raise RknnError(f"MatMul inner dimensions differ: {tuple(a.shape)} @ ({k}, {n})")
    return a.size // k, (*a.shape[:-1], n)


@memo_by_attrs
def _float_by_weights(attrs: dict, b: np.ndarray, bias: np.ndarray | None):
    """float32 A @ B for a 2-D B on the compiled GEMM, prepared once per node: B's columns as the rows of its
    left operand, ``run(a)`` gives (..., N) with the fused bias and epilogue (LeakyRelu applied after)."""
    k, n = b.shape
    weights = np.ascontiguousarray(b.T)
    act = attrs.get("activation")
    fused = float_epilogue(act)
    lo, hi, code, alpha, beta, slopes = fused or float_epilogue(None)
    post = float_post_ops(attrs) if fused is not None else None
    column_bias = None if bias is None else np.ascontiguousarray(np.broadcast_to(bias.reshape(-1), (n,)))

    def run(a: np.ndarray) -> np.ndarray:
        rows, out_shape = _rows_of(a, k, n)
        yt = np.empty((n, rows), dtype=np.float32)
        _native.conv_gemm(weights, a if a.flags.c_contiguous else np.ascontiguousarray(a), *_row_offsets(k, rows),
                          column_bias, yt, n, k, rows, lo, hi, None, code, alpha, beta, slopes, post)
        y = (yt if rows == 1 else np.ascontiguousarray(yt.T)).reshape(out_shape)
        return y if fused is not None else apply_post_ops(apply_activation(y, act), attrs)

    return run


def _cost(inputs: list[TensorInfo | None], outputs: list[TensorInfo], attrs: dict) -> Cost:
    _, k = matmul_shape(inputs[0].shape, inputs[1].shape)
    moved = sum(i.nbytes for i in inputs if i is not None) + sum(o.nbytes for o in outputs)
    return Cost(outputs[0].size * k, moved)


def _quant_kernel(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """Integer MatMul: exact sums of centered storage, requantized by a_s * b_s / out_s (per column when B is
    quantized per channel along its last axis); by a 2-D B, the fused epilogue after that."""
    a, b = inputs[:2]
    bias = inputs[2] if len(inputs) > 2 else None
    a_q, b_q, o_q = in_q[0], in_q[1], out_q[0]
    if not _quantized_as_supported(a_q, b_q, b.ndim):
        raise RknnError("MatMul needs A per tensor and B per tensor or per channel along its last axis")
    if b.ndim == 2:  # a weight matrix (as a fully connected layer)
        bias_q = in_q[2] if bias is not None else None
        return [_by_weights(attrs, objects=(b, a_q, b_q, o_q, bias, bias_q))(a)]
    dtype = exact_dtype(a.shape[-1], a_q, b_q)
    acc = np.matmul(centered(a, a_q, dtype), centered(b, b_q, dtype))
    return [requantize_accumulator(acc, a_q, b_q, o_q, -1)]


def _quantized_as_supported(a_q: QuantParams, b_q: QuantParams, b_ndim: int) -> bool:
    """A per tensor, B per tensor or per channel along its last axis."""
    return a_q.axis is None and (b_q.axis is None or (b_ndim >= 2 and b_q.axis % b_ndim == b_ndim - 1))


def _quant_prepare(in_q: list, out_q: list, attrs: dict, constants: list, computed: tuple[int, ...]):
    """``_quant_kernel`` of a fully connected node (A by a constant 2-D B, a constant bias or none) prepared once
    for a plan; None for other MatMuls."""
    b = constants[1]
    if computed != (0,) or b is None or np.ndim(b) != 2 or not _quantized_as_supported(in_q[0], in_q[1], 2):
        return None
    bias = constants[2] if len(constants) > 2 else None
    run = _by_weights(attrs, objects=(b, in_q[0], in_q[1], out_q[0], bias, None if bias is None else in_q[2]))
    return lambda inputs: [run(inputs[0])]


@memo_by_attrs
def _by_weights(attrs: dict, b: np.ndarray, a_q: QuantParams, b_q: QuantParams, o_q: QuantParams,
                bias: np.ndarray | None, bias_q: QuantParams | None):
    """A @ B for a 2-D B, prepared once per node: B's centered form in the accumulation dtype its actual columns
    allow (``weight_plan``), the requantization by a_s * b_s / s (per column or one) into the first grid of the
    epilogue, and the epilogue: the bias's storage codes added as a residual of every row, then the table."""
    stages = quant_stages(attrs, o_q, bias_q)
    k, n = b.shape
    codes = None if bias is None else np.broadcast_to(stored_codes(bias, bias_q).reshape(-1), (n,))
    bc, dtype = weight_plan(b, b_q, a_q, 1)
    m = a_q.scale[0] * np.asarray(b_q.scale, dtype=np.float64) / stages.conv_q.scale[0]
    post = compiled_post(stages, None if codes is None else codes.dtype)
    eight_bit = int8_by_weights(bc, a_q, m, stages, post) if post is not None else None
    residuals: dict[int, np.ndarray] = {}

    def residual(rows: int) -> np.ndarray | None:
        """The bias codes as every row's residual, channels first (the GEMM's layout), or None."""
        if codes is not None and rows not in residuals:
            residuals[rows] = np.ascontiguousarray(np.broadcast_to(codes.reshape(n, 1), (n, rows)))
        return residuals.get(rows)

    if eight_bit is not None:
        def run_eight_bit(a: np.ndarray) -> np.ndarray:
            rows, out_shape = _rows_of(a, k, n)
            return eight_bit(a, residual(rows)).reshape(out_shape)

        return run_eight_bit
    plan = requant_plan(m, stages.conv_q.qtype, stages.conv_bounds, n if m.size > 1 else 1, None) \
        if stages.conv_q.qtype in STORAGE_KINDS else None
    zero = dtype(a_q.zero_point[0])

    def run(a: np.ndarray) -> np.ndarray:
        rows, out_shape = _rows_of(a, k, n)
        acc = np.matmul(np.subtract(a, zero, dtype=dtype), bc)
        if plan is not None:
            y = requantize_by_plan(acc, plan, stages.conv_q.zero_point[0], acc.ndim - 1 if m.size > 1 else None)
        else:
            y = requantize_accumulator(acc, a_q, b_q, stages.conv_q, -1, stages.conv_bounds)
        if stages.residual_q is None and stages.table is None:
            return y
        r = residual(rows)
        return finish_quantized(y.reshape(rows, n), None if r is None else r.T, stages).reshape(out_shape)

    return run


def int8_by_weights(bc: np.ndarray, a_q: QuantParams, m: np.ndarray, stages: QuantStages, post: CompiledPost,
                    bias: np.ndarray | None = None):
    """A @ B on the 8-bit GEMM (exact int32 sums of the storage bytes, as the integer convolutions use it: the
    rows of A are the image's pixels, B's columns its output channels), plus an int64 ``bias`` per column,
    requantized by the same plan and the epilogue run on the finished blocks: ``run(a, residual)`` (the
    residual (N, rows) channels first, or None); None where it does not apply (no VNNI or AVX2, 16-bit storage, weights
    or sums beyond its bounds)."""
    if stages.conv_q.qtype not in STORAGE_KINDS:
        return None
    weights = np.ascontiguousarray(bc.T, dtype=np.float32)  # (M, K) centered integers
    operands = conv_op.int8_gemm_operands(weights, a_q)
    if operands is None:
        return None
    pairs = conv_op.int8_pairs(operands)
    kind = STORAGE_KINDS[a_q.qtype]
    channels, k = weights.shape
    plan = requant_plan(m, stages.conv_q.qtype, stages.conv_bounds, channels, bias)
    zero = int(stages.conv_q.zero_point[0])
    arguments: dict[int, tuple[tuple, tuple]] = {}  # per row count: the GEMM's arguments between image and output,
    # and after the output but the epilogue's

    def prepared(count: int) -> tuple[tuple, tuple]:
        if count not in arguments:
            offsets = (np.arange(k, dtype=np.int64) * count, np.arange(count, dtype=np.int64))
            arguments[count] = ((kind, *offsets, plan.bias, plan.mult, plan.shift, plan.pot),
                                (plan.kind, zero, plan.lo, plan.hi, channels, k, count))
        return arguments[count]

    def run(a: np.ndarray, residual: np.ndarray | None) -> np.ndarray:
        count = a.size // k
        # (K, rows): pixel r of channel k at k * rows + r
        image = np.ascontiguousarray(a).reshape(1, k) if count == 1 else np.ascontiguousarray(a.reshape(-1, k).T)
        between, after = prepared(count)
        out = np.empty((channels, count), dtype=plan.dtype)
        _native.qconv_gemm_u8(*operands, image, *between, out, *after, post.add(residual), post.table, pairs)
        return out.reshape(1, channels) if count == 1 else np.ascontiguousarray(out.T)  # (rows, channels)

    return run


OPS = [
    OpDef("MatMul", _infer, _kernel, _cost, 2, 3, quant_kernel=_quant_kernel, quant_weight_axes=lambda attrs: {1: -1},
          prepare=_prepare, quant_prepare=_quant_prepare,
          doc="numpy matmul semantics: 1-D operands and broadcast batch dimensions. By a 2-D weight matrix (a fully "
              "connected layer) a fused epilogue: input 2 a bias (one value or one per column, added after the "
              "sums), then activation and post_ops as a Conv's."),
]
