"""Hand-written symbols with .params files from our own writer (no mxnet anywhere), against onnxruntime
running the equivalent ONNX graph, or numpy where MXNet's rule is a line of numpy."""

from __future__ import annotations

import numpy as np
import pytest
from mxnet_util import SymbolWriter, run_ours, write_params

from rknn_core.testing import assert_close, make_model, run_ort, save_model, write_dataset

RNG = np.random.default_rng(5)


def _rand(*shape, low=-1.0, high=1.0):
    return RNG.uniform(low, high, shape).astype(np.float32)


def _ours(tmp_path, writer: SymbolWriter, heads, params: dict, inputs: list[np.ndarray]) -> list[np.ndarray]:
    symbol = writer.save(tmp_path / "m-symbol.json", heads)
    path = write_params(tmp_path / "m-0000.params", params)
    return run_ours(symbol, path, inputs, [list(x.shape[1:]) for x in inputs], str(tmp_path))


def _ort(tmp_path, nodes, inputs: dict[str, np.ndarray], outputs: list[str], initializers: dict) -> list[np.ndarray]:
    return run_ort(save_model(make_model(nodes, inputs, outputs, initializers), str(tmp_path)), inputs)


def test_conv_batchnorm_pool_dense_softmax_against_onnxruntime(tmp_path):
    """A small classifier with MXNet's defaults that differ from ONNX's: BatchNorm fix_gamma (gamma read as 1)
    and eps 1e-3, pooling_convention 'full' (ceil), FullyConnected flattening, SoftmaxOutput with a label."""
    from onnx import helper

    x = _rand(1, 4, 11, 11)
    p = {"conv_weight": _rand(6, 2, 3, 3), "conv_bias": _rand(6), "bn_gamma": _rand(6, low=2, high=3),
         "bn_beta": _rand(6), "bn_moving_mean": _rand(6), "bn_moving_var": _rand(6, low=0.5, high=1.5),
         "fc_weight": _rand(5, 6 * 3 * 3), "fc_bias": _rand(5)}
    s = SymbolWriter()
    data = s.var("data")
    conv = s.op("Convolution", "conv", [data, s.var("conv_weight"), s.var("conv_bias")], kernel=(3, 3), pad=(1, 1),
                stride=(2, 2), num_filter=6, num_group=2)
    bn = s.op("BatchNorm", "bn", [conv, *(s.var(f"bn_{k}") for k in ("gamma", "beta", "moving_mean", "moving_var"))])
    act = s.op("LeakyReLU", "act", [bn], act_type="leaky", slope=0.1)
    pool = s.op("Pooling", "pool", [act], kernel=(3, 3), stride=(2, 2), pool_type="max", pooling_convention="full")
    fc = s.op("FullyConnected", "fc", [pool, s.var("fc_weight"), s.var("fc_bias")], num_hidden=5)
    out = s.op("SoftmaxOutput", "softmax", [fc, s.var("softmax_label")])
    params = {("aux:" if "moving" in k else "arg:") + k: v for k, v in p.items()}
    got = _ours(tmp_path, s, [out, pool], params, [x])
    nodes = [helper.make_node("Conv", ["x", "cw", "cb"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2],
                              group=2),
             helper.make_node("BatchNormalization", ["c", "one", "bb", "bm", "bv"], ["b"], epsilon=1e-3),
             helper.make_node("LeakyRelu", ["b"], ["a"], alpha=0.1),
             helper.make_node("MaxPool", ["a"], ["pool"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
             helper.make_node("Flatten", ["pool"], ["f"]),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["g"], transB=1),
             helper.make_node("Softmax", ["g"], ["prob"], axis=1)]
    init = {"cw": p["conv_weight"], "cb": p["conv_bias"], "one": np.ones(6, np.float32), "bb": p["bn_beta"],
            "bm": p["bn_moving_mean"], "bv": p["bn_moving_var"], "fw": p["fc_weight"], "fb": p["fc_bias"]}
    ref = _ort(tmp_path, nodes, {"x": x}, ["prob", "pool"], init)
    assert got[1].shape == (1, 6, 3, 3)  # ceil: 1 + ceil((6 - 3) / 2) = 3
    assert_close(got, ref)


def test_deconvolution_target_shape_against_onnxruntime_output_shape(tmp_path):
    """MXNet's target_shape pads and ONNX's output_shape (extra padding at the start) cut the same window."""
    from onnx import helper

    x, w, b = _rand(1, 4, 5, 6), _rand(4, 3, 3, 3), _rand(6)
    s = SymbolWriter()
    d = s.op("Deconvolution", "deconv", [s.var("data"), s.var("deconv_weight"), s.var("deconv_bias")], kernel=(3, 3),
             stride=(2, 2), target_shape=(10, 12), num_filter=6, num_group=2, no_bias=False)
    got = _ours(tmp_path, s, [d], {"arg:deconv_weight": w, "arg:deconv_bias": b}, [x])
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                            output_shape=[10, 12], group=2)
    ref = _ort(tmp_path, [node], {"x": x}, ["y"], {"w": w, "b": b})
    assert got[0].shape == (1, 6, 10, 12)
    assert_close(got, ref)


def test_data_movement_against_numpy(tmp_path):
    x, big = _rand(1, 6, 4, 5), _rand(1, 6, 9, 11)
    s = SymbolWriter()
    data, other = s.var("data"), s.var("big")
    heads = [s.op("Reshape", "r1", [data], shape=(0, -4, 2, -1, -2)),
             s.op("Reshape", "r2", [data], shape=(-1, 0), reverse=True),
             s.op("transpose", "t", [data], axes=(0, 2, 3, 1)),
             s.op("slice_axis", "sa", [data], axis=-1, begin=-3, end="None"),
             s.op("slice", "sl", [data], begin=(None, 5), end=(None, 0), step=(None, -2)),
             s.op("Crop", "crop", [other, data], num_args=2, center_crop=True),
             s.op("UpSampling", "up", [data], scale=2, sample_type="nearest", num_args=1),
             s.op("Concat", "cat", [data, data], dim=-1),
             s.op("Flatten", "flat", [data])]
    got = _ours(tmp_path, s, heads, {}, [x, big])
    ref = [x.reshape(1, 2, 3, 4, 5), x.reshape(24, 5), x.transpose(0, 2, 3, 1), x[..., 2:], x[:, 5:0:-2],
           big[:, :, 2:6, 3:8], x.repeat(2, axis=2).repeat(2, axis=3), np.concatenate([x, x], axis=-1), x.reshape(1, -1)]
    assert_close(got, ref, rtol=0, atol=0)


@pytest.mark.parametrize(("op", "attrs", "reference"), [
    ("_plus_scalar", {"scalar": 1.5}, lambda x: x + 1.5),
    ("_minus_scalar", {"scalar": 0.25}, lambda x: x - 0.25),
    ("_rminus_scalar", {"scalar": 2.0}, lambda x: 2.0 - x),
    ("_mul_scalar", {"scalar": -3.0}, lambda x: x * -3.0),
    ("_rdiv_scalar", {"scalar": 2.0}, lambda x: 2.0 / x),
    ("clip", {"a_min": -0.5, "a_max": 0.25}, lambda x: np.clip(x, -0.5, 0.25)),
    ("log", {}, np.log),
    ("_copy", {}, lambda x: x),
    ("Dropout", {"p": 0.5}, lambda x: x),
    ("LeakyReLU", {"act_type": "elu", "slope": 0.3}, lambda x: np.where(x > 0, x, 0.3 * np.expm1(x))),
    ("Activation", {"act_type": "softsign"}, lambda x: x / (1 + np.abs(x))),
    ("softmax", {"axis": 1, "temperature": 2.0}, lambda x: np.exp(x / 2) / np.exp(x / 2).sum(1, keepdims=True)),
    ("SoftmaxActivation", {}, lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
])
def test_elementwise_ops_against_numpy(tmp_path, op, attrs, reference):
    x = _rand(1, 3, 4, 5, low=0.1, high=2.0) * np.where(_rand(1, 3, 4, 5) > 0, 1, -1).astype(np.float32)
    if op == "log":
        x = np.abs(x)
    s = SymbolWriter()
    head = s.op(op, "op0", [s.var("data")], **attrs)
    assert_close(_ours(tmp_path, s, [head], {}, [x]), [reference(x).astype(np.float32)], rtol=1e-5)


def test_prelu_dense_without_flatten_and_batchnorm_on_the_last_axis_against_numpy(tmp_path):
    x, gamma = _rand(1, 3, 4, 5), _rand(3, low=0.1, high=0.5)
    w, b = _rand(2, 5), _rand(2)
    g, beta, mean, var = _rand(5, low=0.5, high=1.5), _rand(5), _rand(5), _rand(5, low=0.5, high=1.5)
    s = SymbolWriter()
    data = s.var("data")
    prelu = s.op("LeakyReLU", "prelu", [data, s.var("prelu_gamma")], act_type="prelu")
    fc = s.op("FullyConnected", "fc", [data, s.var("fc_weight"), s.var("fc_bias")], num_hidden=2, flatten=False)
    bn = s.op("BatchNorm", "bn", [data, *(s.var(f"bn_{k}") for k in ("gamma", "beta", "moving_mean", "moving_var"))],
              axis=-1, fix_gamma=False, eps=1e-5)
    params = {"arg:prelu_gamma": gamma, "arg:fc_weight": w, "arg:fc_bias": b, "arg:bn_gamma": g, "arg:bn_beta": beta,
              "aux:bn_moving_mean": mean, "aux:bn_moving_var": var}
    got = _ours(tmp_path, s, [prelu, fc, bn], params, [x])
    ref = [np.where(x > 0, x, gamma.reshape(3, 1, 1) * x), x @ w.T + b, (x - mean) / np.sqrt(var + 1e-5) * g + beta]
    assert_close(got, ref)


def test_quantized_build_stays_near_the_float_model(tmp_path):
    """load_mxnet -> build(do_quantization=True) with a calibration dataset: the u8 model's outputs stay within
    a few output steps of the float model's."""
    from rknn.api import RKNN

    s = SymbolWriter()
    conv = s.op("Convolution", "conv", [s.var("data"), s.var("conv_weight"), s.var("conv_bias")], kernel=(3, 3),
                pad=(1, 1), num_filter=8)
    relu = s.op("Activation", "relu", [conv], act_type="relu")
    pool = s.op("Pooling", "pool", [relu], global_pool=True, pool_type="avg", kernel=(1, 1))
    fc = s.op("FullyConnected", "fc", [pool, s.var("fc_weight"), s.var("fc_bias")], num_hidden=4)
    symbol = s.save(tmp_path / "m-symbol.json", [fc])
    params = write_params(tmp_path / "m-0000.params", {"arg:conv_weight": _rand(8, 3, 3, 3), "arg:conv_bias": _rand(8),
                                                       "arg:fc_weight": _rand(4, 8), "arg:fc_bias": _rand(4)})
    samples = [_rand(1, 3, 8, 8) for _ in range(4)]
    dataset = write_dataset([[x] for x in samples], str(tmp_path))
    float_out = run_ours(symbol, params, samples[:1], [[3, 8, 8]], str(tmp_path), via_file=False)[0]
    rknn = RKNN()
    assert rknn.load_mxnet(symbol, params, [[3, 8, 8]]) == 0
    assert rknn.build(do_quantization=True, dataset=dataset) == 0
    assert rknn.init_runtime() == 0
    quant_out = rknn.inference(samples[:1], data_type="float32", data_format="nchw")[0]
    rknn.release()
    step = (float_out.max() - float_out.min()) / 255
    assert np.abs(quant_out - float_out).max() <= 4 * max(step, 1e-3), (quant_out, float_out)
    assert not np.array_equal(quant_out, float_out)  # the integer kernels ran
