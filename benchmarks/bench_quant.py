"""u8 quantization: our build vs onnxruntime's quantize_static on a real trained digit classifier.

The model is trained here in seconds on scikit-learn's digits (real 8x8 scans of handwritten
digits, upsampled to 16x16): a four-conv CNN whose first-layer filters are the principal components
of image patches, middle layers fixed random ReLU features, and whose last conv (the classifier) is
a multinomial logistic regression fitted on those features (one BLAS thread: the same model every
run). Both quantizers calibrate on the same 100 training images; an evaluation set of held-out
images measures top-1 agreement with the float model and the mean cosine of the logits. One table
from one run:

    .venv/bin/python benchmarks/bench_quant.py [--calib 100] [--runs 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import median_ms  # noqa: E402

SIZE = 16


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """sklearn digits as float32 (N, 1, 16, 16) images in [0, 1] and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.kron(digits.images / 16.0, np.ones((2, 2)))[:, None].astype(np.float32)
    return images, digits.target


def _conv(name, x, w, b, stride=1, relu=True, pad=1):
    nodes = [helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [name], strides=[stride] * 2,
                              pads=[pad] * 4, kernel_shape=list(w.shape[2:]))]
    inits = [numpy_helper.from_array(w.astype(np.float32), f"{name}_w"), numpy_helper.from_array(b.astype(np.float32), f"{name}_b")]
    if relu:
        nodes.append(helper.make_node("Relu", [name], [name + "_relu"]))
    return nodes, inits, name + "_relu" if relu else name


def _model(layers: list[tuple], batch: int | str, output_channels: int, output_hw: int) -> onnx.ModelProto:
    nodes, inits, x = [], [], "input"
    for name, w, b, stride, relu, pad in layers:
        n, i, x = _conv(name, x, w, b, stride, relu, pad)
        nodes += n
        inits += i
    graph = helper.make_graph(nodes, "digits_cnn",
                              [helper.make_tensor_value_info("input", 1, [batch, 1, SIZE, SIZE])],
                              [helper.make_tensor_value_info(x, 1, [batch, output_channels, output_hw, output_hw])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def train(images: np.ndarray, labels: np.ndarray, seed: int = 0) -> onnx.ModelProto:
    """PCA patch filters -> random ReLU convs -> logistic-regression classifier conv."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    padded = np.pad(images[:, 0], ((0, 0), (1, 1), (1, 1)))
    patches = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2)).reshape(-1, 9)
    patches = patches[rng.choice(len(patches), 20000, replace=False)]
    mean = patches.mean(axis=0)
    _, _, vt = np.linalg.svd(patches - mean, full_matrices=False)
    filters = np.concatenate([vt[:8], -vt[:8]])  # both signs of the top 8 components (ReLU keeps each half)
    w1 = filters.reshape(16, 1, 3, 3)
    b1 = -(filters @ mean)
    w2 = rng.standard_normal((32, 16, 3, 3)) * np.sqrt(2 / 144)
    w3 = rng.standard_normal((32, 32, 3, 3)) * np.sqrt(2 / 288)
    features = [("conv1", w1, b1, 1, True, 1), ("conv2", w2, np.zeros(32), 2, True, 1),
                ("conv3", w3, np.zeros(32), 2, True, 1)]
    path = os.path.join(tempfile.mkdtemp(prefix="bench-quant-"), "features.onnx")
    onnx.save(_model(features, "N", 32, 4), path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # deterministic feature sums, hence the same classifier every run
    feats = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"]).run(None, {"input": images})[0]
    classifier = LogisticRegression(max_iter=300, C=0.5).fit(feats.reshape(len(feats), -1), labels)
    w4 = classifier.coef_.reshape(10, 32, 4, 4)
    return _model(features + [("logits", w4, classifier.intercept_, 1, False, 0)], 1, 10, 1)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    return float(np.mean(np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


def ours(model_path: str, dataset: str, evaluation: np.ndarray, runs: int, **config) -> dict:
    from rknn.api import RKNN

    rknn = RKNN()
    rknn.config(**config)
    assert rknn.load_onnx(model_path) == 0
    start = time.perf_counter()
    assert rknn.build(do_quantization=True, dataset=dataset) == 0
    build = time.perf_counter() - start
    assert rknn.init_runtime() == 0
    hwc = evaluation.transpose(0, 2, 3, 1)
    outputs = np.stack([rknn.inference([x], data_type="float32")[0] for x in hwc])
    latency = median_ms(lambda: rknn.inference([hwc[0]], data_type="float32"), runs)
    rknn.release()
    return {"outputs": outputs, "build_s": build, "latency_ms": latency}


def onnxruntime_static(model_path: str, calibration: np.ndarray, evaluation: np.ndarray, runs: int) -> dict:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"input": x[None]} for x in calibration])

        def get_next(self):
            return next(self.items, None)

    out_path = model_path.replace(".onnx", ".qdq.onnx")
    start = time.perf_counter()
    quantize_static(model_path, out_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=False,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QUInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    build = time.perf_counter() - start
    session = ort.InferenceSession(out_path, providers=["CPUExecutionProvider"])
    outputs = np.stack([session.run(None, {"input": x[None]})[0] for x in evaluation])
    latency = median_ms(lambda: session.run(None, {"input": evaluation[:1]}), runs)
    return {"outputs": outputs, "build_s": build, "latency_ms": latency}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calib", type=int, default=100, help="calibration images (from the training split)")
    parser.add_argument("--runs", type=int, default=200, help="timed inferences for the latency median")
    args = parser.parse_args()
    import logging

    logging.getLogger("rknn").setLevel(logging.ERROR)
    images, labels = load_digits_images()
    order = np.random.default_rng(0).permutation(len(images))
    train_idx, eval_idx = order[:1100], order[1100:]
    from threadpoolctl import threadpool_limits

    start = time.perf_counter()
    with threadpool_limits(1):  # one BLAS thread: the same trained model in every run
        model = train(images[train_idx], labels[train_idx])
    train_s = time.perf_counter() - start
    folder = tempfile.mkdtemp(prefix="bench-quant-")
    model_path = os.path.join(folder, "digits_cnn.onnx")
    onnx.save(model, model_path)
    calibration, evaluation = images[train_idx[:args.calib]], images[eval_idx]
    lines = []
    for i, x in enumerate(calibration):
        np.save(os.path.join(folder, f"calib_{i}.npy"), x.transpose(1, 2, 0))
        lines.append(f"calib_{i}.npy")
    dataset = os.path.join(folder, "dataset.txt")
    with open(dataset, "w") as f:
        f.write("\n".join(lines) + "\n")

    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    reference = np.stack([session.run(None, {"input": x[None]})[0] for x in evaluation])
    float_latency = median_ms(lambda: session.run(None, {"input": evaluation[:1]}), args.runs)
    top_float = reference.reshape(len(reference), -1).argmax(axis=1)
    print(f"model: 4-conv CNN trained on sklearn digits in {train_s:.1f} s; float top-1 accuracy on "
          f"{len(evaluation)} held-out images: {np.mean(top_float == labels[eval_idx]):.4f}; "
          f"onnxruntime float latency {float_latency:.3f} ms; calibration: {len(calibration)} images")
    rows = {
        "ours u8 (min/max)": ours(model_path, dataset, evaluation, args.runs),
        "ours u8 (mmse)": ours(model_path, dataset, evaluation, args.runs, quantized_algorithm="mmse"),
        "ours u8 (kl_divergence)": ours(model_path, dataset, evaluation, args.runs, quantized_algorithm="kl_divergence"),
        "ours u8 (min/max + bias corr.)": ours(model_path, dataset, evaluation, args.runs, bias_correction=True),
        "ours u8 (min/max + CLE + bias corr.)": ours(model_path, dataset, evaluation, args.runs,
                                                     cross_layer_equalization=True, bias_correction=True),
        "onnxruntime quantize_static (QDQ u8 MinMax)": onnxruntime_static(model_path, calibration, evaluation, args.runs),
    }
    header = f"{'quantizer':<46} {'top-1 agree':>11} {'accuracy':>9} {'cosine':>10} {'build s':>8} {'latency ms':>11}"
    print(header)
    print("-" * len(header))
    for name, row in rows.items():
        top = row["outputs"].reshape(len(row["outputs"]), -1).argmax(axis=1)
        print(f"{name:<46} {np.mean(top == top_float):>11.4f} {np.mean(top == labels[eval_idx]):>9.4f} "
              f"{_cosine(row['outputs'], reference):>10.7f} {row['build_s']:>8.3f} {row['latency_ms']:>11.3f}")


if __name__ == "__main__":
    main()
