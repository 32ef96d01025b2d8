"""Converters of spatial and dense ops: convolutions, pooling, normalization, resizing, MatMul."""

from __future__ import annotations

import math

import numpy as np

from rknn_core.errors import RknnError
from rknn_tf.context import NCHW, TF, Context
from rknn_tf.tfnode import TfNode


def _nhwc(node: TfNode) -> bool:
    fmt = node.attr("data_format", "NHWC")
    if fmt not in ("NHWC", "NCHW"):
        raise RknnError(f"data_format '{fmt}' is not supported (NHWC, NCHW)")
    return fmt == "NHWC"


def _hw(values, nhwc: bool, what: str) -> list[int]:
    values = [int(v) for v in values] if values else [1, 1, 1, 1]
    if len(values) != 4:
        raise RknnError(f"{what} {values} must have 4 entries")
    return values[1:3] if nhwc else values[2:4]


def spatial_pads(node: TfNode, in_hw, kernel, strides, dilations, nhwc: bool) -> list[int]:
    """ONNX pads [top, left, bottom, right] for TF padding SAME / VALID / EXPLICIT."""
    padding = node.attr("padding", "VALID")
    if padding == "VALID":
        return [0, 0, 0, 0]
    if padding == "EXPLICIT":
        p = [int(v) for v in node.attr("explicit_paddings", [])]
        hw = p[2:6] if nhwc else p[4:8]
        return [hw[0], hw[2], hw[1], hw[3]]
    if padding != "SAME":
        raise RknnError(f"padding '{padding}' is not supported")
    begin, end = [], []
    for size, k, s, d in zip(in_hw, kernel, strides, dilations):
        out = math.ceil(size / s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return begin + end


def conv(ctx: Context, node: TfNode, x_key: str | None = None, dilations: list[int] | None = None,
         pads: list[int] | None = None, out_name: str | None = None) -> None:
    """Conv2D / DepthwiseConv2dNative (HWIO / HWCM filters -> OIHW); the overrides serve the
    SpaceToBatchND -> conv -> BatchToSpaceND pattern."""
    nhwc = _nhwc(node)
    x_key = x_key or node.inputs[0]
    w = ctx.need_const(node.inputs[1], "the filter")
    if w.ndim != 4:
        raise RknnError(f"filter of shape {w.shape} must be 4-D")
    kh, kw, cin, mult = w.shape
    if node.op == "Conv2D":
        weight, group = np.transpose(w, (3, 2, 0, 1)), None
    else:
        weight, group = np.transpose(w.reshape(kh, kw, 1, cin * mult), (3, 2, 0, 1)), cin
    layout = NCHW if nhwc else TF
    x = ctx.get(x_key, layout)
    shape = ctx.graph.tensor(x).shape
    channels = shape[1]
    if node.op == "Conv2D" and channels % cin == 0 and channels != cin:
        group = channels // cin  # grouped convolution
    strides = _hw(node.attr("strides"), nhwc, "strides")
    dilations = dilations or _hw(node.attr("dilations"), nhwc, "dilations")
    if pads is None:
        pads = spatial_pads(node, shape[2:4], (kh, kw), strides, dilations, nhwc)
    attrs = {"kernel_shape": [kh, kw], "strides": strides, "dilations": dilations, "pads": pads}
    if group:
        attrs["group"] = group
    wname = ctx.add_const(f"{node.name}/weight", weight.astype(np.float32))
    name = out_name or node.name
    ctx.result(name, "Conv", [x, wname], attrs, layout)


def batchnorm(ctx: Context, node: TfNode) -> None:
    nhwc = _nhwc(node)
    if node.attr("is_training", False) and ctx.const(node.inputs[3]) is not None and ctx.const(node.inputs[3]).size == 0:
        raise RknnError("FusedBatchNorm in training mode (no running statistics) is not supported; freeze the "
                        "graph for inference")
    layout = NCHW if nhwc else TF
    params = [ctx.need_const(k, "a batch-norm parameter").astype(np.float32) for k in node.inputs[1:5]]
    names = [ctx.add_const(f"{node.name}/{p}", v) for p, v in zip(("scale", "offset", "mean", "var"), params)]
    ctx.result(node.name, "BatchNormalization", [ctx.get(node.inputs[0], layout), *names],
               {"epsilon": float(node.attr("epsilon", 1e-3))}, layout)


def pool(ctx: Context, node: TfNode) -> None:
    nhwc = _nhwc(node)
    layout = NCHW if nhwc else TF
    x = ctx.get(node.inputs[0], layout)
    kernel = _hw(node.attr("ksize"), nhwc, "ksize")
    strides = _hw(node.attr("strides"), nhwc, "strides")
    pads = spatial_pads(node, ctx.graph.tensor(x).shape[2:4], kernel, strides, (1, 1), nhwc)
    attrs = {"kernel_shape": kernel, "strides": strides, "pads": pads}
    if node.op == "MaxPool":
        ctx.result(node.name, "MaxPool", [x], attrs, layout)
    else:
        ctx.result(node.name, "AveragePool", [x], {**attrs, "count_include_pad": 0}, layout)


def resize(ctx: Context, node: TfNode) -> None:
    size = [int(v) for v in ctx.need_const(node.inputs[1], "the output size")]
    align, half = bool(node.attr("align_corners", False)), bool(node.attr("half_pixel_centers", False))
    x = ctx.get(node.inputs[0], NCHW)
    n, c = ctx.graph.tensor(x).shape[:2]
    if node.op == "ResizeBilinear":
        coord = "align_corners" if align else "half_pixel" if half else "asymmetric"
        attrs = {"mode": "linear", "coordinate_transformation_mode": coord}
    else:
        coord = "align_corners" if align else "tf_half_pixel_for_nearest" if half else "asymmetric"
        attrs = {"mode": "nearest", "coordinate_transformation_mode": coord,
                 "nearest_mode": "round_prefer_ceil" if align else "floor"}
    sizes = ctx.add_const(f"{node.name}/sizes", np.asarray([n, c, *size], np.int64))
    ctx.result(node.name, "Resize", [x, "", "", sizes], attrs, NCHW)


def space_depth(ctx: Context, node: TfNode) -> None:
    op = "DepthToSpace" if node.op == "DepthToSpace" else "SpaceToDepth"
    attrs = {"blocksize": int(node.attr("block_size"))}
    if op == "DepthToSpace":
        attrs["mode"] = "DCR"
    ctx.result(node.name, op, [ctx.get(node.inputs[0], NCHW)], attrs, NCHW)


def matmul(ctx: Context, node: TfNode) -> None:
    a_key, b_key = node.inputs[:2]
    if node.op == "MatMul":
        ta, tb = bool(node.attr("transpose_a", False)), bool(node.attr("transpose_b", False))
        if ctx.rank(a_key) != 2 or ctx.rank(b_key) != 2:
            raise RknnError("MatMul operands must be 2-D")
        attrs = {"transA": int(ta), "transB": int(tb)}
        op = "Gemm" if ta or tb else "MatMul"
        ctx.result(node.name, op, [ctx.get(a_key), ctx.get(b_key)], attrs if op == "Gemm" else {})
        return
    operands = []
    for key, adj in ((a_key, "adj_x"), (b_key, "adj_y")):
        name = ctx.get(key)
        if node.attr(adj, False):
            rank = ctx.rank(key)
            perm = list(range(rank - 2)) + [rank - 1, rank - 2]
            name = ctx.emit("Transpose", [name], {"perm": perm})[0]
        operands.append(name)
    ctx.result(node.name, "MatMul", operands)


def softmax(ctx: Context, node: TfNode) -> None:
    key = node.inputs[0]
    if ctx.layout(key) == NCHW:
        ctx.result(node.name, "Softmax", [ctx.get(key, NCHW)], {"axis": 1}, NCHW)
    else:
        ctx.result(node.name, "Softmax", [ctx.get(key)], {"axis": -1})


def dilated_conv(ctx: Context, node: TfNode) -> None:
    """BatchToSpaceND closing a SpaceToBatchND -> conv pattern: one dilated Conv."""
    conv_node = ctx.nodes[node.inputs[0]]
    s2b = ctx.nodes[conv_node.inputs[0]]
    block = [int(v) for v in ctx.need_const(s2b.inputs[1], "the block shape")]
    paddings = ctx.need_const(s2b.inputs[2], "the paddings").astype(int)
    crops = ctx.need_const(node.inputs[2], "the crops").astype(int)
    if block != [int(v) for v in ctx.need_const(node.inputs[1], "the block shape")] or len(block) != 2:
        raise RknnError("SpaceToBatchND and BatchToSpaceND around a convolution use different block shapes")
    begin = paddings[:, 0] - crops[:, 0]
    end = paddings[:, 1] - crops[:, 1]
    if (begin < 0).any() or (end < 0).any():
        raise RknnError("BatchToSpaceND crops more than SpaceToBatchND padded")
    if conv_node.attr("padding") != "VALID":
        raise RknnError("the convolution between SpaceToBatchND and BatchToSpaceND must use VALID padding")
    conv(ctx, conv_node, x_key=s2b.inputs[0], dilations=block, pads=[*begin.tolist(), *end.tolist()],
         out_name=node.name)


CONVERTERS = {
    "Conv2D": conv, "DepthwiseConv2dNative": conv,
    "FusedBatchNorm": batchnorm, "FusedBatchNormV2": batchnorm, "FusedBatchNormV3": batchnorm,
    "MaxPool": pool, "AvgPool": pool,
    "ResizeBilinear": resize, "ResizeNearestNeighbor": resize,
    "DepthToSpace": space_depth, "SpaceToDepth": space_depth,
    "MatMul": matmul, "BatchMatMul": matmul, "BatchMatMulV2": matmul, "BatchMatMulV3": matmul,
    "Softmax": softmax,
}
