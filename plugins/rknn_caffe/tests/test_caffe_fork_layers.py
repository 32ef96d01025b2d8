"""Layers OpenCV does not read as Caffe does, against independent references: the LSTM of 'lstm_caffe'
(onnxruntime's LSTM), Upsample (numpy repeat), Interp with a shrink factor (onnxruntime's Resize) and
LRN with k != 1 (OpenCV ignores k; Caffe's formula)."""

from __future__ import annotations

import tempfile

import numpy as np
from caffe_util import header, ours, write_net

from rknn_core.plugins import default_registry
from rknn_core.testing import assert_close, run_ort, save_model, single_op

RNG = np.random.default_rng(11)
T, N, SIZE, H = 6, 2, 5, 4


def _lstm_blobs() -> list[np.ndarray]:
    return [(RNG.standard_normal(s) * 0.5).astype(np.float32) for s in ((4 * H, SIZE), (4 * H,), (4 * H, H))]


def _ort_lstm(x: np.ndarray, blobs: list[np.ndarray]) -> np.ndarray:
    """onnxruntime's LSTM from a zero state: Caffe's gates i, f, o, g reordered to ONNX's i, o, f, c."""
    w_xc, b_c, w_hc = blobs
    order = np.concatenate([np.arange(0, H), np.arange(2 * H, 3 * H), np.arange(H, 2 * H), np.arange(3 * H, 4 * H)])
    inits = {"W": w_xc[order][None], "R": w_hc[order][None],
             "B": np.concatenate([b_c[order], np.zeros(4 * H, np.float32)])[None]}
    model = single_op("LSTM", {"X": x}, inits, n_outputs=1, hidden_size=H)
    with tempfile.TemporaryDirectory() as folder:
        y = run_ort(save_model(model, folder), {"X": x})[0]  # (T, 1, N, H)
    return y[:, 0]


def test_lstm_with_continuation_indicator_matches_onnxruntime(tmp_path):
    proto = header(T, N, SIZE, name="x") + f'''
layer {{ name: "cont" type: "ContinuationIndicator" top: "cont"
  continuation_indicator_param {{ time_step: {T} batch_size: {N} }} }}
layer {{ name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h" recurrent_param {{ num_output: {H} }} }}'''
    blobs = _lstm_blobs()
    prototxt, caffemodel = write_net(tmp_path, proto, {"lstm": blobs})
    x = RNG.standard_normal((T, N, SIZE)).astype(np.float32)
    got = ours(prototxt, caffemodel, [x], proto="lstm_caffe", tmp_dir=str(tmp_path))
    assert_close(got, [_ort_lstm(x, blobs)])


def test_lstm_op_kernel_matches_onnxruntime():
    """The op "CaffeLSTM" alone, without cont: one sequence from a zero state."""
    blobs = _lstm_blobs()
    x = RNG.standard_normal((T, N, SIZE)).astype(np.float32)
    got = default_registry().op("CaffeLSTM").kernel([x, *blobs, None], {})
    assert_close(got, [_ort_lstm(x, blobs)])


def test_lstm_cont_zero_restarts_the_sequence(tmp_path):
    proto = header(T, N, SIZE, name="x") + header(T, N, name="cont") + f'''
layer {{ name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h" recurrent_param {{ num_output: {H} }} }}'''
    blobs = _lstm_blobs()
    prototxt, caffemodel = write_net(tmp_path, proto, {"lstm": blobs})
    x = RNG.standard_normal((T, N, SIZE)).astype(np.float32)
    cont = np.ones((T, N), np.float32)
    cont[0] = cont[3] = 0.0
    got = ours(prototxt, caffemodel, [x, cont], proto="lstm_caffe", tmp_dir=str(tmp_path))
    expected = np.concatenate([_ort_lstm(x[:3], blobs), _ort_lstm(x[3:], blobs)])
    assert_close(got, [expected])


def test_upsample_repeats_pixels(tmp_path):
    proto = header(1, 2, 3, 4) + '''
layer { name: "up" type: "Upsample" bottom: "data" top: "up" upsample_param { scale: 2 } }
layer { name: "up2" type: "Upsample" bottom: "data" top: "up2" upsample_param { scale_h: 3 scale_w: 1 } }'''
    prototxt, _ = write_net(tmp_path, proto, {})
    x = RNG.standard_normal((1, 2, 3, 4)).astype(np.float32)
    got = ours(prototxt, None, [x], tmp_dir=str(tmp_path))
    assert_close(got, [x.repeat(2, 2).repeat(2, 3), x.repeat(3, 2)])


def test_interp_shrink_and_zoom_match_onnxruntime(tmp_path):
    """Caffe's Interp sizes: shrink (h-1)/s+1, then zoom h+(h-1)(z-1); bilinear with aligned corners."""
    proto = header(1, 2, 9, 7) + '''
layer { name: "i" type: "Interp" bottom: "data" top: "i" interp_param { shrink_factor: 2 zoom_factor: 3 } }'''
    prototxt, _ = write_net(tmp_path, proto, {})
    x = RNG.standard_normal((1, 2, 9, 7)).astype(np.float32)
    got = ours(prototxt, None, [x], tmp_dir=str(tmp_path))
    sizes = np.array([1, 2, 5 + 4 * 2, 4 + 3 * 2], np.int64)  # 9 -> 5 -> 13, 7 -> 4 -> 10
    model = single_op("Resize", {"X": x}, {"roi": np.zeros(0, np.float32), "scales": np.zeros(0, np.float32),
                                           "sizes": sizes}, input_names=["X", "roi", "scales", "sizes"],
                      mode="linear", coordinate_transformation_mode="align_corners")
    ref = run_ort(save_model(model, str(tmp_path)), {"X": x})
    assert got[0].shape == (1, 2, 13, 10)
    assert_close(got, ref)


def test_lrn_uses_k(tmp_path):
    proto = header(1, 5, 2, 3) + '''
layer { name: "n" type: "LRN" bottom: "data" top: "n" lrn_param { local_size: 3 alpha: 0.3 beta: 0.75 k: 2 } }'''
    prototxt, _ = write_net(tmp_path, proto, {})
    x = RNG.standard_normal((1, 5, 2, 3)).astype(np.float32)
    got = ours(prototxt, None, [x], tmp_dir=str(tmp_path))
    padded = np.pad(x * x, ((0, 0), (1, 1), (0, 0), (0, 0)))
    window = padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]
    assert_close(got, [x / (2 + 0.3 / 3 * window) ** 0.75])  # Caffe: (k + alpha / n * sum) ^ beta
