"""A seeded mutation corpus: small valid .onnx, .tflite, .pb and .rknn files and broken variants of them.

Every mutation is drawn from ``random.Random(seed)``, so a corpus is the same on every run and a
failing case is named by its file. ``RKNN_FUZZ_SCALE`` (``nox -s fuzz`` sets it) multiplies the
number of cases.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rknn_core import fileformat
from rknn_core.testing import make_model

SCALE = int(os.environ.get("RKNN_FUZZ_SCALE", "1"))
HERE = os.path.dirname(os.path.abspath(__file__))
INTERESTING = [0, 1, -1, 2, 3, 7, 255, 256, -128, 127, 65535, 2**31 - 1, -(2**31), 2**40, 10**9]


# ---- byte-level mutations (any format) -------------------------------------------------------------
def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """One to four random edits: bit flips, interesting 32-bit words, truncation, insertion, duplication."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(["flip", "word", "byte", "truncate", "insert", "duplicate", "zero"])
        pos = rng.randrange(max(len(buf), 1))
        if kind == "flip" and buf:
            buf[pos] ^= 1 << rng.randrange(8)
        elif kind == "byte" and buf:
            buf[pos] = rng.choice([0, 0xFF, 0x7F, 0x80, 0x01])
        elif kind == "word" and len(buf) >= 4:
            pos = rng.randrange(len(buf) - 3) & ~3
            buf[pos:pos + 4] = (rng.choice(INTERESTING) & 0xFFFFFFFF).to_bytes(4, "little")
        elif kind == "truncate":
            del buf[pos:]
        elif kind == "insert":
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif kind == "duplicate" and buf:
            end = min(len(buf), pos + rng.randint(1, 64))
            buf[pos:pos] = buf[pos:end]
        elif kind == "zero":
            end = min(len(buf), pos + rng.randint(1, 32))
            buf[pos:end] = bytes(end - pos)
    return bytes(buf)


# ---- ONNX ------------------------------------------------------------------------------------------
def onnx_seeds() -> list[onnx.ModelProto]:
    """Small float models: conv/relu/pool/gemm, elementwise with broadcasting, concat/reshape/transpose."""
    rng = np.random.default_rng(0)
    conv = make_model(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
         helper.make_node("Flatten", ["p"], ["f"]),
         helper.make_node("Gemm", ["f", "g", "gb"], ["y"], transB=1)],
        {"x": np.zeros((1, 3, 8, 8), np.float32)}, ["y"],
        {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "b": np.zeros(4, np.float32),
         "g": rng.standard_normal((5, 64)).astype(np.float32), "gb": np.zeros(5, np.float32)})
    elementwise = make_model(
        [helper.make_node("Add", ["x", "k"], ["a"]), helper.make_node("Mul", ["a", "x"], ["m"]),
         helper.make_node("Sigmoid", ["m"], ["s"]), helper.make_node("ReduceMean", ["s"], ["y"], axes=[2], keepdims=1)],
        {"x": np.zeros((1, 4, 6), np.float32)}, ["y"], {"k": rng.standard_normal((4, 1)).astype(np.float32)})
    shapes = make_model(
        [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
         helper.make_node("Reshape", ["t", "shape"], ["r"]),
         helper.make_node("Concat", ["r", "r"], ["c"], axis=1),
         helper.make_node("Softmax", ["c"], ["y"], axis=-1)],
        {"x": np.zeros((1, 3, 4), np.float32)}, ["y"], {"shape": np.array([1, 12], np.int64)})
    return [conv, elementwise, shapes]


def _onnx_structural(model: onnx.ModelProto, rng: random.Random) -> None:
    """One edit a broken exporter or a hand edit could make, in place."""
    g = model.graph
    kind = rng.choice(["init_data", "init_type", "init_dims", "input_type", "input_dims", "op_type", "node_inputs",
                       "node_outputs", "attr_value", "attr_type", "attr_drop", "opset", "graph_outputs", "duplicate"])
    node = rng.choice(list(g.node))
    if kind == "init_data" and g.initializer:
        init = rng.choice(list(g.initializer))
        raw = init.raw_data or bytes(16)  # (an earlier edit may have emptied it)
        init.ClearField("float_data"), init.ClearField("int64_data")
        init.raw_data = raw[: rng.randrange(max(len(raw), 1))]
    elif kind == "init_type" and g.initializer:
        rng.choice(list(g.initializer)).data_type = rng.choice([0, 8, 14, 16, 22, 40, 99, TensorProto.INT8])
    elif kind == "init_dims" and g.initializer:
        init = rng.choice(list(g.initializer))
        init.dims[:] = [rng.choice(INTERESTING[:9]) for _ in range(rng.randint(0, 9))]
    elif kind == "input_type":
        g.input[0].type.tensor_type.elem_type = rng.choice([0, 8, 9, 14, 15, 16, 30, 77])
    elif kind == "input_dims":
        dims = g.input[0].type.tensor_type.shape.dim
        for d in dims:
            d.dim_value = rng.choice([0, 1, 3, 2**20, 2**31 - 1])
        if rng.random() < 0.3:
            dims.add().dim_value = 1  # one more axis
    elif kind == "op_type":
        node.op_type = rng.choice(["Conv", "Gemm", "Add", "Reshape", "Concat", "Softmax", "Resize", "Slice", "Nope",
                                   "Split", "Pad", "Gather", "Loop", ""])
    elif kind == "node_inputs":
        if node.input and rng.random() < 0.5:
            del node.input[rng.randrange(len(node.input))]
        else:
            node.input.append(rng.choice(["missing", "", node.input[0] if node.input else "x"]))
    elif kind == "node_outputs":
        node.output[0] = rng.choice(["x", g.node[0].output[0], "", "renamed"])
    elif kind in ("attr_value", "attr_type", "attr_drop") and node.attribute:
        attr = rng.choice(list(node.attribute))
        if kind == "attr_drop":
            node.attribute.remove(attr)
        else:
            node.attribute.remove(attr)
            node.attribute.append(helper.make_attribute(attr.name, rng.choice(
                [rng.choice(INTERESTING), float("nan"), -1.5, "same", [rng.choice(INTERESTING)] * rng.randint(1, 9),
                 [0.5, 2.5], numpy_helper.from_array(np.ones((2, 2), np.float32))]) if kind == "attr_type" else
                [rng.choice(INTERESTING[:11]) for _ in range(rng.randint(1, 6))]))
    elif kind == "opset":
        model.opset_import[0].version = rng.choice([1, 5, 6, 7, 9, 11, 13, 18, 21, 25, 99])
    elif kind == "graph_outputs":
        g.output[0].name = rng.choice(["missing", g.input[0].name, node.input[0] if node.input else "x"])
    elif kind == "duplicate":
        g.node.append(node)


def onnx_cases(folder: str, seed: int = 0, count: int = 60) -> list[str]:
    rng = random.Random(seed)
    seeds = onnx_seeds()
    return _proto_cases(folder, count, "onnx", rng, lambda: rng.choice(seeds), _onnx_structural, 0.7)


# ---- TFLite -----------------------------------------------------------------------------------------
def tflite_seeds(folder: str) -> list[bytes]:
    """A float conv/relu/pool/fc model and a uint8 quantized one, written without TensorFlow."""
    sys.path.insert(0, os.path.join(HERE, "..", "plugins", "rknn_tflite", "tests"))
    from tflite_writer import TfliteWriter

    rng = np.random.default_rng(0)
    seeds = []
    w = TfliteWriter()
    x = w.input([1, 8, 8, 3])
    c = w.tensor([1, 8, 8, 4])
    w.op("CONV_2D", [x, w.const(rng.standard_normal((4, 3, 3, 3)).astype(np.float32)), w.const(np.zeros(4, np.float32))],
         [c], "Conv2DOptions", Padding=0, StrideW=1, StrideH=1, FusedActivationFunction=1)
    p = w.tensor([1, 4, 4, 4])
    w.op("MAX_POOL_2D", [c], [p], "Pool2DOptions", Padding=1, StrideW=2, StrideH=2, FilterWidth=2, FilterHeight=2)
    r = w.tensor([1, 64])
    w.op("RESHAPE", [p, w.const(np.array([1, 64], np.int32))], [r])
    y = w.tensor([1, 5])
    w.op("FULLY_CONNECTED", [r, w.const(rng.standard_normal((5, 64)).astype(np.float32)), w.const(np.zeros(5, np.float32))],
         [y], "FullyConnectedOptions")
    seeds.append(open(w.save(os.path.join(folder, "seed_float.tflite"), [y]), "rb").read())
    q = TfliteWriter()
    qx = q.input([1, 4, 4, 2], "uint8", {"scale": [0.02], "zero_point": [128]})
    qy = q.tensor([1, 4, 4, 2], "uint8", {"scale": [0.04], "zero_point": [100]})
    q.op("ADD", [qx, q.const(np.full((1, 1, 1, 2), 130, np.uint8), "uint8", {"scale": [0.01], "zero_point": [120]})],
         [qy], "AddOptions")
    seeds.append(open(q.save(os.path.join(folder, "seed_quant.tflite"), [qy]), "rb").read())
    return seeds


def tflite_cases(folder: str, seed: int = 0, count: int = 40) -> list[str]:
    rng = random.Random(seed)
    seeds = tflite_seeds(folder)
    return [_write(folder, f"case{i:04d}.tflite", mutate_bytes(rng.choice(seeds), rng)) for i in range(count * SCALE)]


# ---- TensorFlow GraphDef ------------------------------------------------------------------------------
PB_INPUTS, PB_SIZES, PB_OUTPUTS = ["x"], [[8, 8, 3]], ["y"]


def pb_seed():
    """Placeholder -> Conv2D -> BiasAdd -> Relu -> Mean, written with the reader's own GraphDef schema."""
    from rknn_tf.proto import tf_graph_pb2 as pb

    rng = np.random.default_rng(0)
    g = pb.GraphDef()

    def node(name, op, inputs=(), **attrs):
        n = g.node.add(name=name, op=op)
        n.input.extend(inputs)
        for key, value in attrs.items():
            n.attr[key].CopyFrom(value)
        return n

    def const(name, array):
        t = pb.TensorProto(dtype=pb.DT_FLOAT if array.dtype == np.float32 else pb.DT_INT32,
                           tensor_content=array.tobytes())
        t.tensor_shape.dim.extend([pb.TensorShapeProto.Dim(size=d) for d in array.shape])
        return node(name, "Const", value=pb.AttrValue(tensor=t), dtype=pb.AttrValue(type=t.dtype))

    f32 = pb.AttrValue(type=pb.DT_FLOAT)
    shape = pb.TensorShapeProto(dim=[pb.TensorShapeProto.Dim(size=d) for d in (1, 8, 8, 3)])
    node("x", "Placeholder", dtype=f32, shape=pb.AttrValue(shape=shape))
    const("w", rng.standard_normal((3, 3, 3, 4)).astype(np.float32))
    const("b", np.zeros(4, np.float32))
    const("axes", np.array([1, 2], np.int32))
    node("conv", "Conv2D", ["x", "w"], T=f32, strides=pb.AttrValue(list=pb.AttrValue.ListValue(i=[1, 1, 1, 1])),
         padding=pb.AttrValue(s=b"SAME"), data_format=pb.AttrValue(s=b"NHWC"))
    node("bias", "BiasAdd", ["conv", "b"], T=f32)
    node("relu", "Relu", ["bias"], T=f32)
    node("y", "Mean", ["relu", "axes"], T=f32, keep_dims=pb.AttrValue(b=False))
    return g


def _pb_structural(g, rng: random.Random) -> None:
    from rknn_tf.proto import tf_graph_pb2 as pb

    node = rng.choice(list(g.node))
    kind = rng.choice(["op", "input", "attr", "dtype", "content", "shape"])
    if kind == "op":
        node.op = rng.choice(["Conv2D", "Relu", "Mean", "Reshape", "Nope", "Const", "Placeholder", ""])
    elif kind == "input":
        node.input.append(rng.choice(["missing", "x:7", "^x", "y"]))
    elif kind == "attr" and node.attr:
        key = rng.choice(sorted(node.attr))
        node.attr[key].CopyFrom(rng.choice([pb.AttrValue(i=rng.choice(INTERESTING)), pb.AttrValue(s=b"VALID?"),
                                            pb.AttrValue(list=pb.AttrValue.ListValue(i=[0, 0])), pb.AttrValue(f=-1.0),
                                            pb.AttrValue()]))
    elif kind in ("dtype", "content", "shape"):
        consts = [n for n in g.node if n.op == "Const"]
        t = rng.choice(consts).attr["value"].tensor
        if kind == "dtype":
            t.dtype = rng.choice([0, 7, 8, 17, 99, pb.DT_DOUBLE])
        elif kind == "content":
            t.tensor_content = t.tensor_content[: rng.randrange(max(len(t.tensor_content), 1))]
        else:
            for d in t.tensor_shape.dim:
                d.size = rng.choice([-1, 0, 1, 5, 2**31])


def pb_cases(folder: str, seed: int = 0, count: int = 30) -> list[str]:
    rng = random.Random(seed)
    seed_graph = pb_seed()
    return _proto_cases(folder, count, "pb", rng, lambda: seed_graph, _pb_structural, 0.6)


# ---- .rknn -------------------------------------------------------------------------------------------
def rknn_seed(folder: str) -> bytes:
    """The first ONNX seed built (float) and exported through the facade."""
    from rknn.api import RKNN

    onnx_path = os.path.join(folder, "seed.onnx")
    onnx.save(onnx_seeds()[0], onnx_path)
    rknn = RKNN()
    out = os.path.join(folder, "seed.rknn")
    assert rknn.load_onnx(onnx_path) == 0 and rknn.build(do_quantization=False) == 0 and rknn.export_rknn(out) == 0
    rknn.release()
    return open(out, "rb").read()


def split_rknn(data: bytes) -> tuple[dict, bytes]:
    """A valid .rknn file's description and data section."""
    _, _, _, meta_len, data_len, _ = fileformat._HEADER.unpack_from(data, 0)
    head = fileformat._align(fileformat._HEADER.size + meta_len)
    return json.loads(data[fileformat._HEADER.size:fileformat._HEADER.size + meta_len]), data[head:head + data_len]


def pack_rknn(meta: dict, blob: bytes) -> bytes:
    """A .rknn file of ``meta`` and ``blob`` with a correct header and checksum (as an editor would write)."""
    meta_bytes = json.dumps(meta).encode()
    pad = fileformat._align(fileformat._HEADER.size + len(meta_bytes)) - fileformat._HEADER.size - len(meta_bytes)
    digest = hashlib.sha256(meta_bytes + blob).digest()
    header = fileformat._HEADER.pack(fileformat.MAGIC, fileformat.FORMAT_VERSION, 0, len(meta_bytes), len(blob), digest)
    return header + meta_bytes + b"\0" * pad + blob


def _json_paths(value, prefix=()) -> list[tuple]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _json_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:12]):
            found += _json_paths(item, (*prefix, index))
    return found


def mutate_description(meta: dict, rng: random.Random) -> dict:
    """Replace or delete one value anywhere in the description (names, shapes, attrs, offsets, fields)."""
    path = rng.choice(_json_paths(meta)[1:])
    parent = meta
    for key in path[:-1]:
        parent = parent[key]
    choices: list[Callable] = [
        lambda old: None, lambda old: rng.choice(INTERESTING), lambda old: float("nan"), lambda old: "missing",
        lambda old: [], lambda old: {}, lambda old: 1e308, lambda old: [old, old] if not isinstance(old, dict) else old,
        lambda old: old * 1000 if isinstance(old, int) and not isinstance(old, bool) else -1,
        lambda old: rng.choice(meta["graph"]["tensors"])["name"],
    ]
    if rng.random() < 0.15 and isinstance(parent, (dict, list)):
        del parent[path[-1]]
    else:
        parent[path[-1]] = rng.choice(choices)(parent[path[-1]])
    return meta


def rknn_cases(folder: str, seed: int = 0, count: int = 40) -> list[str]:
    """Half raw byte mutations (the checksum should catch them), half edited descriptions with a
    recomputed checksum (the load-time checks must catch them)."""
    rng = random.Random(seed)
    data = rknn_seed(folder)
    paths = []
    for i in range(count * SCALE):
        if i % 2:
            meta, blob = split_rknn(data)
            for _ in range(rng.randint(1, 2)):
                meta = mutate_description(meta, rng)
            case = pack_rknn(meta, blob)
        else:
            case = mutate_bytes(data, rng)
        paths.append(_write(folder, f"case{i:04d}.rknn", case))
    return paths


def _proto_cases(folder: str, count: int, ext: str, rng: random.Random, pick_seed: Callable,
                 structural: Callable, edit_share: float) -> list[str]:
    """``count * SCALE`` mutants of protobuf seeds: a share ``edit_share`` with one to three structural edits
    (``structural(proto, rng)``), the rest with byte mutations of the serialized seed."""
    paths = []
    for i in range(count * SCALE):
        seed_proto = pick_seed()
        proto = type(seed_proto)()
        proto.CopyFrom(seed_proto)
        if rng.random() < edit_share:
            for _ in range(rng.randint(1, 3)):
                structural(proto, rng)
            data = proto.SerializeToString()
        else:
            data = mutate_bytes(proto.SerializeToString(), rng)
        paths.append(_write(folder, f"case{i:04d}.{ext}", data))
    return paths


def _write(folder: str, name: str, data: bytes) -> str:
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


CASES = {"onnx": onnx_cases, "tflite": tflite_cases, "pb": pb_cases, "rknn": rknn_cases}
