"""Vendor scripts behave as with the vendor's toolkit: rknn_batch_size with every quantized dtype,
the later releases' mean_values/std_values, a failed config() stopping build, want_float, and
load_model_in_npu without a device."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from PIL import Image
from vendor_flow import small_model

from rknn.api import RKNN

# the core's three quantizers and the example plugin's (skipped when that plugin is not installed)
DTYPES = ["asymmetric_quantized-u8", "dynamic_fixed_point-8", "dynamic_fixed_point-16", "asymmetric_quantized-i8"]
MEAN = "127.5 127.5 127.5 127.5"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """small_model (Conv, depthwise, Add, pools, Gemm: 1x3x16x16 -> 1x5), six pictures, a dataset of single samples."""
    path = tmp_path_factory.mktemp("vendor_compat")
    onnx.save(small_model(), path / "model.onnx")
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path / f"s{i}.png")
    (path / "dataset.txt").write_text("".join(f"s{i}.png\n" for i in range(6)))
    return path


def _pictures(folder, count: int = 4) -> list[np.ndarray]:
    return [np.asarray(Image.open(folder / f"s{i}.png")) for i in range(count)]


def _built(folder, quantize: bool = True, batch: int = 1, **config) -> RKNN:
    rknn = RKNN()
    rknn.config(**config)
    assert rknn.load_onnx(model=str(folder / "model.onnx")) == 0
    assert rknn.build(do_quantization=quantize, dataset=str(folder / "dataset.txt"), rknn_batch_size=batch) == 0
    assert rknn.init_runtime() == 0
    return rknn


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_with_quantization_matches_batch_one_per_sample(folder, dtype):
    probe = RKNN()
    probe.config(quantized_dtype=dtype)
    if probe._tk.config_error:
        pytest.skip(f"no quantizer plugin for {dtype} is installed")
    pictures = _pictures(folder)
    single = _built(folder, channel_mean_value=MEAN, quantized_dtype=dtype)
    batched = _built(folder, batch=4, channel_mean_value=MEAN, quantized_dtype=dtype)
    per_sample = np.concatenate([single.inference(inputs=[p])[0] for p in pictures])
    together = batched.inference(inputs=[np.stack(pictures)])[0]
    assert together.shape == (4, 5) and together.dtype == np.float32
    np.testing.assert_array_equal(together, per_sample)
    assert len({tuple(row) for row in together}) == 4  # four different samples, not one repeated


def test_mean_values_std_values_equal_channel_mean_value(folder):
    picture = _pictures(folder, 1)
    old = _built(folder, quantize=False, channel_mean_value="100 120 140 50", reorder_channel="2 1 0")
    new = _built(folder, quantize=False, mean_values=[[100, 120, 140]], std_values=[[50, 50, 50]],
                 reorder_channel="2 1 0")
    np.testing.assert_array_equal(new.inference(inputs=picture)[0], old.inference(inputs=picture)[0])


def test_per_channel_std_values_divide_each_channel(folder):
    """std_values may differ per channel: the same as feeding the picture scaled per channel with no std."""
    picture = _pictures(folder, 1)[0].astype(np.float32)
    stds = np.array([20.0, 50.0, 80.0], np.float32)
    per_channel = _built(folder, quantize=False, mean_values=[[10, 20, 30]], std_values=[stds.tolist()])
    by_hand = _built(folder, quantize=False)
    expected = by_hand.inference(inputs=[(picture - np.float32([10, 20, 30])) / stds], data_type="float32")[0]
    ours = per_channel.inference(inputs=[picture], data_type="float32")[0]
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(ours, _built(folder, quantize=False, mean_values=[[10, 20, 30]],
                                        std_values=[[50, 50, 50]]).inference(inputs=[picture], data_type="float32")[0])


def test_mean_values_with_channel_mean_value_is_an_error(folder, caplog):
    rknn = RKNN()
    assert rknn.config(channel_mean_value=MEAN, mean_values=[[127.5] * 3]) is None
    assert "give one of them" in caplog.text


@pytest.mark.parametrize("bad", [{"mean_values": [[0, 0, 0]], "std_value": [[255, 255, 255]]},
                                 {"mean_values": [[0, 0, float("nan")]]},
                                 {"std_values": [[255, 0, 255]]}],
                         ids=["unknown-keyword", "nan", "zero-std"])
def test_failed_config_makes_build_refuse(folder, caplog, bad):
    rknn = RKNN()
    rknn.config(**bad)
    assert rknn.load_onnx(model=str(folder / "model.onnx")) == 0
    assert rknn.build(do_quantization=False) == -1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2 and errors[1].startswith("build refuses to run: config failed: ")
    assert errors[0] in errors[1]  # the reason config gave
    rknn.config(mean_values=[[0, 0, 0]], std_values=[[255, 255, 255]])  # fixed: the next build runs
    assert rknn.build(do_quantization=False) == 0


def test_want_float_false_gives_the_stored_integers(folder):
    from rknn_core.quant.params import quantize

    rknn = _built(folder, channel_mean_value=MEAN)
    picture = _pictures(folder, 1)
    real = rknn.inference(inputs=picture)[0]
    stored = rknn.inference(inputs=picture, want_float=False)[0]
    q = rknn._tk.model.graph.tensor(rknn._tk.model.graph.outputs[0]).quant
    assert real.dtype == np.float32 and stored.dtype == np.uint8
    np.testing.assert_array_equal(stored, quantize(real, q))
    np.testing.assert_allclose((stored.astype(np.float32) - q.zero_point[0]) * q.scale[0], real, rtol=1e-6)


def test_load_model_in_npu_needs_a_device(folder, caplog):
    rknn = RKNN()
    assert rknn.load_rknn("/userdata/model.rknn", load_model_in_npu=True) == -1
    assert "needs a device" in caplog.text and "/userdata/model.rknn" in caplog.text
