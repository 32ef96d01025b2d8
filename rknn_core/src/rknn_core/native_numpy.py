"""The compiled kernels of ``rknn_core._native`` in numpy: same functions, arguments and in-place outputs.

Used when the C extension could not be built (see ``kernels_backend``). Integer results equal the
compiled ones bit for bit (the fixed-point rules of ``quant.fixedpoint``; sums of centered integers
are exact in float64). Float results (``conv_gemm``, ``depthwise_conv2d`` on arbitrary floats) are
float32 sums in another order, so they agree to float32 rounding, not bit for bit.
"""

from __future__ import annotations

import os

import numpy as np

from rknn_core.quant.fixedpoint import multiply, shift_by_power_of_two
from rknn_core.quant.params import round_half_away

STORAGE = {"B": np.uint8, "b": np.int8, "h": np.int16}
ACCUMULATORS = {"f": np.float32, "d": np.float64, "i": np.int32, "q": np.int64}
MAX_THREADS = 256


def _flat(buf, dtype, count: int, name: str) -> np.ndarray:
    """The first ``count`` items of a C-contiguous buffer as a flat ``dtype`` array sharing its memory
    (writes reach the caller's buffer); ValueError when it holds fewer."""
    data = np.frombuffer(memoryview(buf).cast("B"), dtype=np.uint8)
    size = np.dtype(dtype).itemsize
    if count < 0 or data.size < count * size:
        raise ValueError(f"{name}: buffer sizes do not match the shapes")
    return data[:count * size].view(dtype)


def _kind(table: dict, kind: str, name: str):
    if kind not in table:
        raise ValueError(f"{name}: unknown array kind {kind!r}")
    return table[kind]


def _fixed_point(total: np.ndarray, mult: np.ndarray, shift: np.ndarray, pot: bool) -> np.ndarray:
    """int64 accumulators times (mult, shift): the rounding shift (``pot``) or the int32 fixed-point multiply."""
    return shift_by_power_of_two(total, shift) if pot else multiply(total, mult, shift)


def _requantize_rows(total: np.ndarray, bias, mult, shift, pot: bool, out: np.ndarray, zp: int, lo: int, hi: int,
                     name: str) -> None:
    """out = clamp(R(total + bias) + zp, lo, hi) for int64 ``total`` (outer, c, inner): bias, mult and shift
    per channel (mult/shift also one for all)."""
    c = total.shape[1]
    mult, shift = np.frombuffer(mult, np.int64), np.frombuffer(shift, np.int64)
    if mult.size != shift.size or mult.size not in (1, c):
        raise ValueError(f"{name}: multipliers, shifts or bias do not match the channels")
    if bias is not None:
        total = total + _flat(bias, np.int64, c, name).reshape(1, c, 1)
    scaled = _fixed_point(total, mult.reshape(1, -1, 1), shift.reshape(1, -1, 1), pot)
    out[...] = np.clip(scaled + zp, lo, hi).reshape(out.shape)


def _gathered(b, dtype, koff, poff, k: int, n: int, name: str) -> np.ndarray:
    """The implicit im2col matrix (k, n): b[koff[j] + poff[p]]."""
    index = _flat(koff, np.int64, k, name)[:, None] + _flat(poff, np.int64, n, name)[None, :]
    flat = _flat(b, dtype, memoryview(b).nbytes // np.dtype(dtype).itemsize, name)
    if index.size and (index.min() < 0 or index.max() >= flat.size):
        raise ValueError(f"{name}: koff/poff index out of range of b")
    return flat[index]


ACT_CLAMP, ACT_HARD_SIGMOID, ACT_HARD_SWISH, ACT_PRELU = 0, 1, 2, 3
POST_MUL, POST_ADD, POST_OPS_MAX = 0, 1, 4


def _per_row(values: np.ndarray, rows: int) -> np.ndarray:
    """Row r's entry of per-channel ``values`` (r modulo their count), shaped to broadcast over rows."""
    return values[np.arange(rows) % len(values)]


def _post(sums: np.ndarray, residual, act: int, lo: float, hi: float, alpha: float, beta: float,
          name: str, slopes=None, post=None) -> np.ndarray:
    """The float epilogue: act(sums + residual), act the clamp [lo, hi], HardSigmoid, HardSwish or PRelu
    (row r of ``sums`` takes slope r modulo the slopes' count), then the ``post`` ops ((code, value)
    pairs: 0 multiply, 1 add), rounded as the standalone ops round them."""
    return _post_ops(_activation(sums, residual, act, lo, hi, alpha, beta, name, slopes), post)


def _post_ops(y: np.ndarray, post) -> np.ndarray:
    """``y`` through the post ops (float32 (code, value) pairs) in order."""
    pairs = np.zeros((0, 2), np.float32) if post is None else np.frombuffer(post, np.float32).reshape(-1, 2)
    if len(pairs) > POST_OPS_MAX or not np.isin(pairs[:, 0], (POST_MUL, POST_ADD)).all():
        raise ValueError("post must be float32 (code, value) pairs, code 0 (Mul) or 1 (Add), at most 4")
    for code, value in pairs:
        y = y * value if code == POST_MUL else y + value
    return y


def _activation(sums: np.ndarray, residual, act: int, lo: float, hi: float, alpha: float, beta: float,
                name: str, slopes) -> np.ndarray:
    """act(sums + residual), see ``_post``."""
    if act not in (ACT_CLAMP, ACT_HARD_SIGMOID, ACT_HARD_SWISH, ACT_PRELU):
        raise ValueError("unknown activation code (0 clamp, 1 HardSigmoid, 2 HardSwish, 3 PRelu)")
    if act == ACT_PRELU and slopes is None:
        raise ValueError("PRelu (activation 3) needs its slopes")
    if residual is not None:
        sums = sums + _flat(residual, np.float32, sums.size, name).reshape(sums.shape)
    if act == ACT_PRELU:
        slope = _per_row(np.frombuffer(slopes, np.float32), sums.shape[0]).reshape(-1, *[1] * (sums.ndim - 1))
        return np.where(sums < 0, sums * slope, sums)
    if act == ACT_CLAMP:
        return np.clip(sums, np.float32(lo), np.float32(hi))
    gate = np.clip(np.float32(alpha) * sums + np.float32(beta), np.float32(0), np.float32(1))
    return sums * gate if act == ACT_HARD_SWISH else gate


def conv_gemm(a, b, koff, poff, bias, y, m: int, k: int, n: int, lo: float, hi: float, residual=None,
              act: int = ACT_CLAMP, alpha: float = 0.0, beta: float = 0.0, slopes=None, post=None) -> None:
    """y[i*n+p] = clamp(sum_j a[i*k+j] * b[koff[j]+poff[p]] + bias[i], lo, hi), float32; with ``residual``
    (m, n) added after the bias and ``act`` 1 (HardSigmoid), 2 (HardSwish) or 3 (PRelu with ``slopes``)
    instead of the clamp; then the ``post`` ops (see ``_post``)."""
    out = _flat(y, np.float32, m * n, "conv_gemm").reshape(m, n)
    sums = _flat(a, np.float32, m * k, "conv_gemm").reshape(m, k) @ _gathered(b, np.float32, koff, poff, k, n,
                                                                              "conv_gemm")
    if bias is not None:
        sums += _flat(bias, np.float32, m, "conv_gemm")[:, None]
    out[...] = _post(sums, residual, act, lo, hi, alpha, beta, "conv_gemm", slopes, post)


def _post_quant(dst: np.ndarray, kind: str, add, table, name: str, channels: int) -> None:
    """After the requantization into ``dst`` (storage of ``kind``, one row per plane of ``channels``
    channels): the integer ADD of a residual (``add``: residual, za, zb, left, ma, sa, mb, sb, mo, so,
    pot, zo, lo, hi) and a lookup ``table`` (one, or one per channel: row r takes table r % channels)."""
    dtype = STORAGE[kind]
    rows = dst.shape[0]
    dst = dst.reshape(-1)
    if add is not None:
        residual, za, zb, left, ma, sa, mb, sb, mo, so, pot, zo, lo, hi = add
        summed = np.empty_like(dst)
        quantized_add(dst, _flat(residual, dtype, dst.size, name), summed, kind, dst.size, za, zb, left, ma, sa, mb,
                      sb, 1, mo, so, pot, zo, lo, hi)
        dst[...] = summed
    if table is not None:
        lowest = np.iinfo(dtype).min
        entries = np.iinfo(dtype).max - lowest + 1
        tables = np.frombuffer(table, dtype)
        if tables.size < entries:
            raise ValueError(f"{name}: the table needs one entry per storage code")
        tables = tables[:channels * entries].reshape(channels, entries) if channels > 1 and \
            tables.size >= channels * entries else tables[:entries].reshape(1, entries)
        codes = dst.reshape(rows, -1).astype(np.int64) - lowest
        dst[...] = tables[_per_row(np.arange(len(tables)), rows)[:, None], codes].reshape(-1)


def qconv_gemm(a, b, b_kind: str, b_zero: int, koff, poff, bias, mult, shift, pot: bool, out, out_kind: str,
               zo: int, lo: int, hi: int, m: int, k: int, n: int, add=None, table=None) -> None:
    """The exact sums of ``conv_gemm`` over centered integers (b: float32, or 8-bit storage minus b_zero)
    requantized per output row into ``out`` (m, n) storage, as ``requantize`` does; then the ADD of a
    residual and a lookup table (see ``_post_quant``)."""
    name = "qconv_gemm"
    source = _kind({"f": np.float32, "B": np.uint8, "b": np.int8}, b_kind, name)
    dst = _flat(out, _kind(STORAGE, out_kind, name), m * n, name).reshape(1, m, n)
    columns = _gathered(b, source, koff, poff, k, n, name).astype(np.float64)
    if b_kind != "f":
        columns -= b_zero
    sums = _flat(a, np.float32, m * k, name).reshape(m, k).astype(np.float64) @ columns
    _requantize_rows(sums.astype(np.int64).reshape(1, m, n), bias, mult, shift, pot, dst, zo, lo, hi, name)
    _post_quant(dst.reshape(m, n), out_kind, add, table, name, m)


def qconv_gemm_u8(a8, row_terms, row_d, b, b_kind: str, koff, poff, bias, mult, shift, pot: bool, out, out_kind: str,
                  zo: int, lo: int, hi: int, m: int, k: int, n: int, add=None, table=None, pairs=None) -> None:
    """``qconv_gemm`` from 8-bit operands: sums a8 @ u + row_terms + row_d * (column sums of u) in int32
    (wrapping, as the instructions do), u the storage b (kind B, or b read plus 128), requantized as
    ``requantize`` does int32 accumulators; ``pairs`` (the compiled kernels' layout of a8) is not used here."""
    name = "qconv_gemm_u8"
    u = _gathered(b, _kind({"B": np.uint8, "b": np.int8}, b_kind, name), koff, poff, k, n, name).astype(np.int64)
    if b_kind == "b":
        u += 128
    kp = (k + 3) // 4 * 4
    weights = _flat(a8, np.int8, m * kp, name).reshape(m, kp)[:, :k].astype(np.int64)
    sums = weights @ u + _flat(row_terms, np.int32, m, name).astype(np.int64)[:, None]
    if row_d is not None:
        sums += _flat(row_d, np.int32, m, name).astype(np.int64)[:, None] * u.sum(axis=0)[None, :]
    lanes = sums.astype(np.int32).astype(np.int64)  # the int32 lanes wrap
    dst = _flat(out, _kind(STORAGE, out_kind, name), m * n, name).reshape(1, m, n)
    _requantize_rows(lanes.reshape(1, m, n), bias, mult, shift, pot, dst, zo, lo, hi, name)
    _post_quant(dst.reshape(m, n), out_kind, add, table, name, m)


def int8_pairs(a8, m: int, kp: int) -> None:
    """The numpy kernels read a8 itself."""
    return None


def int8_gemm() -> bool:
    """The numpy kernels compute qconv_gemm_u8 too, but never faster than qconv_gemm: not chosen."""
    return False


def requantize(acc, acc_kind: str, bias, mult, shift, pot: bool, out, out_kind: str, outer: int, c: int, inner: int,
               zp: int, lo: int, hi: int) -> None:
    """out[o, ch, i] = clamp(R(acc[o, ch, i] + bias[ch]) + zp, lo, hi): R the fixed-point multiply by
    (mult, shift)[ch], or with ``pot`` the rounding shift by shift[ch]."""
    name = "requantize"
    count = outer * c * inner
    values = _flat(acc, _kind(ACCUMULATORS, acc_kind, name), count, name)
    total = np.rint(values) if acc_kind == "d" else values  # float32 sums convert by truncation, as in C
    dst = _flat(out, _kind(STORAGE, out_kind, name), count, name).reshape(outer, c, inner)
    _requantize_rows(total.astype(np.int64).reshape(outer, c, inner), bias, mult, shift, pot, dst, zp, lo, hi, name)


def softmax_lut(x, x_kind: str, table, mult, shift, pot: bool, out, out_kind: str, outer: int, n: int, inner: int,
                zp: int, lo: int, hi: int) -> None:
    """The integer softmax of storage x laid out (outer, n, inner) along n: e = table[max - x], p = (e * 2**30 +
    sum(e) // 2) // sum(e), out = p requantized by (mult, shift)."""
    name = "softmax_lut"
    count = outer * n * inner
    v = _flat(x, _kind(STORAGE, x_kind, name), count, name).astype(np.int64).reshape(outer, n, inner)
    e = np.asarray(table, np.int64)[v.max(axis=1, keepdims=True) - v]
    total = e.sum(axis=1, keepdims=True)
    p = ((e << 30) + total // 2) // total
    requantize(p, "q", None, mult, shift, pot, out, out_kind, 1, 1, count, zp, lo, hi)


def quantized_add(a, b, out, kind: str, n: int, za: int, zb: int, left: int, ma: int, sa: int, mb: int, sb: int,
                  sign: int, mo: int, so: int, pot: bool, zo: int, lo: int, hi: int) -> None:
    """TFLite's integer ADD (sign 1) or SUB (sign -1) of two storage arrays of one kind."""
    name = "quantized_add"
    dtype = _kind(STORAGE, kind, name)
    if not 0 <= left < 32:
        raise ValueError(f"{name}: the left shift must lie in [0, 32)")
    terms = [multiply((_flat(v, dtype, n, name).astype(np.int64) - z) << left, np.int64(m), np.int64(s))
             for v, z, m, s in ((a, za, ma, sa), (b, zb, mb, sb))]
    total = _fixed_point(terms[0] + sign * terms[1], np.int64(mo), np.int64(so), pot)
    _flat(out, dtype, n, name)[...] = np.clip(total + zo, lo, hi)


def quantized_mul(a, b, out, kind: str, rows: int, inner: int, b_step: int, za: int, zb: int, mult, shift, pot: bool,
                  zo: int, lo: int, hi: int, pos_mult=None, pos_shift=None, pos_pot: bool = False) -> None:
    """Integer MUL of 8-bit storage: (a - za) * (b - zb) requantized as ``requantize`` does; b one value
    (b_step 0), one per row (1) or laid out as a (2). With pos_mult/pos_shift (PRelu): where a - za >= 0,
    a - za requantized by those instead."""
    name = "quantized_mul"
    if kind not in ("B", "b") or b_step not in (0, 1, 2):
        raise ValueError(f"{name}: 8-bit kinds only, b_step 0, 1 or 2")
    dtype = STORAGE[kind]
    values = _flat(a, dtype, rows * inner, name).astype(np.int64).reshape(1, rows, inner) - za
    count = (1, rows, rows * inner)[b_step]
    other = _flat(b, dtype, count, name).astype(np.int64) - zb
    other = other.reshape((1, 1, 1) if b_step == 0 else (1, rows, 1) if b_step == 1 else (1, rows, inner))
    dst = _flat(out, dtype, rows * inner, name).reshape(1, rows, inner)
    _requantize_rows(values * other, None, mult, shift, pot, dst, zo, lo, hi, name)
    if pos_mult is not None:
        positive = np.empty_like(dst)
        _requantize_rows(values, None, pos_mult, pos_shift, pos_pot, positive, zo, lo, hi, name)
        dst[...] = np.where(values >= 0, positive, dst)


def quantize(x, x_kind: str, scale: float, zero: int, out, out_kind: str, lo: int, hi: int) -> None:
    """Per-tensor quantization: round(x / scale) (ties away from zero) + zero, saturated; NaN gives the zero point."""
    name = "quantize"
    dtype = _kind(STORAGE, out_kind, name)
    count = memoryview(out).nbytes // np.dtype(dtype).itemsize
    values = _flat(x, _kind({"f": np.float32, "d": np.float64}, x_kind, name), count, name)
    if not scale > 0:
        raise ValueError(f"{name}: the scale must be positive")
    with np.errstate(over="ignore", invalid="ignore"):
        v = values.astype(np.float64) / scale
        rounded = np.clip(round_half_away(v) + zero, lo, hi)
    _flat(out, dtype, count, name)[...] = np.where(np.isnan(v), np.clip(zero, lo, hi), rounded)


def center(x, kind: str, zero: int, out) -> None:
    """out = float32(x) - float32(zero) for storage integers x."""
    count = memoryview(out).nbytes // 4
    values = _flat(x, _kind(STORAGE, kind, "center"), count, "center")
    _flat(out, np.float32, count, "center")[...] = values.astype(np.float32) - np.float32(zero)


def _planes(x, kind: str, zero: int, planes: int, h: int, w: int, name: str) -> np.ndarray:
    """(planes, h, w) float32: float32 as given (kind f) or storage integers minus ``zero``."""
    if kind == "f":
        return _flat(x, np.float32, planes * h * w, name).reshape(planes, h, w)
    values = _flat(x, _kind(STORAGE, kind, name), planes * h * w, name).reshape(planes, h, w)
    return values.astype(np.float32) - np.float32(zero)


def _bordered(planes: np.ndarray, pt: int, pl: int, ph: int, pw: int) -> np.ndarray:
    """Each plane at row ``pt``, column ``pl`` of a zero (ph, pw) plane; negative pads and parts past
    the border are cut off."""
    out = np.zeros((planes.shape[0], ph, pw), dtype=planes.dtype)
    top, left, skip_r, skip_c = max(pt, 0), max(pl, 0), max(-pt, 0), max(-pl, 0)
    rows, cols = min(planes.shape[1] - skip_r, ph - top), min(planes.shape[2] - skip_c, pw - left)
    if rows > 0 and cols > 0:
        out[:, top:top + rows, left:left + cols] = planes[:, skip_r:skip_r + rows, skip_c:skip_c + cols]
    return out


def pad_planes(x, kind: str, zero: int, out, planes: int, h: int, w: int, pt: int, pl: int, ph: int, pw: int) -> None:
    """out (planes, ph, pw) float32 holds each (h, w) plane of x at row pt, column pl, zeros elsewhere."""
    name = "pad_planes"
    if pt < 0 or pl < 0 or pt + h > ph or pl + w > pw:
        raise ValueError(f"{name}: pads outside the plane")
    dst = _flat(out, np.float32, planes * ph * pw, name).reshape(planes, ph, pw)
    dst[...] = _bordered(_planes(x, kind, zero, planes, h, w, name), pt, pl, ph, pw)


def plane_sums(x, kind: str, out, planes: int, size: int) -> None:
    """out[p] = the int64 sum of the ``size`` storage integers of plane p, or with kind f the float64 sum of its
    float32 values added one after the other."""
    if kind == "f":
        values = _flat(x, np.float32, planes * size, "plane_sums").reshape(planes, size).astype(np.float64)
        totals = np.add.accumulate(values, axis=1)[:, -1] if size else np.zeros(planes)
        _flat(out, np.float64, planes, "plane_sums")[...] = totals
        return
    values = _flat(x, _kind(STORAGE, kind, "plane_sums"), planes * size, "plane_sums").reshape(planes, size)
    _flat(out, np.int64, planes, "plane_sums")[...] = values.sum(axis=1, dtype=np.int64)


def _depthwise_sums(planes: np.ndarray, w, start: np.ndarray, c: int, kh: int, kw: int, oh: int, ow: int, sh: int,
                    sw: int, dh: int, dw: int, pt: int, pl: int, name: str) -> np.ndarray:
    """``start`` (n*c, 1, 1 or broadcastable) plus the depthwise taps over the zero-bordered ``planes``,
    accumulated tap by tap in row-major kernel order in the dtype of ``start``."""
    if min(sh, sw, dh, dw, oh, ow) <= 0:
        raise ValueError(f"{name}: strides, dilations and output sizes must be positive")
    ph, pw = (oh - 1) * sh + (kh - 1) * dh + 1, (ow - 1) * sw + (kw - 1) * dw + 1
    padded = _bordered(planes, pt, pl, ph, pw).astype(start.dtype)
    taps = np.tile(_flat(w, np.float32, c * kh * kw, name).reshape(c, kh, kw), (planes.shape[0] // c, 1, 1))
    acc = np.broadcast_to(start, (planes.shape[0], oh, ow)).copy()
    for i in range(kh):
        for j in range(kw):
            window = padded[:, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
            acc += taps[:, i, j, None, None].astype(acc.dtype) * window
    return acc


def depthwise_conv2d(x, w, bias, y, n: int, c: int, h: int, w_: int, kh: int, kw: int, oh: int, ow: int, sh: int,
                     sw: int, dh: int, dw: int, pt: int, pl: int, lo: float, hi: float, residual=None,
                     act: int = ACT_CLAMP, alpha: float = 0.0, beta: float = 0.0, slopes=None, post=None) -> None:
    """y (N, C, OH, OW) float32 = clamp(depthwise conv of x (N, C, H, W) with implicit zero padding + bias, lo, hi);
    the residual and activation as in ``conv_gemm`` (plane p takes slope p % C)."""
    name = "depthwise_conv2d"
    start = np.zeros((n * c, 1, 1), np.float32)
    if bias is not None:
        start += np.tile(_flat(bias, np.float32, c, name), n).reshape(n * c, 1, 1)
    sums = _depthwise_sums(_planes(x, "f", 0, n * c, h, w_, name), w, start, c, kh, kw, oh, ow, sh, sw, dh, dw, pt,
                           pl, name)
    _flat(y, np.float32, n * c * oh * ow, name)[...] = _post(sums, residual, act, lo, hi, alpha, beta, name,
                                                             slopes, post).reshape(-1)


def pw_dw_conv(x, w1, b1, w2, b2, y, cin: int, cexp: int, h: int, w: int, kh: int, kw: int, oh: int, ow: int,
               sh: int, sw: int, dh: int, dw: int, pt: int, pl: int, epilogue1: tuple, epilogue2: tuple,
               least: int = 0) -> bool:
    """``conv_gemm`` of the pointwise weights w1 (cexp, cin) over one image x (cin, h, w), then
    ``depthwise_conv2d`` of its result with w2 (cexp, kh, kw) into y; each epilogue is (lo, hi, act, alpha, beta,
    slopes, post). Always done (True), whatever ``least``."""
    expanded = np.empty(cexp * h * w, np.float32)
    lo, hi, act, alpha, beta, slopes, post = epilogue1
    conv_gemm(w1, x, np.arange(cin, dtype=np.int64) * (h * w), np.arange(h * w, dtype=np.int64), b1, expanded, cexp,
              cin, h * w, lo, hi, None, act, alpha, beta, slopes, post)
    lo, hi, act, alpha, beta, slopes, post = epilogue2
    depthwise_conv2d(expanded, w2, b2, y, 1, cexp, h, w, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl, lo, hi, None, act,
                     alpha, beta, slopes, post)
    return True


def qdepthwise_conv2d(x, x_kind: str, zx: int, w, bias, mult, shift, pot: bool, y, out_kind: str, zo: int, lo: int,
                      hi: int, n: int, c: int, h: int, w_: int, kh: int, kw: int, oh: int, ow: int, sh: int, sw: int,
                      dh: int, dw: int, pt: int, pl: int, add=None, table=None) -> None:
    """Integer depthwise convolution: centered storage x, centered float32 weights w, exact sums,
    requantized per channel into storage y (N, C, OH, OW); then the residual's ADD and the table as in
    ``qconv_gemm``."""
    name = "qdepthwise_conv2d"
    planes = _planes(x, x_kind, zx, n * c, h, w_, name)
    sums = _depthwise_sums(planes, w, np.zeros((1, 1, 1)), c, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl, name)
    dst = _flat(y, _kind(STORAGE, out_kind, name), n * c * oh * ow, name).reshape(n, c, oh * ow)
    _requantize_rows(sums.astype(np.int64).reshape(n, c, oh * ow), bias, mult, shift, pot, dst, zo, lo, hi, name)
    _post_quant(dst.reshape(n * c, oh * ow), out_kind, add, table, name, c)


def _default_threads() -> int:
    """OMP_NUM_THREADS when set, else the CPUs of the process's affinity mask (as native/pool.c)."""
    try:
        wanted = int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0])
    except ValueError:
        wanted = 0
    if wanted < 1:
        wanted = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    return min(wanted, MAX_THREADS)


_threads = _default_threads()


def set_threads(t: int) -> None:
    """Record the thread count (the numpy kernels run on one thread whatever it is)."""
    global _threads
    if int(t) < 1:
        raise ValueError("set_threads: the thread count must be at least 1")
    _threads = min(int(t), MAX_THREADS)


def get_threads() -> int:
    """The thread count last set (default: OMP_NUM_THREADS, else the CPUs available)."""
    return _threads


def _tap_max(a: np.ndarray, axis: int, k: int, s: int, d: int, o: int) -> np.ndarray:
    """np.maximum over the k taps (stride s, dilation d, o outputs) of ``axis`` of ``a``, taken in tap order."""
    taps = [a[(slice(None),) * axis + (slice(i * d, i * d + (o - 1) * s + 1, s),)] for i in range(k)]
    acc = taps[0].copy()
    for tap in taps[1:]:
        np.maximum(acc, tap, out=acc)
    return acc


def maxpool2d(x, kind: str, y, planes: int, h: int, w: int, kh: int, kw: int, oh: int, ow: int, sh: int, sw: int,
              dh: int, dw: int, pt: int, pl: int) -> None:
    """y (planes, oh, ow) = the max of every kh x kw window (strides sh, sw; dilations dh, dw) of the (planes, h, w)
    planes of x (kind f float32, or storage B b h) placed at row pt, column pl of planes of the type's lowest value;
    np.maximum down each window's columns in tap order, then across them."""
    name = "maxpool2d"
    dtype = _kind({"f": np.float32, **STORAGE}, kind, name)
    if min(kh, kw, sh, sw, dh, dw) < 1 or min(planes, h, w, oh, ow) < 0:
        raise ValueError(f"{name}: kernel, strides and dilations must be positive, sizes not negative")
    values = _flat(x, dtype, planes * h * w, name).reshape(planes, h, w)
    dst = _flat(y, dtype, planes * oh * ow, name).reshape(planes, oh, ow)
    if dst.size == 0:
        return
    ph, pw = (oh - 1) * sh + (kh - 1) * dh + 1, (ow - 1) * sw + (kw - 1) * dw + 1
    padded = _bordered(values, pt, pl, ph, pw)
    outside = ~_bordered(np.ones((1, h, w), bool), pt, pl, ph, pw)[0]
    padded[:, outside] = np.finfo(dtype).min if kind == "f" else np.iinfo(dtype).min
    dst[...] = _tap_max(_tap_max(padded, 1, kh, sh, dh, oh), 2, kw, sw, dw, ow)


def lookup8(x, tables, out, rows: int, inner: int, per_row: bool) -> None:
    """out[r, i] = table_r[x[r, i]] for bytes x (rows, inner): one 256-entry byte table, or one per row."""
    name = "lookup8"
    if min(rows, inner) < 0:
        raise ValueError(f"{name}: rows and inner must not be negative")
    codes = _flat(x, np.uint8, rows * inner, name).reshape(rows, inner)
    table = _flat(tables, np.uint8, 256 * (rows if per_row else 1), name).reshape(-1, 256)
    dst = _flat(out, np.uint8, rows * inner, name).reshape(rows, inner)
    if per_row:
        dst[...] = np.take_along_axis(table, codes.astype(np.intp), axis=1)
    else:
        dst[...] = table[0].take(codes)


def phase_planes(x, out, planes: int, h: int, w: int, pt: int, pl: int, qh: int, qw: int, sh: int, sw: int) -> None:
    """out[p, a, b, y, x] = padded[p, y * sh + a, x * sw + b]: x placed at (pt, pl) in zero-bordered planes of
    qh * sh rows and qw * sw columns, split into their stride phases."""
    name = "phase_planes"
    if min(planes, h, w, pt, pl, qh, qw) < 0 or min(sh, sw) < 1:
        raise ValueError(f"{name}: negative sizes or strides below 1")
    padded = np.zeros((planes, qh * sh + h + pt, qw * sw + w + pl), np.float32)
    padded[:, pt:pt + h, pl:pl + w] = _flat(x, np.float32, planes * h * w, name).reshape(planes, h, w)
    phases = padded[:, :qh * sh, :qw * sw].reshape(planes, qh, sh, qw, sw).transpose(0, 2, 4, 1, 3)
    _flat(out, np.float32, planes * sh * sw * qh * qw, name).reshape(phases.shape)[...] = phases


def planes8(x, tables, out, images: int, pixels: int, channels: int, size: int) -> None:
    """out[i, c, p] = tables[c][x[i, p, c]] for channels-last bytes x: byte (size 1) or float32 (size 4) tables."""
    name = "planes8"
    if min(images, pixels, channels) < 0 or size not in (1, 4):
        raise ValueError(f"{name}: negative sizes or an entry size other than 1 or 4")
    dtype = np.uint8 if size == 1 else np.float32
    count = images * pixels * channels
    codes = _flat(x, np.uint8, count, name).reshape(images, pixels, channels)
    table = _flat(tables, dtype, 256 * channels, name).reshape(channels, 256)
    dst = _flat(out, dtype, count, name).reshape(images, channels, pixels)
    for c in range(channels):
        dst[:, c] = table[c].take(codes[:, :, c])


def lookup8_pairs(a, b, table, out, n: int) -> None:
    """out[i] = table[a[i] * 256 + b[i]] for bytes a and b (the table: 65536 entries, then 3 bytes not used)."""
    name = "lookup8_pairs"
    pairs = _flat(table, np.uint8, 65536 + 3, name)[:65536]
    index = _flat(a, np.uint8, n, name).astype(np.intp) << 8 | _flat(b, np.uint8, n, name)
    _flat(out, np.uint8, n, name)[...] = pairs[index]


def byte_histograms(x, out, rows: int, inner: int) -> None:
    """out[r, b] (int64 (rows, 256)) = how many bytes of row r of x (rows, inner) are b."""
    name = "byte_histograms"
    if min(rows, inner) < 0:
        raise ValueError(f"{name}: rows and inner must not be negative")
    if rows == 0:
        return
    codes = _flat(x, np.uint8, rows * inner, name).reshape(rows, inner)
    dst = _flat(out, np.int64, rows * 256, name).reshape(rows, 256)
    offsets = np.arange(rows, dtype=np.intp)[:, None] * 256
    dst[...] = np.bincount((codes + offsets).reshape(-1), minlength=rows * 256).reshape(rows, 256)


def _weave_check(name: str, planes: int, h: int, w: int, fy: int, fx: int) -> None:
    if min(planes, h, w) < 0 or min(fy, fx) < 1 or fx > 64:
        raise ValueError(f"{name}: sizes must not be negative, factors between 1 and 64")


def upsample8(x, out, planes: int, h: int, w: int, fy: int, fx: int, size: int = 1) -> None:
    """out[p, y * fy + a, x * fx + b] = x[p, y, x]: nearest upsampling of byte (or 4-byte: ``size`` 4) planes by
    whole factors."""
    name = "upsample8"
    _weave_check(name, planes, h, w, fy, fx)
    if size not in (1, 4):
        raise ValueError(f"{name}: an element size other than 1 or 4")
    dtype = np.uint8 if size == 1 else np.uint32
    src = _flat(x, dtype, planes * h * w, name).reshape(planes, h, 1, w, 1)
    dst = _flat(out, dtype, planes * h * fy * w * fx, name).reshape(planes, h, fy, w, fx)
    dst[...] = src


def depth_to_space8(x, out, planes: int, kh: int, kw: int, h: int, w: int) -> None:
    """out[p, y * kh + i, x * kw + j] = x[p, i, j, y, x] for byte planes x (planes, kh, kw, h, w)."""
    name = "depth_to_space8"
    _weave_check(name, planes, h, w, kh, kw)
    src = _flat(x, np.uint8, planes * kh * kw * h * w, name).reshape(planes, kh, kw, h, w)
    dst = _flat(out, np.uint8, planes * h * kh * w * kw, name).reshape(planes, h, kh, w, kw)
    dst[...] = src.transpose(0, 3, 1, 4, 2)
