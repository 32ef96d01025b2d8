"""Calibration algorithms (min/max, KL divergence, MMSE) and the accuracy passes (cross-layer
equalization, bias correction), measured against the float model on held-out inputs."""

from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from rknn.api import RKNN
from rknn_core.ir import Graph, Node, Tensor
from rknn_core.plugins import default_registry
from rknn_core.quant.calibrate import HistogramObserver, RangeObserver, search_range
from rknn_core.quant.equalize import equalize, find_pairs
from rknn_core.runtime.executor import Executor


def _save(nodes, inits: dict, shape: list[int], out_shape: list[int], folder) -> str:
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("input", 1, shape)],
                              [helper.make_tensor_value_info("out", 1, out_shape)],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = os.path.join(str(folder), "model.onnx")
    onnx.save(model, path)
    return path


def outlier_model(folder) -> str:
    """Products of three conv features (heavy-tailed, rare large values, as gating/attention
    products are) into Tanh, then a conv: min/max spends the 256 levels on the tails."""
    rng = np.random.default_rng(0)
    c = 8
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Split", ["c", "split"], ["c1", "c2", "c3"], axis=1),
             helper.make_node("Mul", ["c1", "c2"], ["m1"]),
             helper.make_node("Mul", ["m1", "c3"], ["m2"]),
             helper.make_node("Tanh", ["m2"], ["t"]),
             helper.make_node("Conv", ["t", "w2", "b2"], ["out"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    inits = {"w1": (rng.standard_normal((3 * c, 4, 1, 1)) / 2).astype(np.float32), "b1": np.zeros(3 * c, np.float32),
             "split": np.array([c, c, c], np.int64),
             "w2": (rng.standard_normal((8, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32), "b2": np.zeros(8, np.float32)}
    return _save(nodes, inits, [1, 4, 16, 16], [1, 8, 16, 16], folder)


def mobilenet_style(folder, spread: float = 1.5) -> str:
    """Inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 project) with ReLU. Like trained
    MobileNets, the channels' weight ranges differ by orders of magnitude: each expand/depthwise
    output channel is scaled by a lognormal factor that the next layer undoes (exact through ReLU),
    so the float function is that of the balanced network."""
    rng = np.random.default_rng(0)
    nodes, inits = [], {}

    def const(value) -> str:
        name = f"c{len(inits)}"
        inits[name] = np.asarray(value, np.float32)
        return name

    def conv(x, w, b, group=1, stride=1, relu=True) -> str:
        y = f"conv{len(nodes)}"
        k = w.shape[2]
        nodes.append(helper.make_node("Conv", [x, const(w), const(b)], [y], group=group, strides=[stride] * 2,
                                      pads=[k // 2] * 4, kernel_shape=[k, k]))
        if relu:
            nodes.append(helper.make_node("Relu", [y], [y + "_relu"]))
            return y + "_relu"
        return y

    def he(shape, fan):
        return rng.standard_normal(shape) * np.sqrt(2.0 / fan)

    x = conv("input", he((16, 3, 3, 3), 27), 0.1 * rng.standard_normal(16), stride=2)
    cin = 16
    for cout, stride in ((16, 1), (24, 2), (24, 1), (32, 2)):
        hidden = 4 * cin
        we, be = he((hidden, cin, 1, 1), cin), 0.1 * rng.standard_normal(hidden)
        wd, bd = he((hidden, 1, 3, 3), 9), 0.1 * rng.standard_normal(hidden)
        wp, bp = he((cout, hidden, 1, 1), hidden), 0.1 * rng.standard_normal(cout)
        k1, k2 = np.exp(spread * rng.standard_normal(hidden)), np.exp(spread * rng.standard_normal(hidden))
        we, be, wd = we * k1[:, None, None, None], be * k1, wd / k1[:, None, None, None]
        wd, bd, wp = wd * k2[:, None, None, None], bd * k2, wp / k2[None, :, None, None]
        y = conv(conv(conv(x, we, be), wd, bd, group=hidden, stride=stride), wp, bp, relu=False)
        if stride == 1 and cin == cout:
            nodes.append(helper.make_node("Add", [x, y], [f"add{len(nodes)}"]))
            y = nodes[-1].output[0]
        x, cin = y, cout
    nodes.append(helper.make_node("Conv", [x, const(he((10, cin, 4, 4), 16 * cin)), const(np.zeros(10))], ["out"],
                                  kernel_shape=[4, 4]))
    return _save(nodes, inits, [1, 3, 32, 32], [1, 10, 1, 1], folder)


def _dataset(folder, samples: list[np.ndarray]) -> str:
    lines = []
    for i, sample in enumerate(samples):
        np.save(os.path.join(str(folder), f"s{i}.npy"), sample)
        lines.append(f"s{i}.npy")
    path = os.path.join(str(folder), "dataset.txt")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def _errors(model: str, dataset: str, held: list[np.ndarray], **config) -> tuple[float, float]:
    """(MSE, mean cosine) of the quantized simulator's outputs against onnxruntime float."""
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    rknn = RKNN()
    rknn.config(**config)
    assert rknn.load_onnx(model) == 0
    assert rknn.build(do_quantization=True, dataset=dataset) == 0
    assert rknn.init_runtime() == 0
    ours, ref = [], []
    for x in held:
        ours.append(rknn.inference([x], data_type="float32")[0].ravel())
        ref.append(session.run(None, {"input": x.transpose(2, 0, 1)[None]})[0].ravel())
    rknn.release()
    ours, ref = np.array(ours, np.float64), np.array(ref, np.float64)
    cos = np.mean(np.sum(ours * ref, axis=1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1))
    return float(np.mean((ours - ref) ** 2)), float(cos)


def test_kl_and_mmse_beat_min_max_on_outlier_activations(tmp_path):
    rng = np.random.default_rng(1)
    model = outlier_model(tmp_path)
    dataset = _dataset(tmp_path, [rng.standard_normal((16, 16, 4)).astype(np.float32) for _ in range(16)])
    held = [rng.standard_normal((16, 16, 4)).astype(np.float32) for _ in range(24)]
    results = {alg: _errors(model, dataset, held, quantized_algorithm=alg) for alg in ("normal", "kl_divergence", "mmse")}
    (mse_n, cos_n), (mse_kl, cos_kl), (mse_mmse, cos_mmse) = results.values()
    assert mse_kl < mse_n / 3 and cos_kl > cos_n, results
    assert mse_mmse < mse_n and cos_mmse > cos_n, results


def _quantizer(name: str):
    return default_registry().table("quantizers")[name]


def test_search_range_clips_rare_outliers_only():
    u8 = _quantizer("asymmetric_quantized-u8")
    rng = np.random.default_rng(0)
    bulk = rng.standard_normal(1_000_000)
    values = np.concatenate([bulk, [25.0, -20.0]])  # two outliers in a million
    first = RangeObserver()
    first.update("t", values)
    hist = HistogramObserver(first.ranges())
    hist.update("t", values)
    lo, hi = first.ranges()["t"]
    for algorithm in ("kl_divergence", "mmse"):
        a, b = hist.searched_ranges(algorithm, u8)["t"]
        assert lo / 2 < a < -3 and 3 < b < hi / 2, (algorithm, a, b)  # bulk kept, outliers clipped
    # a plain Gaussian: MMSE keeps (nearly) its whole range; 16-bit keeps min/max exactly
    counts = np.histogram(bulk, 2048, range=(bulk.min(), bulk.max()))[0]
    a, b = search_range(counts, bulk.min(), bulk.max(), "mmse", u8)
    assert b > 0.6 * bulk.max() and a < 0.6 * bulk.min()
    assert search_range(counts, -1.0, 2.0, "kl_divergence", _quantizer("dynamic_fixed_point-16")) == (-1.0, 2.0)
    # one-sided (post-ReLU) histograms keep 0 as the lower end
    relu = np.maximum(bulk, 0)
    counts = np.histogram(relu, 2048, range=(0, relu.max()))[0]
    assert search_range(counts, 0.0, relu.max(), "kl_divergence", u8)[0] == 0.0


def _float_outputs(graph: Graph, xs: list[np.ndarray]) -> np.ndarray:
    executor = Executor(graph, default_registry())
    return np.stack([executor.run({"x": x})["y"] for x in xs])


def _pair_graph(act: dict | None, rng) -> Graph:
    g = Graph(inputs=["x"], outputs=["y"])
    g.add_tensor(Tensor("x", (1, 4, 6, 6)))
    for name, data in {"w1": rng.standard_normal((8, 4, 3, 3)) * np.exp(2 * rng.standard_normal((8, 1, 1, 1))),
                       "b1": rng.standard_normal(8), "w2": rng.standard_normal((8, 1, 3, 3)),
                       "b2": rng.standard_normal(8), "w3": rng.standard_normal((5, 8, 1, 1))}.items():
        g.add_const(name, data.astype(np.float32))
    for t in ("h", "d", "y"):
        g.add_tensor(Tensor(t))
    g.nodes = [Node("c1", "Conv", ["x", "w1", "b1"], ["h"], {"pads": [1] * 4, "activation": act}),
               Node("dw", "Conv", ["h", "w2", "b2"], ["d"], {"pads": [1] * 4, "group": 8, "activation": {"op": "Relu"}}),
               Node("pw", "Conv", ["d", "w3"], ["y"], {})]
    return g


@pytest.mark.parametrize("act", [None, {"op": "Relu"}, {"op": "LeakyRelu", "alpha": 0.1}])
def test_equalization_keeps_the_function_and_balances_ranges(act):
    rng = np.random.default_rng(0)
    graph = _pair_graph(act, rng)
    xs = [rng.standard_normal((1, 4, 6, 6)).astype(np.float32) for _ in range(3)]
    before = _float_outputs(graph, xs)
    spread_before = np.ptp(np.log(np.abs(graph.tensors["w1"].data).reshape(8, -1).max(axis=1)))
    assert equalize(graph) == 2
    np.testing.assert_allclose(_float_outputs(graph, xs), before, rtol=2e-4, atol=2e-4 * np.abs(before).max())
    r1 = np.abs(graph.tensors["w1"].data).reshape(8, -1).max(axis=1)
    r2 = np.abs(graph.tensors["w2"].data).reshape(8, -1).max(axis=1)
    assert np.ptp(np.log(r1)) < spread_before / 2  # channel ranges much closer
    np.testing.assert_allclose(r2, np.abs(graph.tensors["w3"].data).max(axis=(0, 2, 3)), rtol=0.05)


def test_relu6_pairs_need_unsaturated_calibration():
    rng = np.random.default_rng(0)
    graph = _pair_graph({"op": "Clip", "min": 0.0, "max": 6.0}, rng)
    assert len(find_pairs(graph)) == 2
    w1 = graph.tensors["w1"].data
    assert equalize(graph, {"h": 0.2}) == 1  # saturates often: only dw -> pw is equalized
    assert graph.tensors["w1"].data is w1 and graph.nodes[0].attrs["activation"]["op"] == "Clip"
    assert equalize(graph, {"h": 0.0}) == 2  # never saturated: it becomes a ReLU, as in the paper
    assert graph.nodes[0].attrs["activation"] == {"op": "Relu"}


def test_equalization_and_bias_correction_beat_neither(tmp_path):
    rng = np.random.default_rng(1)

    def image():
        return (np.kron(rng.random((8, 8, 3)), np.ones((4, 4, 1))) + 0.1 * rng.random((32, 32, 3))).astype(np.float32)

    model = mobilenet_style(tmp_path)
    dataset = _dataset(tmp_path, [image() for _ in range(16)])
    held = [image() for _ in range(16)]
    runs = {(cle, bc): _errors(model, dataset, held, cross_layer_equalization=cle, bias_correction=bc)
            for cle in (False, True) for bc in (False, True)}
    neither, both = runs[False, False], runs[True, True]
    assert both[0] < neither[0] / 10 and both[1] > neither[1], runs
    assert both[0] < runs[True, False][0] and both[0] < runs[False, True][0], runs
    assert runs[False, True][0] < neither[0] and runs[True, False][0] < neither[0], runs
    assert both[1] > 0.999, runs
