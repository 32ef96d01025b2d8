"""The example quantizer installed as a plugin: config, build, the integer simulator, export and
reload, hybrid quantization and accuracy analysis all reach it through the registry."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

pytest.importorskip("rknn_quant_example")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import helper, numpy_helper  # noqa: E402

from rknn.api import RKNN  # noqa: E402
from rknn_core import fileformat  # noqa: E402
from rknn_core.quant.fixedpoint import requantize  # noqa: E402
from rknn_core.quant.params import round_half_away  # noqa: E402

I8 = "asymmetric_quantized-i8"
SIZE = 12


def _save(tmp_path, nodes, initializers: dict[str, np.ndarray], name: str = "model.onnx") -> str:
    """An opset-13 model with input ``x`` (1, 3, SIZE, SIZE) and output ``y``."""
    graph = helper.make_graph(
        nodes, "example",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, (1, 3, SIZE, SIZE))],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = str(tmp_path / name)
    onnx.save(model, path)
    return path


def _spread_weights(rng, shape) -> np.ndarray:
    """Weights whose output channels differ in magnitude by 100x: per-tensor scales waste most levels."""
    spread = np.logspace(-2, 0, shape[0]).reshape(-1, *[1] * (len(shape) - 1))
    return (rng.standard_normal(shape) * spread).astype(np.float32)


def _classifier(tmp_path, rng) -> str:
    """Conv + Relu + depthwise Conv + GlobalAveragePool + Gemm, with per-channel-hungry weights."""
    init = {"w1": _spread_weights(rng, (8, 3, 3, 3)), "b1": (rng.standard_normal(8) * 0.1).astype(np.float32),
            "w2": rng.standard_normal((8, 1, 3, 3)).astype(np.float32), "w3": _spread_weights(rng, (10, 8)),
            "b3": (rng.standard_normal(10) * 0.1).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], group=8),
             helper.make_node("GlobalAveragePool", ["c2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1)]
    return _save(tmp_path, nodes, init)


def _images(rng, count: int) -> list[np.ndarray]:
    return [(rng.random((SIZE, SIZE, 3)) * 255).astype(np.uint8) for _ in range(count)]


def _dataset(tmp_path, images: list[np.ndarray]) -> str:
    lines = []
    for i, image in enumerate(images):
        np.save(tmp_path / f"sample{i}.npy", image)
        lines.append(f"sample{i}.npy")
    path = tmp_path / "dataset.txt"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _quantized(path: str, dataset: str, dtype: str = I8, mean: str | None = "0 0 0 255") -> RKNN:
    rknn = RKNN()
    rknn.config(quantized_dtype=dtype, channel_mean_value=mean)
    assert rknn.load_onnx(path) == 0
    assert rknn.build(do_quantization=True, dataset=dataset) == 0
    assert rknn.init_runtime() == 0
    return rknn


def _onnxruntime(path: str, image: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": (image.transpose(2, 0, 1)[None] / 255.0).astype(np.float32)})[0]


def test_config_takes_the_plugin_scheme_and_lists_installed_ones(capsys):
    rknn = RKNN()
    rknn.config(quantized_dtype=I8)  # the vendor's config returns None either way
    assert not [line for line in capsys.readouterr().err.splitlines() if line.startswith("E ")]
    rknn.config(quantized_dtype="asymmetric_quantized-i4")
    e_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("E ")]
    assert e_lines and "asymmetric_quantized-i4" in e_lines[0]
    for installed in (I8, "asymmetric_quantized-u8", "dynamic_fixed_point-16"):
        assert installed in e_lines[0]


def test_weights_are_symmetric_per_channel_and_the_convolution_is_integer_exact(tmp_path):
    rng = np.random.default_rng(1)
    w, b = _spread_weights(rng, (6, 3, 3, 3)), (rng.standard_normal(6) * 0.2).astype(np.float32)
    path = _save(tmp_path, [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2])],
                 {"w": w, "b": b})
    # float inputs in [0, 1] without preprocessing nodes: the model input is the convolution's input
    rknn = _quantized(path, _dataset(tmp_path, [i / np.float32(255) for i in _images(rng, 6)]), mean=None)
    image = _images(rng, 1)[0] / np.float32(255)
    out = rknn.inference(inputs=[image], data_type="float32")[0]
    assert rknn.export_rknn(str(tmp_path / "conv.rknn")) == 0
    graph = fileformat.load(str(tmp_path / "conv.rknn")).graph
    x_q, w_q, b_q, y_q = (graph.tensors[n].quant for n in ("x", "w", "b", "y"))
    # the scheme: int8 activations with a zero point, weights symmetric per output channel
    assert x_q.qtype == y_q.qtype == "i8" and w_q.qtype == "i8" and b_q.qtype == "i32"
    np.testing.assert_allclose(w_q.scale, np.abs(w.astype(np.float64)).reshape(6, -1).max(axis=1) / 127, rtol=1e-12)
    assert w_q.axis == 0 and set(w_q.zero_point) == {0}
    w_int = graph.tensors["w"].data
    np.testing.assert_array_equal(w_int, round_half_away(w / np.reshape(w_q.scale, (6, 1, 1, 1))))
    assert np.abs(w_int).reshape(6, -1).max(axis=1).tolist() == [127] * 6
    # an independent integer reference: int64 sums of centered products, the int32 bias, the
    # documented fixed-point requantization
    x = image.transpose(2, 0, 1)[None]
    xq = np.clip(round_half_away(x / x_q.scale[0]) + x_q.zero_point[0], -128, 127).astype(np.int64)
    padded = np.pad(xq - x_q.zero_point[0], ((0, 0), (0, 0), (1, 1), (1, 1)))
    acc = np.zeros((6, SIZE // 2, SIZE // 2), dtype=np.int64)
    for ky in range(3):
        for kx in range(3):
            patch = padded[0, :, ky:ky + SIZE:2, kx:kx + SIZE:2]
            acc += np.einsum("chw,oc->ohw", patch, w_int[:, :, ky, kx].astype(np.int64))
    acc += graph.tensors["b"].data.astype(np.int64).reshape(6, 1, 1)
    multiplier = (x_q.scale[0] * np.asarray(w_q.scale) / y_q.scale[0]).reshape(6, 1, 1)
    expected = requantize(acc, multiplier, y_q.zero_point[0], "i8")
    np.testing.assert_array_equal(out[0], ((expected.astype(np.int64) - y_q.zero_point[0]) * y_q.scale[0])
                                  .astype(np.float32))
    assert np.unique(expected).size > 40  # the check covered a real spread of codes


def test_per_channel_int8_beats_per_tensor_u8_against_onnxruntime(tmp_path):
    rng = np.random.default_rng(2)
    path = _classifier(tmp_path, rng)
    dataset = _dataset(tmp_path, _images(rng, 16))
    held_out = _images(rng, 8)
    errors = {}
    for dtype in (I8, "asymmetric_quantized-u8"):
        rknn = _quantized(path, dataset, dtype)
        pairs = [(rknn.inference(inputs=[image])[0].ravel(), _onnxruntime(path, image).ravel()) for image in held_out]
        errors[dtype] = np.mean([np.abs(ours - ref).max() / np.abs(ref).max() for ours, ref in pairs])
        cosine = np.mean([ours @ ref / np.linalg.norm(ours) / np.linalg.norm(ref) for ours, ref in pairs])
        errors[dtype] = (errors[dtype], cosine)
    # measured: i8 per channel 0.014 relative error (cosine 0.99992), u8 per tensor 0.148 (0.9943)
    assert errors[I8][1] > 0.9995 and errors["asymmetric_quantized-u8"][1] > 0.99, errors
    assert errors[I8][0] < 0.3 * errors["asymmetric_quantized-u8"][0], errors


def test_export_and_reload_keep_the_scheme_and_the_outputs(tmp_path):
    rng = np.random.default_rng(3)
    path = _classifier(tmp_path, rng)
    rknn = _quantized(path, _dataset(tmp_path, _images(rng, 8)))
    image = _images(rng, 1)[0]
    before = rknn.inference(inputs=[image])[0]
    target = str(tmp_path / "classifier.rknn")
    assert rknn.export_rknn(target) == 0
    again = RKNN()
    assert again.load_rknn(target) == 0 and again.init_runtime() == 0
    np.testing.assert_array_equal(again.inference(inputs=[image])[0], before)
    assert fileformat.load(target).quantized_dtype == I8


def test_hybrid_quantization_and_accuracy_analysis_use_the_scheme(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    path = _classifier(tmp_path, rng)
    dataset = _dataset(tmp_path, _images(rng, 8))
    image = _images(rng, 1)[0]
    reference = _quantized(path, dataset).inference(inputs=[image])[0]
    monkeypatch.chdir(tmp_path)
    rknn = RKNN()
    rknn.config(quantized_dtype=I8, channel_mean_value="0 0 0 255")
    assert rknn.load_onnx(path) == 0
    assert rknn.hybrid_quantization_step1(dataset=dataset) == 0
    cfg = (tmp_path / "model.quantization.cfg").read_text()
    assert "symmetric_affine" in cfg and "method: channel" in cfg and "qtype: i8" in cfg
    assert rknn.hybrid_quantization_step2("model.json", "model.data", "model.quantization.cfg", dataset) == 0
    assert rknn.init_runtime() == 0
    np.testing.assert_array_equal(rknn.inference(inputs=[image])[0], reference)  # an unedited cfg changes nothing
    np.save(tmp_path / "one.npy", image)
    (tmp_path / "one.txt").write_text("one.npy\n")
    assert rknn.accuracy_analysis(inputs="one.txt", output_dir=str(tmp_path / "snapshot")) == 0
    index = json.loads((tmp_path / "snapshot" / "index.json").read_text())
    assert index["quantized_dtype"] == I8
    with open(tmp_path / "snapshot" / "error_analysis.csv", newline="") as f:
        rows = {row["tensor"]: row for row in csv.DictReader(f)}
    assert float(rows["y"]["cosine_distance"]) < 1e-3  # per-channel int8 keeps the classifier close to float
