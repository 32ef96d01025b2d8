"""Small TF1-style graphs (placeholders and ops, no variables) covering the converted ops.

Each case is a function building the graph under ``tf.compat.v1``; it returns the input
placeholders' names, example inputs and output node names. Cached like the Keras models.
"""

from __future__ import annotations

import pathlib

import numpy as np
from tf_models import cached, tf, write_reference


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _w(*shape, seed: int = 0) -> np.ndarray:
    return (_rng(seed).standard_normal(shape) * 0.3).astype(np.float32)


def _image(*shape, seed: int = 1) -> np.ndarray:
    return _rng(seed).uniform(-1, 1, shape).astype(np.float32)


def conv_block(t):
    x = t.compat.v1.placeholder(t.float32, [1, 17, 19, 3], name="x")
    y = t.nn.conv2d(x, _w(3, 3, 3, 8), strides=2, padding="SAME")
    y = t.nn.bias_add(y, _w(8, seed=1))
    y, _, _ = t.compat.v1.nn.fused_batch_norm(y, _w(8, seed=2) + 1, _w(8, seed=3), _w(8, seed=4),
                                              np.abs(_w(8, seed=5)) + 0.5, is_training=False)
    y = t.nn.relu6(y)
    y = t.nn.depthwise_conv2d(y, _w(3, 3, 8, 2, seed=6), [1, 1, 1, 1], "VALID")
    y = t.nn.leaky_relu(y, 0.1)
    m = t.nn.max_pool2d(y, 3, 2, "SAME")
    a = t.nn.avg_pool2d(y, 2, 2, "SAME")
    y = t.concat([m, a], axis=-1)
    y = t.nn.conv2d(y, _w(1, 1, 32, 4, seed=7), 1, "VALID", dilations=1)
    return ["x"], [_image(1, 17, 19, 3)], [t.identity(y, name="out")]


def dilated(t):
    x = t.compat.v1.placeholder(t.float32, [1, 20, 20, 4], name="x")
    y = t.nn.atrous_conv2d(x, _w(3, 3, 4, 6), rate=2, padding="SAME")
    y = t.nn.bias_add(y, _w(6, seed=1))
    z = t.nn.depthwise_conv2d(y, _w(3, 3, 6, 1, seed=2), [1, 1, 1, 1], "VALID", dilations=[3, 3])
    return ["x"], [_image(1, 20, 20, 4)], [t.identity(y, name="a"), t.identity(z, name="b")]


def resize(t):
    x = t.compat.v1.placeholder(t.float32, [1, 5, 7, 3], name="x")
    outs = []
    for i, (align, half) in enumerate(((False, False), (True, False), (False, True))):
        outs.append(t.compat.v1.image.resize_bilinear(x, [11, 9], align_corners=align, half_pixel_centers=half,
                                                      name=f"bilinear{i}"))
        outs.append(t.compat.v1.image.resize_nearest_neighbor(x, [10, 14], align_corners=align,
                                                              half_pixel_centers=half, name=f"nearest{i}"))
    return ["x"], [_image(1, 5, 7, 3)], outs


def slicing(t):
    x = t.compat.v1.placeholder(t.float32, [2, 6, 8, 5], name="x")
    outs = [x[:, 1:-1:2, ::-1, 3], x[1, ..., t.newaxis, 2:], x[..., 0], x[:, :, 7:1:-3], x[0:1, 2]]
    outs.append(t.slice(x, [0, 1, 2, 0], [-1, 3, 4, 2]))
    a, b, c = t.split(x, [2, 1, -1], axis=3)
    u = t.unstack(x, axis=1)
    outs += [a, b, c, t.stack([u[0], u[5]], axis=2), t.split(x, 2, axis=2)[1]]
    outs.append(t.gather(x, [3, 0, 0], axis=2))
    outs.append(t.transpose(x, [0, 3, 1, 2]))
    return ["x"], [_image(2, 6, 8, 5)], [t.identity(o, name=f"out{i}") for i, o in enumerate(outs)]


def math_ops(t):
    x = t.compat.v1.placeholder(t.float32, [1, 4, 6, 3], name="x")
    y = t.compat.v1.placeholder(t.float32, [1, 4, 6, 3], name="y")
    s = t.math.squared_difference(x, y)
    outs = [s, t.maximum(x, 0.2) - t.minimum(y, -0.1), t.math.rsqrt(t.abs(x) + 1), t.sigmoid(x) * t.tanh(y),
            x / (t.abs(y) + 0.5), t.reduce_max(x, axis=[1, 2]), t.reduce_mean(y, axis=-1, keepdims=True),
            t.reduce_sum(x, axis=1), t.argmax(x, axis=3), t.cast(t.argmax(y, axis=1, output_type=t.int32), t.float32),
            t.nn.softmax(x), t.square(y), t.add_n([x, y, x]), t.nn.elu(x)]
    flat = t.reshape(x, [1, -1])
    outs.append(t.matmul(flat, _w(72, 10)) + _w(10, seed=1))
    outs.append(t.matmul(_w(5, 72, seed=2), flat, transpose_b=True))
    outs.append(t.matmul(x, _w(1, 4, 3, 2, seed=3)))
    return ["x", "y"], [_image(1, 4, 6, 3), _image(1, 4, 6, 3, seed=2)], \
        [t.identity(o, name=f"out{i}") for i, o in enumerate(outs)]


def shapes(t):
    """Shape -> StridedSlice -> Pack -> Reshape chains, ExpandDims, Squeeze, Fill, Tile, Pad* and SpaceToDepth."""
    x = t.compat.v1.placeholder(t.float32, [1, 6, 4, 8], name="x")
    shape = t.shape(x)
    n, h, w = shape[0], shape[1], shape[2]
    flat = t.reshape(x, t.stack([n, h * w, -1]))
    ones = t.fill(t.stack([n, h, w, 1]), 2.0)
    outs = [flat, x * ones, t.expand_dims(x, -1)[..., 0, :], t.squeeze(t.reduce_mean(x, [1, 2], keepdims=True), [1, 2]),
            t.tile(x[:, :1], [1, 3, 1, 1]), t.pad(x, [[0, 0], [1, 2], [0, 1], [0, 0]]),
            t.pad(x, [[0, 0], [2, 1], [1, 0], [0, 0]], constant_values=-3.0),
            t.pad(x, [[0, 0], [1, 2], [3, 1], [0, 0]], mode="REFLECT"),
            t.nn.space_to_depth(x, 2), t.nn.depth_to_space(x, 2)]
    return ["x"], [_image(1, 6, 4, 8)], [t.identity(o, name=f"out{i}") for i, o in enumerate(outs)]


def ssd_like(t):
    """An SSD-style graph: a preprocessing prefix (uint8 -> float, resize) nobody converts, a conv body and a
    postprocessing suffix with a TopK; imported between its inner nodes ``body_in`` and ``boxes``/``scores``."""
    img = t.compat.v1.placeholder(t.uint8, [None, None, None, 3], name="image_tensor")
    f = t.cast(img, t.float32)
    f = t.compat.v1.image.resize_bilinear(f, [32, 32])
    f = t.multiply(f, 2.0 / 255.0)
    body_in = t.subtract(f, 1.0, name="body_in")
    y = t.nn.relu6(t.nn.conv2d(body_in, _w(3, 3, 3, 8), 2, "SAME"))
    y = t.nn.relu6(t.nn.conv2d(y, _w(3, 3, 8, 8, seed=1), 2, "SAME"))
    boxes = t.reshape(t.nn.conv2d(y, _w(1, 1, 8, 4, seed=2), 1, "SAME"), [-1, 64, 4], name="boxes")
    scores = t.reshape(t.nn.conv2d(y, _w(1, 1, 8, 3, seed=3), 1, "SAME"), [-1, 64, 3], name="scores")
    t.math.top_k(t.reduce_max(scores, -1), k=5, name="top")
    return ["image_tensor"], [np.asarray(_rng(3).integers(0, 256, (1, 40, 48, 3)), np.uint8)], [body_in, boxes, scores]


def predef(t):
    """A placeholder for a flag that the vendor's predef_file feeds (here a scale factor and a switch)."""
    x = t.compat.v1.placeholder(t.float32, [1, 8, 8, 3], name="x")
    scale = t.compat.v1.placeholder(t.float32, [3], name="cfg/scale")
    y = t.nn.conv2d(x * scale, _w(3, 3, 3, 4), 1, "SAME")
    return ["x", "cfg/scale"], [_image(1, 8, 8, 3), np.asarray([0.5, 2.0, -1.0], np.float32)], [t.identity(y, name="out")]


def unsupported(t):
    x = t.compat.v1.placeholder(t.float32, [1, 8], name="x")
    return ["x"], [_image(1, 8)], [t.identity(t.math.cumsum(x, axis=1, name="running_total"), name="out")]


CASES = {f.__name__: f for f in (conv_block, dilated, resize, slicing, math_ops, shapes, ssd_like, predef, unsupported)}


def graph_dir(case: str) -> pathlib.Path:
    """The cached frozen graph of ``case`` with TensorFlow's outputs for its example inputs."""

    def build(folder: pathlib.Path) -> None:
        t = tf()
        with t.Graph().as_default() as graph:
            inputs, feeds, outs = CASES[case](t)
            names = [o.name[:-2] if o.name.endswith(":0") else o.name for o in outs]
            (folder / "model.pb").write_bytes(graph.as_graph_def().SerializeToString())
        write_reference(folder, inputs, names, feeds)

    return cached(f"ops-{case}", build)


if __name__ == "__main__":
    for name in CASES:
        print(name, graph_dir(name))
