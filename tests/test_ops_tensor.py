"""Data-movement and shape ops (ops/tensor.py) against onnxruntime on random shapes and attributes."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from onnx_util import check_against_ort, make_model, single_op

from rknn_core.ir import TensorInfo
from rknn_core.ops import generate, tensor

OPS = tensor.OPS + generate.OPS

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MORE = settings(SETTINGS, max_examples=60)  # the ops with the most corner cases
INT_MAX, INT_MIN = 2**63 - 1, -(2**63)
shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)
seeds = st.integers(0, 2**31 - 1)


def rand(seed, shape, dtype=np.float32):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(-20, 20, size=shape).astype(dtype)
    if np.dtype(dtype) == bool:
        return rng.random(shape) > 0.5
    return rng.standard_normal(shape).astype(dtype)


def i64(*values):
    return np.asarray(values, dtype=np.int64)


# ---------------------------------------------------------------- Concat / Split
@SETTINGS
@given(shapes, st.integers(2, 4), st.data(), seeds)
def test_concat(shape, n, data, seed):
    rank = len(shape)
    axis = data.draw(st.integers(-rank, rank - 1))
    parts = [tuple(data.draw(st.integers(1, 4)) if k == axis % rank else d for k, d in enumerate(shape))
             for _ in range(n)]
    inputs = {f"x{i}": rand(seed + i, s) for i, s in enumerate(parts)}
    consts = {"c": rand(seed + 9, parts[0])} if data.draw(st.booleans()) else {}
    check_against_ort(single_op("Concat", inputs, consts, axis=axis), inputs)


@SETTINGS
@given(shapes, st.data(), seeds, st.sampled_from([11, 13]))
def test_split_explicit_sizes(shape, data, seed, opset):
    rank = len(shape)
    axis = data.draw(st.integers(-rank, rank - 1))
    dim = shape[axis]
    cuts = sorted(data.draw(st.lists(st.integers(0, dim), max_size=3)))
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, dim])]
    x = {"x": rand(seed, shape)}
    if opset == 11:
        model = single_op("Split", x, n_outputs=len(sizes), opset=11, axis=axis, split=sizes)
    else:
        model = single_op("Split", x, {"split": i64(*sizes)}, n_outputs=len(sizes), opset=13, axis=axis)
    check_against_ort(model, x)


@pytest.mark.parametrize("opset,dim,n", [(o, d, n) for o in (11, 13, 18) for d, n in ((6, 3), (7, 3), (8, 3), (5, 2), (4, 4))
                                          if o == 18 or d % n == 0])  # uneven chunks came with opset 18
def test_split_into_equal_chunks(opset, dim, n):
    x = {"x": rand(dim, (2, dim, 3))}
    extra = {"num_outputs": n} if opset >= 18 else {}
    out = check_against_ort(single_op("Split", x, n_outputs=n, opset=opset, axis=-2, **extra), x)
    assert sum(o.shape[1] for o in out) == dim


# ---------------------------------------------------------------- Reshape family
@SETTINGS
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.data(), seeds)
def test_reshape(shape, data, seed):
    total = int(np.prod(shape))
    dims = []  # a random factorisation of total
    rest = total
    while rest > 1 and len(dims) < 4:
        f = data.draw(st.sampled_from([d for d in range(1, rest + 1) if rest % d == 0]))
        dims.append(f)
        rest //= f
    dims.append(rest)
    target = list(dims)
    if data.draw(st.booleans()):
        target[data.draw(st.integers(0, len(target) - 1))] = -1
    for k in range(min(len(target), len(shape))):  # 0 copies an equal input dimension
        if target[k] == shape[k] and data.draw(st.booleans()):
            target[k] = 0
    x = {"x": rand(seed, tuple(shape))}
    opset = data.draw(st.sampled_from([7, 13, 14]))
    check_against_ort(single_op("Reshape", x, {"s": i64(*target)}, opset=opset), x)


def test_reshape_allowzero():
    nodes = [helper.make_node("Reshape", ["e", "s"], ["r"], allowzero=1),  # (0, 3, 4) -> (3, 0, 4)
             helper.make_node("Concat", ["r", "x"], ["y"], axis=1)]
    x = {"x": rand(0, (3, 2, 4))}
    consts = {"e": np.zeros((0, 3, 4), np.float32), "s": i64(3, 0, 4)}
    check_against_ort(make_model(nodes, x, ["y"], consts, opset=14), x)
    y = {"x": rand(1, (2, 3, 4))}
    check_against_ort(single_op("Reshape", y, {"s": i64(0, -1)}, opset=14, allowzero=0), y)


@SETTINGS
@given(shapes, st.data(), seeds)
def test_flatten(shape, data, seed):
    opset = data.draw(st.sampled_from([9, 11, 13]))
    axis = data.draw(st.integers(0 if opset < 11 else -len(shape), len(shape)))  # negative axes since 11
    x = {"x": rand(seed, shape)}
    check_against_ort(single_op("Flatten", x, opset=opset, axis=axis), x)


@SETTINGS
@given(shapes, st.data(), seeds)
def test_transpose(shape, data, seed):
    perm = data.draw(st.none() | st.permutations(range(len(shape))))
    # an input only transposed by [0, 3, 1, 2] is taken for NHWC by load_onnx (vendor behaviour)
    assume(perm is None or len(shape) != 4 or list(perm) != [0, 3, 1, 2])
    x = {"x": rand(seed, shape)}
    attrs = {} if perm is None else {"perm": list(perm)}
    out = check_against_ort(single_op("Transpose", x, **attrs), x)
    assert out[0].shape == tuple(shape[p] for p in (perm or range(len(shape))[::-1]))


@SETTINGS
@given(shapes, st.data(), seeds, st.sampled_from([11, 13]))
def test_squeeze(shape, data, seed, opset):
    shape = tuple(1 if data.draw(st.booleans()) else d for d in shape)
    ones = [k for k, d in enumerate(shape) if d == 1]
    axes = data.draw(st.none() | st.lists(st.sampled_from(ones), unique=True) if ones else st.none())
    if axes:
        axes = [a - len(shape) if data.draw(st.booleans()) else a for a in axes]
    x = {"x": rand(seed, shape)}
    if not axes:
        model = single_op("Squeeze", x, opset=opset)
    elif opset == 11:
        model = single_op("Squeeze", x, opset=11, axes=axes)
    else:
        model = single_op("Squeeze", x, {"axes": i64(*axes)}, opset=13)
    check_against_ort(model, x)


@SETTINGS
@given(shapes, st.data(), seeds, st.sampled_from([11, 13]))
def test_unsqueeze(shape, data, seed, opset):
    out_rank = len(shape) + data.draw(st.integers(1, 2))
    axes = data.draw(st.lists(st.integers(0, out_rank - 1), min_size=out_rank - len(shape),
                              max_size=out_rank - len(shape), unique=True))
    axes = [a - out_rank if data.draw(st.booleans()) else a for a in axes]
    x = {"x": rand(seed, shape)}
    if opset == 11:
        model = single_op("Unsqueeze", x, opset=11, axes=axes)
    else:
        model = single_op("Unsqueeze", x, {"axes": i64(*axes)}, opset=13)
    check_against_ort(model, x)


# ---------------------------------------------------------------- Pad
@MORE
@given(st.lists(st.integers(2, 5), min_size=1, max_size=4).map(tuple), st.data(), seeds,
       st.sampled_from(["constant", "reflect", "edge"]), st.sampled_from([7, 11, 13, 18]))
def test_pad(shape, data, seed, mode, opset):
    rank = len(shape)
    axes = list(range(rank))
    if opset >= 18 and data.draw(st.booleans()):
        axes = data.draw(st.lists(st.integers(-rank, rank - 1), min_size=1, max_size=rank,
                                  unique_by=lambda a: a % rank))
    limit = [shape[a] - 1 for a in axes]  # reflect needs pads below the dimension
    begins = [data.draw(st.integers(0, m)) for m in limit]
    ends = [data.draw(st.integers(0, m)) for m in limit]
    if mode == "constant" and opset >= 11:  # negative pads crop
        begins = [b - data.draw(st.integers(0, 1)) if b == 0 else b for b in begins]
    pads = begins + ends
    value = float(data.draw(st.sampled_from([0.0, 1.5, -2.0])))
    x = {"x": rand(seed, shape)}
    if opset == 7:
        attrs = {"value": value} if mode == "constant" else {}
        model = single_op("Pad", x, opset=7, mode=mode, pads=pads, **attrs)
    else:
        consts = {"pads": i64(*pads), "v": np.asarray(value, np.float32)}
        names = ["x", "pads", "v" if mode == "constant" else ""]
        if axes != list(range(rank)):
            consts["axes"] = i64(*axes)
            names.append("axes")
        model = single_op("Pad", x, consts, opset=opset, input_names=names, mode=mode)
    check_against_ort(model, x)


@pytest.mark.parametrize("pads", [[1, -1, 2, 0], [-1, 0, 0, -2], [2, 2, -1, 1]])
@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "wrap"])
def test_pad_negative_and_wrap(pads, mode):
    x = {"x": rand(3, (4, 5))}
    model = single_op("Pad", x, {"pads": i64(*pads)}, opset=19, mode=mode)
    check_against_ort(model, x)


def test_pad_integer_constant_value():
    x = {"x": rand(4, (2, 3), np.int32)}
    model = single_op("Pad", x, {"pads": i64(0, 1, 1, 2), "v": np.asarray(7, np.int32)}, opset=13)
    check_against_ort(model, x)


# ---------------------------------------------------------------- Slice
bounds = st.sampled_from([INT_MIN, -100, -5, -3, -1, 0, 1, 2, 3, 5, 100, INT_MAX])


@MORE
@given(shapes, st.data(), seeds, st.sampled_from([9, 10, 13]))
def test_slice(shape, data, seed, opset):
    rank = len(shape)
    axes = data.draw(st.lists(st.integers(0, rank - 1), min_size=1, max_size=rank, unique=True))
    starts = [data.draw(bounds) for _ in axes]
    ends = [data.draw(bounds) for _ in axes]
    steps = [data.draw(st.sampled_from([1, 1, 2, 3, -1, -2])) for _ in axes] if opset >= 10 else None
    x = {"x": rand(seed, shape)}
    if opset == 9:
        starts = [int(np.clip(s, -(2**31), 2**31 - 1)) for s in starts]
        ends = [int(np.clip(s, -(2**31), 2**31 - 1)) for s in ends]
        model = single_op("Slice", x, opset=9, starts=starts, ends=ends, axes=axes)
    else:
        neg_axes = [a - rank if data.draw(st.booleans()) else a for a in axes]
        consts = {"s": i64(*starts), "e": i64(*ends), "a": i64(*neg_axes), "st": i64(*steps)}
        names = ["x", "s", "e"]
        if data.draw(st.booleans()) or any(v != 1 for v in steps) or axes != list(range(len(axes))):
            names.append("a")
        if len(names) == 4 and any(v != 1 for v in steps):
            names.append("st")
        consts = {k: v for k, v in consts.items() if k in names}
        model = single_op("Slice", x, consts, opset=opset, input_names=names)
    check_against_ort(model, x)


def test_slice_reverse_whole_axis():
    x = {"x": rand(5, (3, 6))}
    model = single_op("Slice", x, {"s": i64(-1), "e": i64(INT_MIN), "a": i64(1), "st": i64(-1)}, opset=13)
    out = check_against_ort(model, x)
    np.testing.assert_array_equal(out[0], x["x"][:, ::-1])


# ---------------------------------------------------------------- Gather
@SETTINGS
@given(shapes, st.data(), seeds, st.sampled_from([np.float32, np.int64]))
def test_gather(shape, data, seed, dtype):
    rank = len(shape)
    axis = data.draw(st.integers(-rank, rank - 1))
    dim = shape[axis]
    idx_shape = data.draw(st.lists(st.integers(1, 3), max_size=2).map(tuple))
    idx = np.random.default_rng(seed).integers(-dim, dim, size=idx_shape).astype(np.int64)
    x = {"x": rand(seed, shape)}
    model = single_op("Gather", x, {"i": idx} if dtype == np.int64 else {"i": idx.astype(np.int32)},
                      opset=data.draw(st.sampled_from([11, 13])), axis=axis)
    check_against_ort(model, x)


@SETTINGS
@given(shapes, st.data(), seeds)
def test_gather_elements(shape, data, seed):
    rank = len(shape)
    axis = data.draw(st.integers(-rank, rank - 1))
    idx_shape = tuple(data.draw(st.integers(1, 4)) if k == axis % rank else data.draw(st.integers(1, d))
                      for k, d in enumerate(shape))
    dim = shape[axis]
    idx = np.random.default_rng(seed).integers(-dim, dim, size=idx_shape).astype(np.int64)
    x = {"x": rand(seed, shape)}
    check_against_ort(single_op("GatherElements", x, {"i": idx}, opset=13, axis=axis), x)


# ---------------------------------------------------------------- Cast, Expand, Tile
@pytest.mark.parametrize("src,to", [
    (np.float32, TensorProto.INT32), (np.float32, TensorProto.INT64), (np.float32, TensorProto.BOOL),
    (np.float32, TensorProto.FLOAT16), (np.float32, TensorProto.DOUBLE), (np.float32, TensorProto.UINT8),
    (np.int64, TensorProto.FLOAT), (np.int32, TensorProto.INT64), (bool, TensorProto.FLOAT)])
@pytest.mark.parametrize("opset", [9, 13])
def test_cast(src, to, opset):
    x = rand(7, (3, 4), src)
    if src == np.float32:
        x = x * 5
        if to in (TensorProto.UINT8,):
            x = np.abs(x)
    inputs = {"x": x}
    out = check_against_ort(single_op("Cast", inputs, opset=opset, to=to), inputs)
    assert out[0].dtype == helper.tensor_dtype_to_np_dtype(to)


@SETTINGS
@given(shapes, st.data(), seeds, st.sampled_from([8, 13]))
def test_expand(shape, data, seed, opset):
    lead = data.draw(st.lists(st.integers(1, 3), max_size=2))
    # each target dimension is 1 (keep the input's), equal, or a broadcast of a 1
    x_shape = tuple(1 if data.draw(st.booleans()) else d for d in shape)
    target = lead + [data.draw(st.sampled_from([1, d])) if d != 1 else data.draw(st.integers(1, 3))
                     for d in x_shape]
    x = {"x": rand(seed, x_shape)}
    check_against_ort(single_op("Expand", x, {"s": i64(*target)}, opset=opset), x)


@SETTINGS
@given(shapes, st.data(), seeds)
def test_tile(shape, data, seed):
    reps = [data.draw(st.integers(1, 3)) for _ in shape]
    x = {"x": rand(seed, shape)}
    check_against_ort(single_op("Tile", x, {"r": i64(*reps)}, opset=13), x)


# ---------------------------------------------------------------- DepthToSpace / SpaceToDepth
@pytest.mark.parametrize("mode", ["DCR", "CRD", None])
@pytest.mark.parametrize("bs", [1, 2, 3])
def test_depth_to_space(mode, bs):
    x = {"x": rand(bs, (2, 2 * bs * bs, 3, 4))}
    attrs = {} if mode is None else {"mode": mode}
    check_against_ort(single_op("DepthToSpace", x, opset=13 if mode else 9, blocksize=bs, **attrs), x)


@pytest.mark.parametrize("bs", [1, 2, 3])
def test_space_to_depth(bs):
    x = {"x": rand(bs, (2, 3, 2 * bs, 3 * bs))}
    check_against_ort(single_op("SpaceToDepth", x, opset=13, blocksize=bs), x)


# ---------------------------------------------------------------- ConstantOfShape, Shape, Size, Range
@pytest.mark.parametrize("value", [None, np.array([2.5], np.float32), np.array([3], np.int64),
                                   np.array([1], np.int32)])
def test_constant_of_shape(value):
    attrs = {} if value is None else {"value": helper.make_tensor("v", helper.np_dtype_to_tensor_dtype(value.dtype),
                                                                  [1], value)}
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("ConstantOfShape", ["s"], ["y"], **attrs),
             helper.make_node("Identity", ["x"], ["z"])]
    x = {"x": rand(0, (2, 3, 1))}
    out = check_against_ort(make_model(nodes, x, ["y", "z"], opset=13), x)
    assert out[0].shape == (2, 3, 1)


@pytest.mark.parametrize("start,end", [(None, None), (1, None), (-2, None), (0, -1), (-10, 10), (2, 1), (1, 3)])
def test_shape_and_size(start, end):
    attrs = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    nodes = [helper.make_node("Shape", ["x"], ["s"], **attrs), helper.make_node("Size", ["x"], ["n"]),
             helper.make_node("Relu", ["x"], ["r"])]
    x = {"x": rand(1, (2, 3, 4, 5))}
    out = check_against_ort(make_model(nodes, x, ["s", "n", "r"], opset=15 if attrs else 13), x)
    assert out[0].dtype == np.int64


@pytest.mark.parametrize("start,limit,delta,dtype", [
    (0, 10, 1, np.int64), (10, 0, -3, np.int64), (5, 5, 1, np.int64), (1, 20, 4, np.int32),
    (0.5, 3.7, 0.25, np.float32), (2.0, -1.0, -0.5, np.float32), (0, 10, -1, np.int64)])
def test_range(start, limit, delta, dtype):
    consts = {k: np.asarray(v, dtype) for k, v in (("a", start), ("b", limit), ("c", delta))}
    nodes = [helper.make_node("Range", ["a", "b", "c"], ["r"]), helper.make_node("Add", ["r", "x"], ["y"])]
    x = {"x": np.ones(1, dtype)}
    check_against_ort(make_model(nodes, x, ["y"], consts, opset=13), x)


# ---------------------------------------------------------------- the PyTorch flatten export
@pytest.mark.parametrize("opset,level", [(9, 3), (11, 0), (11, 3), (13, 0), (13, 3)])
def test_shape_gather_unsqueeze_concat_reshape_chain(opset, level):
    """x.view(x.size(0), -1) as torch.onnx exports it, in front of a Gemm-free MatMul."""
    unsq = ([helper.make_node("Unsqueeze", ["b"], ["bu"], axes=[0])] if opset < 13
            else [helper.make_node("Unsqueeze", ["b", "ax0"], ["bu"])])
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Shape", ["r"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
             *unsq,
             helper.make_node("Concat", ["bu", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["r", "shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["y"])]
    x = {"x": rand(0, (2, 3, 4, 5))}
    consts = {"zero": np.asarray(0, np.int64), "minus1": i64(-1), "w": rand(1, (60, 7))}
    if opset >= 13:
        consts["ax0"] = i64(0)
    out = check_against_ort(make_model(nodes, x, ["y"], consts, opset=opset), x, optimization_level=level)
    assert out[0].shape == (2, 7)


# ---------------------------------------------------------------- values computed during inference
def _op(name):
    return next(o for o in OPS if o.name == name)


def test_infer_computes_small_constant_values():
    shape = _op("Shape").infer([TensorInfo((2, 3, 4))], {"start": 1})[0]
    np.testing.assert_array_equal(shape.data, [3, 4])
    assert _op("Shape").shape_only and _op("Size").shape_only
    assert int(_op("Size").infer([TensorInfo((2, 3, 4))], {})[0].data) == 24
    gathered = _op("Gather").infer([shape, TensorInfo((), "int64", np.asarray(-1))], {"axis": 0})[0]
    assert gathered.shape == () and int(gathered.data) == 4
    cat = _op("Concat").infer([TensorInfo((1,), "int64", i64(-1)), shape], {"axis": 0})[0]
    np.testing.assert_array_equal(cat.data, [-1, 3, 4])
    assert _op("Concat").infer([TensorInfo((1,), "int64"), shape], {"axis": 0})[0].data is None
    cast = _op("Cast").infer([cat], {"to": "float32"})[0]
    assert cast.dtype == "float32" and cast.data.dtype == np.float32
    big = TensorInfo((100, 100), "float32", np.zeros((100, 100), np.float32))
    assert _op("Transpose").infer([big], {})[0].data is None  # large constants are left to folding
    assert _op("Transpose").cost([big], [TensorInfo((100, 100))], {}).macs == 0
