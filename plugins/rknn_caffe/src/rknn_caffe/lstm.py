"""Caffe's LSTM layer (load_caffe proto='lstm_caffe', as in CRNN models) and its op ``CaffeLSTM``.

Bottoms: x (T, N, ...) and optionally cont (T, N), the sequence-continuation flags (0 starts a new
sequence: the state is reset). Blobs: W_xc (4H, I), b_c (4H), W_hc (4H, H), gates in Caffe's order
i, f, o, g. Top: h (T, N, H).
"""

from __future__ import annotations

import numpy as np

from rknn_caffe.context import Ctx
from rknn_caffe.net import CaffeLayer
from rknn_core.errors import RknnError
from rknn_core.ir import TensorInfo
from rknn_core.records import Cost, OpDef


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def _infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
    x, _, w_hc = inputs[0], inputs[1], inputs[3]
    if len(x.shape) < 2:
        raise RknnError(f"CaffeLSTM needs an input of shape (T, N, ...), got {list(x.shape)}")
    return [TensorInfo((x.shape[0], x.shape[1], w_hc.shape[1]), "float32")]


def _kernel(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]:
    x, w_xc, b_c, w_hc, cont = inputs
    steps, batch = x.shape[:2]
    hidden = w_hc.shape[1]
    gates_x = x.reshape(steps, batch, -1).astype(np.float32) @ w_xc.T + b_c
    h = np.zeros((batch, hidden), np.float32)
    c = np.zeros((batch, hidden), np.float32)
    out = np.empty((steps, batch, hidden), np.float32)
    for t in range(steps):
        keep = (np.float32(t > 0) if cont is None else cont.reshape(steps, batch)[t].astype(np.float32))[..., None]
        gates = gates_x[t] + (keep * h) @ w_hc.T
        i, f, o = (_sigmoid(gates[:, k * hidden:(k + 1) * hidden]) for k in range(3))
        g = np.tanh(gates[:, 3 * hidden:])
        c = keep * f * c + i * g
        h = o * np.tanh(c)
        out[t] = h
    return [out]


def _cost(inputs, outputs, attrs) -> Cost:
    x, w_xc, _, w_hc = inputs[:4]
    steps_batch = x.shape[0] * x.shape[1]
    return Cost(macs=steps_batch * (int(w_xc.size) + int(w_hc.size)),
                bytes=sum(int(t.nbytes) for t in inputs if t is not None) + int(outputs[0].nbytes))


OPS = [OpDef("CaffeLSTM", _infer, _kernel, _cost, min_inputs=4, max_inputs=5,
             doc="Caffe's LSTM over (T, N, I) with continuation flags; gates i, f, o, g")]


def lstm(ctx: Ctx, layer: CaffeLayer) -> None:
    if ctx.proto != "lstm_caffe":
        raise RknnError("LSTM layers are read with load_caffe(..., proto='lstm_caffe')")
    p = layer.param.recurrent_param
    if p.expose_hidden or len(layer.bottoms) > 2:
        raise RknnError("LSTM with exposed hidden states or a static input is not supported")
    shape = ctx.shape(0)
    hidden = int(p.num_output)
    if len(shape) < 2 or hidden < 1:
        raise RknnError(f"LSTM needs recurrent_param num_output and a (T, N, ...) bottom, got {list(shape)}")
    size = int(np.prod(shape[2:], dtype=np.int64))
    inputs = [ctx.bottom(0), ctx.const(f"{layer.name}/W_xc", ctx.blob(0, (4 * hidden, size), "input weights")),
              ctx.const(f"{layer.name}/b_c", ctx.blob(1, (4 * hidden,), "bias")),
              ctx.const(f"{layer.name}/W_hc", ctx.blob(2, (4 * hidden, hidden), "recurrent weights"))]
    if len(layer.bottoms) > 1:
        if tuple(ctx.shape(1)) != tuple(shape[:2]):
            raise RknnError(f"the cont bottom has shape {list(ctx.shape(1))}; it must be (T, N) = {list(shape[:2])}")
        inputs.append(ctx.bottom(1))
    ctx.top(0, "CaffeLSTM", inputs)


def continuation_indicator(ctx: Ctx, layer: CaffeLayer) -> None:
    """CRNN's ContinuationIndicator: a (T, N) constant, 0 at the first step and 1 after."""
    p = layer.param.continuation_indicator_param
    flags = np.ones((p.time_step, p.batch_size), np.float32)
    flags[0] = 0.0
    ctx.bind(0, ctx.const(layer.tops[0], flags))


CONVERTERS = {"LSTM": lstm, "ContinuationIndicator": continuation_indicator}
