"""The vendor guide's load_tensorflow script on a real trained TF1 MobileNet-v1 (nudity==0.2.3)."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from tf_models import MODELS_ROOT, assert_close, cached, load_meta, run_pb

from rknn.api import RKNN

PB = MODELS_ROOT / "nudity" / "files" / "retrained_graph.pb"


def _picture() -> np.ndarray:
    """A real photograph (scikit-image's astronaut when available), 224x224 RGB uint8."""
    try:
        from skimage import data

        img = data.astronaut()[::2, ::2][:224, 16:240]
    except ImportError:
        img = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    return np.ascontiguousarray(img, dtype=np.uint8)


def _reference() -> tuple[np.ndarray, np.ndarray]:
    def build(folder: pathlib.Path) -> None:
        img = _picture()
        (probs,) = run_pb(PB, {"input": ((img.astype(np.float32) - 127.5) / 127.5)[None]}, ["final_result"])
        np.savez(folder / "ref.npz", in0=img, out0=probs)
        (folder / "meta.json").write_text('{"inputs": ["input"], "outputs": ["final_result"]}')

    _, ref = load_meta(cached("nudity", build))
    return ref["in0"], ref["out0"]


def test_vendor_script_on_nudity_mobilenet(tmp_path):
    if not PB.is_file():
        pytest.fail(f"{PB} is missing: run `python scripts/fetch_models.py`")
    img, expected = _reference()
    rknn = RKNN()
    rknn.config(channel_mean_value="127.5 127.5 127.5 127.5", reorder_channel="0 1 2")
    assert rknn.load_tensorflow(tf_pb=str(PB), inputs=["input"], outputs=["final_result"],
                                input_size_list=[[224, 224, 3]]) == 0
    assert rknn.build(do_quantization=False) == 0
    assert rknn.export_rknn(str(tmp_path / "nudity.rknn")) == 0
    rknn.release()
    rknn = RKNN()
    assert rknn.load_rknn(str(tmp_path / "nudity.rknn")) == 0
    assert rknn.init_runtime() == 0
    (probs,) = rknn.inference(inputs=[img])
    perf = rknn.eval_perf(inputs=[img], is_print=False)
    rknn.release()
    assert_close(probs, expected)
    assert perf["total_time"] > 0


@pytest.mark.parametrize("dtype,tolerance", [("asymmetric_quantized-u8", 0.02), ("dynamic_fixed_point-16", 0.01)])
def test_nudity_quantized_build_keeps_the_decision(dtype, tolerance, tmp_path):
    """u8 needs the level-3 fold of the graph's Mul/Add batch norm into the convolutions."""
    img, expected = _reference()
    np.save(tmp_path / "img.npy", img)
    (tmp_path / "dataset.txt").write_text("img.npy\n")
    rknn = RKNN()
    rknn.config(channel_mean_value="127.5 127.5 127.5 127.5", reorder_channel="0 1 2",
                quantized_dtype=dtype)
    assert rknn.load_tensorflow(tf_pb=str(PB), inputs=["input"], outputs=["final_result"],
                                input_size_list=[[224, 224, 3]]) == 0
    assert rknn.build(do_quantization=True, dataset=str(tmp_path / "dataset.txt")) == 0
    assert rknn.init_runtime() == 0
    (probs,) = rknn.inference(inputs=[img])
    rknn.release()
    assert probs.shape == expected.shape
    assert np.argmax(probs) == np.argmax(expected)
    assert np.abs(probs - expected).max() < tolerance
