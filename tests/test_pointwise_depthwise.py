"""A pointwise convolution and the depthwise convolution that reads it, as one call (``pw_dw_conv``, chained
by float plans through ``OpDef.prepare_chain``): the same values as the two kernels one after the other, bit
for bit, on random float data, at every thread count; and the plans that chain them, or do not."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_util import run_ort
from real_models import real_model, text_image

from rknn.api import RKNN
from rknn_core import native_numpy
from rknn_core.ir import Graph, Node, QuantParams, Tensor
from rknn_core.ops import conv
from rknn_core.plugins import default_registry
from rknn_core.runtime.executor import Executor
from rknn_core.runtime.qexecutor import QuantExecutor

CLAMP, NONE = (0.0, 6.0, 0, 0.0, 0.0, None, None), (-np.inf, np.inf, 0, 0.0, 0.0, None, None)
HARD_SWISH = (-np.inf, np.inf, 2, 1 / 6, 0.5, None, None)
POST = np.array([0.0, 1.5, 1.0, -0.25], np.float32)  # x * 1.5, then + -0.25


def prelu(channels: int) -> tuple:
    return -np.inf, np.inf, 3, 0.0, 0.0, np.linspace(-0.5, 0.75, channels).astype(np.float32), None


def geometry(h: int, w: int, k: int, stride: int, dilation: int, pad: int) -> tuple[int, ...]:
    span = (k - 1) * dilation + 1
    oh, ow = (h + 2 * pad - span) // stride + 1, (w + 2 * pad - span) // stride + 1
    return h, w, k, k, oh, ow, stride, stride, dilation, dilation, pad, pad


def operands(rng, cin: int, cexp: int, h: int, w: int, k: int):
    x = rng.standard_normal((cin, h, w), dtype=np.float32)
    w1 = (rng.standard_normal((cexp, cin), dtype=np.float32) / np.sqrt(cin)).astype(np.float32)
    w2 = rng.standard_normal((cexp, k, k), dtype=np.float32) * np.float32(2 / k)
    return x, w1, rng.standard_normal(cexp, dtype=np.float32), w2, rng.standard_normal(cexp, dtype=np.float32)


def two_kernels(module, x, w1, b1, w2, b2, geo, first, second) -> np.ndarray:
    """conv_gemm of the pointwise weights, then depthwise_conv2d, as the unchained plan runs them."""
    (cin, h, w), cexp = x.shape, w1.shape[0]
    mid = np.empty((cexp, h * w), np.float32)
    module.conv_gemm(w1, x, np.arange(cin, dtype=np.int64) * h * w, np.arange(h * w, dtype=np.int64), b1, mid, cexp,
                     cin, h * w, first[0], first[1], None, *first[2:])
    y = np.empty((cexp, geo[4], geo[5]), np.float32)
    module.depthwise_conv2d(mid, w2, b2, y, 1, cexp, *geo, second[0], second[1], None, *second[2:])
    return y


def chained(module, x, w1, b1, w2, b2, geo, first, second) -> np.ndarray:
    """pw_dw_conv on any size (``least`` 0: it declines small expanded tensors by default)."""
    y = np.empty((w1.shape[0], geo[4], geo[5]), np.float32)
    assert module.pw_dw_conv(x, w1, b1, w2, b2, y, x.shape[0], w1.shape[0], *geo, first, second, 0)
    return y


# (cin, cexp, h, w, kernel, stride, dilation, pad): EfficientNet's 112x112 stride-2 block (several bands),
# a 5x5 block on 28x28, 7x7 planes whose last column conv_gemm sums as a dot product, k above one k block
# (300 > 256), a dilated kernel on an odd plane, a partial channel group (cexp 20), pads wider than the halo
CASES = [(16, 96, 112, 112, 3, 2, 1, 1), (40, 240, 28, 28, 5, 1, 1, 2), (192, 200, 7, 7, 5, 1, 1, 2),
         (300, 40, 9, 11, 3, 1, 1, 1), (8, 36, 17, 13, 3, 1, 2, 2), (24, 20, 20, 24, 3, 2, 1, 0),
         (6, 32, 10, 10, 3, 1, 1, 3)]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}x{c[1]}@{c[2]}x{c[3]}k{c[4]}s{c[5]}" for c in CASES])
def test_pw_dw_conv_equals_the_two_kernels(compiled, threads, case):
    cin, cexp, h, w, k, stride, dilation, pad = case
    rng = np.random.default_rng(sum(case))
    args = (*operands(rng, cin, cexp, h, w, k), geometry(h, w, k, stride, dilation, pad))
    want, got = two_kernels(compiled, *args, CLAMP, CLAMP), chained(compiled, *args, CLAMP, CLAMP)
    np.testing.assert_array_equal(got, want)
    assert (want == 6.0).any() and (want == 0).any()  # the clamp cut both ways


@pytest.mark.parametrize(("first", "second"), [(NONE, NONE), (HARD_SWISH, (*CLAMP[:6], POST)),
                                               ((*CLAMP[:6], POST), prelu(48)), (prelu(48), HARD_SWISH)],
                         ids=["none", "hardswish-post", "post-prelu", "prelu-hardswish"])
def test_pw_dw_conv_epilogues_equal_the_two_kernels(compiled, threads, first, second):
    rng = np.random.default_rng(3)
    args = (*operands(rng, 12, 48, 30, 30, 3), geometry(30, 30, 3, 1, 1, 1))
    want = two_kernels(compiled, *args, first, second)
    np.testing.assert_array_equal(chained(compiled, *args, first, second), want)
    assert (want < 0).any()


def test_pw_dw_conv_without_biases_and_its_numpy_twin(compiled):
    """No biases; integer-valued data, so the numpy twin's sums are exact too."""
    rng = np.random.default_rng(5)
    x, w1, w2 = (rng.integers(-4, 5, s).astype(np.float32) for s in ((10, 14, 14), (40, 10), (40, 3, 3)))
    geo = geometry(14, 14, 3, 2, 1, 1)
    want = two_kernels(compiled, x, w1, None, w2, None, geo, NONE, NONE)
    np.testing.assert_array_equal(chained(compiled, x, w1, None, w2, None, geo, NONE, NONE), want)
    np.testing.assert_array_equal(chained(native_numpy, x, w1, None, w2, None, geo, NONE, NONE), want)


def test_pw_dw_conv_declines_where_the_two_kernels_cost_less(compiled):
    """An expanded tensor under 1 MB stays in cache between the two kernels; a wide plane of many input channels
    would expand most rows several times: pw_dw_conv leaves y as it is and says so."""
    rng = np.random.default_rng(8)
    for cin, cexp, h, w, k in ((16, 96, 30, 30, 3), (480, 480, 24, 80, 5)):
        x, w1, b1, w2, b2 = operands(rng, cin, cexp, h, w, k)
        geo = geometry(h, w, k, 1, 1, k // 2)
        y = np.full((cexp, geo[4], geo[5]), 7.0, np.float32)
        assert not compiled.pw_dw_conv(x, w1, b1, w2, b2, y, cin, cexp, *geo, CLAMP, CLAMP)
        assert (y == 7.0).all()
    x, w1, b1, w2, b2 = operands(rng, 16, 96, 112, 112, 3)
    geo = geometry(112, 112, 3, 2, 1, 1)
    y = np.empty((96, geo[4], geo[5]), np.float32)
    assert compiled.pw_dw_conv(x, w1, b1, w2, b2, y, 16, 96, *geo, CLAMP, CLAMP)  # 1.2 M floats: chained
    np.testing.assert_array_equal(y, two_kernels(compiled, x, w1, b1, w2, b2, geo, CLAMP, CLAMP))


def test_pw_dw_conv_refuses_buffers_that_do_not_fit(compiled):
    x, w1, b1, w2, b2 = operands(np.random.default_rng(0), 4, 8, 6, 6, 3)
    geo = geometry(6, 6, 3, 1, 1, 1)
    y = np.empty((8, 6, 6), np.float32)
    with pytest.raises(ValueError, match="buffer sizes"):
        compiled.pw_dw_conv(x[:2], w1, b1, w2, b2, y, 4, 8, *geo, CLAMP, CLAMP)
    with pytest.raises(ValueError, match="buffer sizes"):
        compiled.pw_dw_conv(x, w1, b1, w2, b2, y[:4], 4, 8, *geo, CLAMP, CLAMP)
    with pytest.raises(ValueError, match="positive"):
        chained(compiled, x, w1, b1, w2, b2, (*geo[:6], 0, *geo[7:]), CLAMP, CLAMP)


# ---------------------------------------------------------------- plans
def block_graph(pointwise: dict | None = None, extra_output: bool = False) -> Graph:
    """x -> 1x1 Conv (Clip 0..6) -> depthwise 3x3 stride 2 Conv (Relu) -> y; ``extra_output`` also outputs the
    expanded tensor."""
    rng = np.random.default_rng(1)
    graph = Graph(inputs=["x"], outputs=["y", "mid"] if extra_output else ["y"])
    graph.add_tensor(Tensor("x", (1, 8, 110, 110)))
    for name, shape in (("w1", (24, 8, 1, 1)), ("b1", (24,)), ("w2", (24, 1, 3, 3)), ("b2", (24,))):
        graph.add_tensor(Tensor(name, shape, data=rng.standard_normal(shape).astype(np.float32)))
    graph.add_tensor(Tensor("mid", (1, 24, 110, 110)))
    graph.add_tensor(Tensor("y", (1, 24, 55, 55)))
    graph.nodes.append(Node("expand", "Conv", ["x", "w1", "b1"], ["mid"],
                            {"kernel_shape": [1, 1], "activation": {"op": "Clip", "min": 0.0, "max": 6.0},
                             **(pointwise or {})}))
    graph.nodes.append(Node("depthwise", "Conv", ["mid", "w2", "b2"], ["y"],
                            {"kernel_shape": [3, 3], "group": 24, "strides": [2, 2], "pads": [1, 1, 1, 1],
                             "activation": {"op": "Relu"}}))
    return graph


def node_by_node(graph: Graph, x: np.ndarray) -> np.ndarray:
    t = graph.tensors
    mid = conv.kernel([x, t["w1"].data, t["b1"].data], graph.nodes[0].attrs)[0]
    return conv.kernel([mid, t["w2"].data, t["b2"].data], graph.nodes[1].attrs)[0]


def chain_spy(monkeypatch) -> list[bool]:
    """What each pw_dw_conv call of the plans answers (True: it ran the chain)."""
    answers, real = [], conv._native.pw_dw_conv
    monkeypatch.setattr(conv._native, "pw_dw_conv", lambda *args: answers.append(real(*args)) or answers[-1])
    return answers


def test_a_float_plan_chains_the_pointwise_and_depthwise_convs(monkeypatch):
    graph, rng = block_graph(), np.random.default_rng(2)
    executor, answers = Executor(graph, default_registry()), chain_spy(monkeypatch)
    for shape in ((1, 8, 110, 110), (2, 8, 110, 110), (1, 8, 15, 9), (1, 8, 15, 9), (1, 8, 110, 110)):
        x = rng.standard_normal(shape).astype(np.float32)
        got = executor.run({"x": x})["y"]
        np.testing.assert_array_equal(got, node_by_node(graph, x))
    assert answers == [True, False, True]  # a batch runs the two steps; a small plane is declined, once
    (steps,) = executor._plans.values()
    assert [step.node.name for step in steps] == ["depthwise"] and steps[0].reads == ((0, "x"),)


def test_a_plan_keeps_the_convs_apart_where_the_expanded_tensor_is_needed():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 8, 110, 110)).astype(np.float32)
    for graph, keep in ((block_graph(extra_output=True), ()), (block_graph(), ("mid",))):
        executor = Executor(graph, default_registry())
        values = executor.run({"x": x}, keep=keep)
        np.testing.assert_array_equal(values["y"], node_by_node(graph, x))
        assert values["mid"].shape == (1, 24, 110, 110)
        (steps,) = executor._plans.values()
        assert [step.node.name for step in steps] == ["expand", "depthwise"]


def test_a_padded_pointwise_conv_runs_the_two_steps_in_a_chain():
    """A 1x1 Conv with pads does not map pixels one to one: the chained call runs the two prepared nodes."""
    graph = block_graph({"pads": [1, 1, 1, 1]})
    graph.tensors["mid"] = Tensor("mid", (1, 24, 112, 112))
    x = np.random.default_rng(6).standard_normal((1, 8, 110, 110)).astype(np.float32)
    got = Executor(graph, default_registry()).run({"x": x})["y"]
    np.testing.assert_array_equal(got, node_by_node(graph, x))
    assert got.shape == (1, 24, 56, 56)


def test_a_quantized_plan_does_not_chain():
    graph = block_graph()
    for name, q in (("x", 0.05), ("mid", 0.05), ("y", 0.05), ("w1", 0.01), ("w2", 0.01)):
        graph.tensors[name].quant = QuantParams("u8", q, 128)
    for name in ("b1", "b2"):
        graph.tensors[name].quant = QuantParams("i32", 0.0005, 0)
    executor = QuantExecutor(graph, default_registry())
    executor.run({"x": np.zeros((1, 8, 110, 110), np.float32)})
    (steps,) = executor._plans.values()
    assert len(steps) == 2


def test_a_real_mobilenetv3_chains_its_blocks_and_keeps_its_values(tmp_path, monkeypatch):
    """PP-OCR's direction classifier (MobileNetV3, exported by Paddle): its expand and depthwise convs run
    chained, with the unchained plan's outputs bit for bit, and within onnxruntime's rounding."""
    path = real_model("rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx")
    rknn = RKNN()
    rknn.config(mean_values=[[127.5] * 3], std_values=[[127.5] * 3])
    assert rknn.load_onnx(model=path, input_size_list=[[3, 256, 512]]) == 0  # planes that leave a 512 KB L2
    assert rknn.build(do_quantization=False) == 0
    assert rknn.init_runtime() == 0
    image, answers = text_image(256, 512), chain_spy(monkeypatch)
    chained_out = rknn.inference(inputs=[image])[0]
    assert answers.count(True) >= 2  # the largest expanded tensors went through pw_dw_conv
    executor = rknn._tk.runtime.executor
    (steps,) = executor._plans.values()
    monkeypatch.setattr(Executor, "CHAINS", False)
    executor._plans.clear()
    apart = rknn.inference(inputs=[image])[0]
    (unchained,) = executor._plans.values()
    assert len(unchained) - len(steps) >= 5  # one step fewer per chained block
    np.testing.assert_array_equal(chained_out, apart)
    import onnx

    name = onnx.load(path, load_external_data=False).graph.input[0].name
    normalized = ((image.astype(np.float32) - 127.5) / 127.5).transpose(2, 0, 1)[None]
    np.testing.assert_allclose(chained_out, run_ort(path, {name: normalized})[0], atol=5e-4)  # two probabilities
    rknn.release()
