"""One small hand-written .tflite model per op (and option), compared with ai-edge-litert."""

from __future__ import annotations

import numpy as np
import pytest
from tflite_util import assert_close, run_litert, run_rknn
from tflite_writer import TfliteWriter

RNG = np.random.default_rng(3)
F32 = np.float32


def _w(*shape, scale=0.3):
    return (RNG.standard_normal(shape) * scale).astype(F32)


def conv(m, x, same=True, stride=1, dil=1, act=0):
    y = m.tensor([1, 8 if stride == 1 else 4, 8 if stride == 1 else 4, 6] if same else [1, 8 - 2 * dil, 8 - 2 * dil, 6])
    m.op("CONV_2D", [x, m.const(_w(6, 3, 3, 4)), m.const(_w(6))], [y], "Conv2DOptions", Padding=0 if same else 1,
         StrideH=stride, StrideW=stride, DilationHFactor=dil, DilationWFactor=dil, FusedActivationFunction=act)
    return y


def case_conv_same_relu(m, x):
    return conv(m, x, act=1)


def case_conv_valid_dilated_relu6(m, x):
    return conv(m, x, same=False, dil=2, act=3)


def case_conv_stride2_tanh_ignored(m, x):
    """TFLite kernels ignore a fused TANH (their activation range covers only the ReLUs)."""
    return conv(m, x, stride=2, act=4)


def case_depthwise_multiplier(m, x):
    y = m.tensor([1, 4, 4, 8])
    m.op("DEPTHWISE_CONV_2D", [x, m.const(_w(1, 3, 3, 8)), m.const(_w(8))], [y], "DepthwiseConv2DOptions",
         Padding=0, StrideH=2, StrideW=2, DepthMultiplier=2, DilationHFactor=1, DilationWFactor=1,
         FusedActivationFunction=2)
    return y


def case_transpose_conv(m, x):
    y = m.tensor([1, 16, 16, 5])
    m.op("TRANSPOSE_CONV", [m.const(np.array([1, 16, 16, 5], np.int32)), m.const(_w(5, 3, 3, 4)), x, m.const(_w(5))],
         [y], "TransposeConvOptions", Padding=0, StrideH=2, StrideW=2)
    return y


def case_fully_connected_keep_dims(m, x):
    y = m.tensor([1, 8, 8, 3])
    m.op("FULLY_CONNECTED", [x, m.const(_w(3, 4)), m.const(_w(3))], [y], "FullyConnectedOptions", KeepNumDims=True,
         FusedActivationFunction=1)
    return y


def case_fully_connected_flat(m, x):
    y = m.tensor([1, 10])
    r = m.tensor([1, 256])
    m.op("RESHAPE", [x, m.const(np.array([1, 256], np.int32))], [r])
    m.op("FULLY_CONNECTED", [r, m.const(_w(10, 256, scale=0.05)), -1], [y], "FullyConnectedOptions")
    return y


def _pool(code, same):
    def case(m, x):
        y = m.tensor([1, 3, 3, 4] if same else [1, 2, 2, 4])
        m.op(code, [x], [y], "Pool2DOptions", Padding=0 if same else 1, StrideH=3, StrideW=3, FilterHeight=3,
             FilterWidth=3)
        return y
    return case


def _binary(code, shape=(1, 1, 4), options=None, act=0):
    def case(m, x):
        y = m.tensor([1, 8, 8, 4])
        other = m.const((RNG.uniform(0.5, 1.5, shape)).astype(F32))
        fields = {"FusedActivationFunction": act} if options else {}
        m.op(code, [x, other], [y], options, **fields)
        return y
    return case


def _unary(code, options=None, **fields):
    def case(m, x):
        y = m.tensor([1, 8, 8, 4])
        m.op(code, [x], [y], options, **fields)
        return y
    return case


def _positive(code):
    def case(m, x):
        a = m.tensor([1, 8, 8, 4])
        m.op("EXP", [x], [a])
        y = m.tensor([1, 8, 8, 4])
        m.op(code, [a], [y])
        return y
    return case


def case_mean_keepdims(m, x):
    y = m.tensor([1, 1, 1, 4])
    m.op("MEAN", [x, m.const(np.array([1, 2], np.int32))], [y], "ReducerOptions", KeepDims=True)
    return y


def case_reduce_max(m, x):
    y = m.tensor([1, 8])
    m.op("REDUCE_MAX", [x, m.const(np.array([2, 3], np.int32))], [y], "ReducerOptions", KeepDims=False)
    return y


def case_pad(m, x):
    y = m.tensor([1, 9, 11, 4])
    m.op("PAD", [x, m.const(np.array([[0, 0], [1, 0], [2, 1], [0, 0]], np.int32))], [y])
    return y


def case_softmax_beta(m, x):
    y = m.tensor([1, 8, 8, 4])
    m.op("SOFTMAX", [x], [y], "SoftmaxOptions", Beta=0.5)
    return y


def case_concat_split_v(m, x):
    c = m.tensor([1, 8, 8, 8])
    m.op("CONCATENATION", [x, x], [c], "ConcatenationOptions", Axis=3)
    a, b = m.tensor([1, 8, 8, 3]), m.tensor([1, 8, 8, 5])
    m.op("SPLIT_V", [c, m.const(np.array([3, -1], np.int32)), m.const(np.array(3, np.int32))], [a, b],
         "SplitVOptions", NumSplits=2)
    y = m.tensor([1, 8, 8, 3])
    m.op("MUL", [a, a], [y], "MulOptions")
    return y


def case_split(m, x):
    a, b = m.tensor([1, 4, 8, 4]), m.tensor([1, 4, 8, 4])
    m.op("SPLIT", [m.const(np.array(1, np.int32)), x], [a, b], "SplitOptions", NumSplits=2)
    y = m.tensor([1, 4, 8, 4])
    m.op("SUB", [a, b], [y], "SubOptions")
    return y


def case_strided_slice_masks(m, x):
    y = m.tensor([1, 3, 4])
    m.op("STRIDED_SLICE", [x, m.const(np.array([0, 1, 0, 2], np.int32)), m.const(np.array([1, 7, 8, 3], np.int32)),
                           m.const(np.array([1, 2, 2, 1], np.int32))], [y], "StridedSliceOptions",
         BeginMask=0b0100, EndMask=0b0100, ShrinkAxisMask=0b1000)
    return y


def case_slice(m, x):
    y = m.tensor([1, 3, 8, 2])
    m.op("SLICE", [x, m.const(np.array([0, 2, 0, 1], np.int32)), m.const(np.array([1, 3, -1, 2], np.int32))], [y])
    return y


def _resize(code, options, h, w, **fields):
    def case(m, x):
        y = m.tensor([1, h, w, 4])
        m.op(code, [x, m.const(np.array([h, w], np.int32))], [y], options, **fields)
        return y
    return case


def case_transpose_squeeze(m, x):
    t = m.tensor([1, 4, 8, 8])
    m.op("TRANSPOSE", [x, m.const(np.array([0, 3, 1, 2], np.int32))], [t])
    y = m.tensor([4, 8, 8])
    m.op("SQUEEZE", [t], [y], "SqueezeOptions")
    return y


def case_pack_unpack(m, x):
    parts = [m.tensor([1, 8, 4]) for _ in range(8)]
    m.op("UNPACK", [x], parts, "UnpackOptions", Num=8, Axis=1)
    y = m.tensor([1, 8, 4, 2])
    m.op("PACK", [parts[0], parts[3]], [y], "PackOptions", ValuesCount=2, Axis=3)
    return y


def case_gather(m, x):
    y = m.tensor([1, 8, 3, 4])
    m.op("GATHER", [x, m.const(np.array([7, 0, 3], np.int32))], [y], "GatherOptions", Axis=2)
    return y


def case_space_depth(m, x):
    s = m.tensor([1, 4, 4, 16])
    m.op("SPACE_TO_DEPTH", [x], [s], "SpaceToDepthOptions", BlockSize=2)
    a = m.tensor([1, 4, 4, 16])
    m.op("ADD", [s, m.const(_w(16))], [a], "AddOptions")
    y = m.tensor([1, 8, 8, 4])
    m.op("DEPTH_TO_SPACE", [a], [y], "DepthToSpaceOptions", BlockSize=2)
    return y


def case_squared_difference_rsqrt(m, x):
    d = m.tensor([1, 8, 8, 4])
    m.op("SQUARED_DIFFERENCE", [x, m.const(_w(4))], [d])
    e = m.tensor([1, 8, 8, 4])
    m.op("ADD", [d, m.const(np.full(1, 0.1, F32))], [e], "AddOptions")
    y = m.tensor([1, 8, 8, 4])
    m.op("RSQRT", [e], [y])
    return y


def case_space_batch_dilation(m, x):
    b = m.tensor([4, 5, 5, 4])
    m.op("SPACE_TO_BATCH_ND", [x, m.const(np.array([2, 2], np.int32)), m.const(np.array([[1, 1], [1, 1]], np.int32))],
         [b])
    c = m.tensor([4, 3, 3, 6])
    m.op("CONV_2D", [b, m.const(_w(6, 3, 3, 4)), m.const(_w(6))], [c], "Conv2DOptions", Padding=1, StrideH=1,
         StrideW=1, DilationHFactor=1, DilationWFactor=1)
    y = m.tensor([1, 4, 4, 6])
    m.op("BATCH_TO_SPACE_ND", [c, m.const(np.array([2, 2], np.int32)), m.const(np.array([[1, 1], [1, 1]], np.int32))],
         [y])
    return y


def case_float16_weights(m, x):
    w16 = m.const(_w(6, 1, 1, 4).astype(np.float16))
    w = m.tensor([6, 1, 1, 4])
    m.op("DEQUANTIZE", [w16], [w])
    y = m.tensor([1, 8, 8, 6])
    m.op("CONV_2D", [x, w, m.const(_w(6))], [y], "Conv2DOptions", Padding=1, StrideH=1, StrideW=1, DilationHFactor=1,
         DilationWFactor=1)
    return y


CASES = {
    **{name[5:]: fn for name, fn in dict(globals()).items() if name.startswith("case_")},
    "avg_pool_same": _pool("AVERAGE_POOL_2D", True), "max_pool_valid": _pool("MAX_POOL_2D", False),
    "add_relu6": _binary("ADD", options="AddOptions", act=3), "sub": _binary("SUB", (4,), "SubOptions"),
    "mul_relu_n1": _binary("MUL", (8, 1, 4), "MulOptions", act=2), "div": _binary("DIV", options="DivOptions"),
    "maximum": _binary("MAXIMUM"), "minimum": _binary("MINIMUM"), "prelu": _binary("PRELU"),
    "logistic": _unary("LOGISTIC"), "tanh": _unary("TANH"), "relu": _unary("RELU"), "relu6": _unary("RELU6"),
    "relu_n1_to_1": _unary("RELU_N1_TO_1"), "hard_swish": _unary("HARD_SWISH"), "exp": _unary("EXP"),
    "leaky_relu": _unary("LEAKY_RELU", "LeakyReluOptions", Alpha=0.2), "sqrt": _positive("SQRT"),
    "resize_bilinear": _resize("RESIZE_BILINEAR", "ResizeBilinearOptions", 13, 16),
    "resize_bilinear_align": _resize("RESIZE_BILINEAR", "ResizeBilinearOptions", 15, 5, AlignCorners=True),
    "resize_bilinear_half": _resize("RESIZE_BILINEAR", "ResizeBilinearOptions", 16, 12, HalfPixelCenters=True),
    "resize_nearest": _resize("RESIZE_NEAREST_NEIGHBOR", "ResizeNearestNeighborOptions", 16, 12),
    "resize_nearest_align": _resize("RESIZE_NEAREST_NEIGHBOR", "ResizeNearestNeighborOptions", 15, 13,
                                    AlignCorners=True),
    "resize_nearest_half": _resize("RESIZE_NEAREST_NEIGHBOR", "ResizeNearestNeighborOptions", 12, 20,
                                   HalfPixelCenters=True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_litert(case, tmp_path):
    m = TfliteWriter()
    x = m.input([1, 8, 8, 4])
    out = CASES[case](m, x)
    path = m.save(str(tmp_path / f"{case}.tflite"), [out])
    data = np.random.default_rng(11).standard_normal((1, 8, 8, 4)).astype(F32)
    ref = run_litert(path, [data])
    assert_close(run_rknn(path, [data]), ref)
