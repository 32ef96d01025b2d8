"""Every converted layer type on small nets, weights in Caffe's binary format, against OpenCV's DNN."""

from __future__ import annotations

import numpy as np
import pytest
from caffe_util import check_against_opencv, header, random_blobs

RNG = np.random.default_rng(7)


def _x(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


CONV_CASES = {
    "square": ("kernel_size: 3 stride: 2 pad: 1", (6, 4, 3, 3), 1),
    "hw_variants": ("kernel_h: 3 kernel_w: 1 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0", (6, 4, 3, 1), 1),
    "listed_hw": ("kernel_size: 3 kernel_size: 2 stride: 1 stride: 2 pad: 2 pad: 0", (6, 4, 3, 2), 1),
    "group_dilation": ("kernel_size: 3 group: 2 dilation: 2 pad: 2", (6, 2, 3, 3), 2),
    "depthwise": ("kernel_size: 3 group: 4 pad: 1", (4, 1, 3, 3), 4),
}


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_convolution(tmp_path, case):
    params, wshape, _ = CONV_CASES[case]
    out = wshape[0]
    proto = header(1, 4, 9, 10) + f'''layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv"
      convolution_param {{ num_output: {out} {params} }} }}'''
    blobs = random_blobs({"conv": [wshape, (out,)]})
    check_against_opencv(tmp_path, proto, blobs, {"data": _x(1, 4, 9, 10)}, ["conv"])


def test_convolution_without_bias_and_deconvolution(tmp_path):
    proto = header(1, 4, 5, 6) + '''
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 6 kernel_size: 1 bias_term: false } }
layer { name: "up" type: "Deconvolution" bottom: "conv" top: "up"
  convolution_param { num_output: 4 kernel_size: 4 stride: 2 pad: 1 group: 2 } }'''
    blobs = random_blobs({"conv": [(6, 4, 1, 1)], "up": [(6, 2, 4, 4), (4,)]})
    got = check_against_opencv(tmp_path, proto, blobs, {"data": _x(1, 4, 5, 6)}, ["up"])
    assert got[0].shape == (1, 4, 10, 12)


POOL_CASES = {
    "max_ceil": "pool: MAX kernel_size: 3 stride: 2",  # 10 -> ceil((10-3)/2)+1 = 5 (floor would give 4)
    "max_pad_ceil": "pool: MAX kernel_size: 3 stride: 2 pad: 1",  # the window starting in the pad is dropped
    "ave_pad": "pool: AVE kernel_size: 3 stride: 2 pad: 1",  # padding counts in the divisor, the overhang not
    "ave_hw": "pool: AVE kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 1",
    "global_max": "pool: MAX global_pooling: true",
    "global_ave": "pool: AVE global_pooling: true",
}


@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_pooling(tmp_path, case):
    proto = header(1, 3, 10, 9) + f'''layer {{ name: "pool" type: "Pooling" bottom: "data" top: "pool"
      pooling_param {{ {POOL_CASES[case]} }} }}'''
    got = check_against_opencv(tmp_path, proto, {}, {"data": _x(1, 3, 10, 9)}, ["pool"])
    if case == "max_ceil":
        assert got[0].shape == (1, 3, 5, 4)


ACTIVATIONS = {
    "relu": ('type: "ReLU"', {}),
    "leaky": ('type: "ReLU" relu_param { negative_slope: 0.1 }', {}),
    "sigmoid": ('type: "Sigmoid"', {}),
    "tanh": ('type: "TanH"', {}),
    "absval": ('type: "AbsVal"', {}),
    "elu": ('type: "ELU" elu_param { alpha: 0.5 }', {}),
    "prelu": ('type: "PReLU"', {"act": [(3,)]}),
    "prelu_shared": ('type: "PReLU" prelu_param { channel_shared: true }', {"act": [(1,)]}),
    "power": ('type: "Power" power_param { power: 2 scale: 0.5 shift: 1.5 }', {}),
    "power_scale": ('type: "Power" power_param { scale: -2 shift: 0.25 }', {}),
    "dropout": ('type: "Dropout" dropout_param { dropout_ratio: 0.3 }', {}),
    "softmax": ('type: "Softmax"', {}),
    "softmax_axis": ('type: "Softmax" softmax_param { axis: 3 }', {}),
    "lrn": ('type: "LRN" lrn_param { local_size: 3 alpha: 0.1 beta: 0.75 }', {}),
    "lrn_within": ('type: "LRN" lrn_param { local_size: 3 alpha: 0.1 beta: 0.75 norm_region: WITHIN_CHANNEL }', {}),
}


@pytest.mark.parametrize("case", sorted(ACTIVATIONS))
def test_elementwise_layers(tmp_path, case):
    kind, shapes = ACTIVATIONS[case]
    proto = header(1, 3, 5, 4) + f'layer {{ name: "act" {kind} bottom: "data" top: "act" }}'
    check_against_opencv(tmp_path, proto, random_blobs(shapes), {"data": _x(1, 3, 5, 4)}, ["act"])


def test_in_place_batchnorm_scale_relu(tmp_path):
    """The usual ResNet block: BatchNorm + Scale (bias) + ReLU, all in place on the conv's top."""
    proto = header(1, 3, 6, 6) + '''
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" batch_norm_param { use_global_stats: true eps: 0.001 } }
layer { name: "sc" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }'''
    blobs = random_blobs({"conv": [(4, 3, 3, 3), (4,)], "sc": [(4,), (4,)]})
    blobs["bn"] = [np.array([0.1, -0.2, 0.3, 0.0], np.float32) * 4, np.array([1.0, 0.5, 2.0, 0.25], np.float32) * 4,
                   np.array([4.0], np.float32)]  # Caffe stores the sums with their moving-average factor
    check_against_opencv(tmp_path, proto, blobs, {"data": _x(1, 3, 6, 6)}, ["relu"])  # OpenCV names layers


def test_scale_with_second_bottom_and_bias_layer(tmp_path):
    proto = header(1, 3, 4, 4) + header(1, 3, name="factor") + '''
layer { name: "sc" type: "Scale" bottom: "data" bottom: "factor" top: "sc" scale_param { axis: 0 } }'''
    x, f = _x(1, 3, 4, 4), _x(1, 3)
    check_against_opencv(tmp_path, proto, {}, {"data": x, "factor": f}, ["sc"])


@pytest.mark.parametrize("operation", ["SUM", "PROD", "MAX", "SUM coeff: 0.5 coeff: -2 coeff: 1"])
def test_eltwise(tmp_path, operation):
    proto = header(1, 2, 3, 3) + '''
layer { name: "a" type: "Power" bottom: "data" top: "a" power_param { scale: 2 } }
layer { name: "b" type: "TanH" bottom: "data" top: "b" }
layer { name: "sum" type: "Eltwise" bottom: "data" bottom: "a" bottom: "b" top: "sum"
  eltwise_param { operation: ''' + operation + " } }"
    check_against_opencv(tmp_path, proto, {}, {"data": _x(1, 2, 3, 3)}, ["sum"])


def test_concat_slice_split_flatten(tmp_path):
    proto = header(1, 6, 4, 5) + '''
layer { name: "slice" type: "Slice" bottom: "data" top: "s1" top: "s2" top: "s3" slice_param { axis: 1 slice_point: 1 slice_point: 4 } }
layer { name: "split" type: "Split" bottom: "s2" top: "t1" top: "t2" }
layer { name: "cat" type: "Concat" bottom: "s3" bottom: "t1" bottom: "s1" top: "cat" }
layer { name: "cat_w" type: "Concat" bottom: "t2" bottom: "t2" top: "cat_w" concat_param { axis: -1 } }
layer { name: "flat" type: "Flatten" bottom: "cat_w" top: "flat" flatten_param { axis: 1 end_axis: 2 } }
layer { name: "halves" type: "Slice" bottom: "cat" top: "h1" top: "h2" slice_param { axis: 2 slice_point: 1 } }
layer { name: "h2x" type: "Power" bottom: "h2" top: "h2x" power_param { scale: 3 } }'''
    # OpenCV's forward() names layers and gives a layer's first top: h2 is read through the Power after it
    got = check_against_opencv(tmp_path, proto, {}, {"data": _x(1, 6, 4, 5)}, ["flat", "halves", "h2x"])
    assert [g.shape for g in got] == [(1, 12, 10), (1, 6, 1, 5), (1, 6, 3, 5)]


@pytest.mark.parametrize("shape", ["dim: 0 dim: -1 dim: 10", "dim: 0 dim: 2 dim: 10 dim: 2",
                                   "dim: 1 dim: 2 } axis: 1 num_axes: 1 shape { dim: -1"])
def test_reshape(tmp_path, shape):
    if "axis" in shape:  # shape { dim: 1 dim: 2 } axis: 1 num_axes: 1 -> ill-formed second shape; use a plain one
        shape = "dim: 1 dim: -1"
        extra = "axis: 1 num_axes: 1"
    else:
        extra = ""
    proto = header(1, 4, 5, 2) + f'''layer {{ name: "r" type: "Reshape" bottom: "data" top: "r"
      reshape_param {{ shape {{ {shape} }} {extra} }} }}'''
    check_against_opencv(tmp_path, proto, {}, {"data": _x(1, 4, 5, 2)}, ["r"])


def test_permute_crop_inner_product(tmp_path):
    proto = header(1, 3, 6, 7) + header(1, 3, 4, 4, name="ref") + '''
layer { name: "perm" type: "Permute" bottom: "data" top: "perm" permute_param { order: 0 order: 2 order: 3 order: 1 } }
layer { name: "crop" type: "Crop" bottom: "data" bottom: "ref" top: "crop" crop_param { axis: 2 offset: 1 offset: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "crop" top: "fc" inner_product_param { num_output: 5 } }
layer { name: "fc2" type: "InnerProduct" bottom: "perm" top: "fc2" inner_product_param { num_output: 2 axis: 2 } }'''
    blobs = random_blobs({"fc": [(5, 48), (5,)], "fc2": [(2, 21), (2,)]})
    got = check_against_opencv(tmp_path, proto, blobs, {"data": _x(1, 3, 6, 7), "ref": _x(1, 3, 4, 4)}, ["fc", "fc2"])
    assert [g.shape for g in got] == [(1, 5), (1, 6, 2)]


@pytest.mark.parametrize("params", ["height: 7 width: 9", "zoom_factor: 2"])
def test_interp(tmp_path, params):
    proto = header(1, 2, 5, 6) + f'''layer {{ name: "i" type: "Interp" bottom: "data" top: "i"
      interp_param {{ {params} }} }}'''
    check_against_opencv(tmp_path, proto, {}, {"data": _x(1, 2, 5, 6)}, ["i"])


def test_normalize(tmp_path):
    proto = header(1, 4, 3, 5) + '''
layer { name: "n1" type: "Normalize" bottom: "data" top: "n1" norm_param { across_spatial: false channel_shared: false } }
layer { name: "n2" type: "Normalize" bottom: "data" top: "n2" norm_param { across_spatial: true channel_shared: true } }'''
    blobs = random_blobs({"n1": [(4,)], "n2": [(1,)]})
    check_against_opencv(tmp_path, proto, blobs, {"data": _x(1, 4, 3, 5)}, ["n1", "n2"])
