"""Write the MXNet reference cases: run with the python of a virtual environment that has real mxnet
(scripts/setup.sh makes .cache/mxnet-venv with mxnet==1.9.1 and numpy==1.23.5), never in the main one.

    .cache/mxnet-venv/bin/python plugins/rknn_mxnet/tests/make_reference.py [--out .cache/models/mxnet]

Each case is a folder with ``model-symbol.json`` + ``model-0000.params`` (as MXNet writes them), ``inputs.npz``
(the fixed inputs, in order), ``outputs.npz`` (MXNet's outputs, in order), ``params.npz`` (the arrays as
``mx.nd.load`` reads them back) and ``case.json`` (the input_size_list and the mxnet version):

- Gluon model-zoo architectures with fixed random weights (and random BatchNorm statistics), exported with
  ``HybridBlock.export`` and checked to reload with ``SymbolBlock.imports``;
- small symbols built with ``mx.sym`` that exercise every converted op and its attributes;
- ``formats/``: NDArray files of several dtypes, a V3 (numpy-shape) file and an unnamed list.

A stamp (``done.json``, the hash of this script) makes a second run a no-op.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import shutil

# MXNet's plain CPU operators as the reference: its MKLDNN ones fail on a grouped Deconvolution with adj
os.environ.setdefault("MXNET_MKLDNN_ENABLED", "0")
os.environ.setdefault("MXNET_STORAGE_FALLBACK_LOG_VERBOSE", "0")

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import gluon  # noqa: E402
from mxnet.gluon import nn  # noqa: E402
from mxnet.gluon.model_zoo import vision  # noqa: E402

ZOO = {"resnet18_v1": 224, "mobilenet1.0": 224, "mobilenetv2_1.0": 224, "squeezenet1.1": 224, "vgg11": 224}
DEFAULT_OUT = pathlib.Path(__file__).resolve().parents[3] / ".cache" / "models" / "mxnet"


def _fill(params, seed: int) -> None:
    """Fixed random values: He-scaled weights, BatchNorm statistics and affine terms away from 0 and 1."""
    rng = np.random.RandomState(seed)
    for name, p in sorted(params.items()):
        shape = p.shape
        if name.endswith(("running_var", "moving_var")):
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("gamma"):
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith(("running_mean", "moving_mean", "beta", "bias")):
            value = rng.uniform(-0.1, 0.1, shape)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            value = rng.normal(0, np.sqrt(2.0 / max(fan_in, 1)), shape)
        p.set_data(mx.nd.array(value.astype(np.float32)))


class Bottleneck(gluon.HybridBlock):
    """A ResNeXt block: 1x1, grouped 3x3 (32 groups), 1x1, with a projected shortcut."""

    def __init__(self, channels: int, width: int, stride: int, **kwargs):
        super().__init__(**kwargs)
        self.body = nn.HybridSequential()
        self.body.add(nn.Conv2D(width, 1, use_bias=False), nn.BatchNorm(), nn.Activation("relu"),
                      nn.Conv2D(width, 3, stride, 1, groups=32, use_bias=False), nn.BatchNorm(),
                      nn.Activation("relu"), nn.Conv2D(channels, 1, use_bias=False), nn.BatchNorm())
        self.down = nn.HybridSequential()
        self.down.add(nn.Conv2D(channels, 1, stride, use_bias=False), nn.BatchNorm())

    def hybrid_forward(self, F, x):
        return F.Activation(self.body(x) + self.down(x), act_type="relu")


def resnext_like() -> gluon.HybridBlock:
    net = nn.HybridSequential()
    net.add(nn.Conv2D(64, 7, 2, 3, use_bias=False), nn.BatchNorm(), nn.Activation("relu"), nn.MaxPool2D(3, 2, 1),
            Bottleneck(128, 128, 1), Bottleneck(256, 256, 2), nn.GlobalAvgPool2D(), nn.Dense(10))
    return net


def gluon_case(folder: pathlib.Path, net: gluon.HybridBlock, size: int, seed: int) -> None:
    net.initialize()
    net.hybridize()
    x = mx.nd.array(np.random.RandomState(seed + 1).uniform(-1, 1, (1, 3, size, size)).astype(np.float32))
    net(x)  # shapes known before the values are set
    _fill(net.collect_params(), seed)
    out = net(x).asnumpy()
    folder.mkdir(parents=True, exist_ok=True)
    net.export(str(folder / "model"))
    again = gluon.SymbolBlock.imports(str(folder / "model-symbol.json"), ["data"], str(folder / "model-0000.params"))
    np.testing.assert_allclose(again(x).asnumpy(), out, rtol=1e-5, atol=1e-6)
    _write(folder, [x.asnumpy()], [out], [[3, size, size]])


def _write(folder: pathlib.Path, inputs, outputs, sizes) -> None:
    np.savez(folder / "inputs.npz", *inputs)
    np.savez(folder / "outputs.npz", *outputs)
    if (folder / "model-0000.params").stat().st_size < 1 << 20:  # (a model zoo file is checked by its outputs)
        loaded = mx.nd.load(str(folder / "model-0000.params"))
        loaded = loaded if isinstance(loaded, dict) else {}  # a file without arrays loads as an empty list
        np.savez(folder / "params.npz", **{k: v.asnumpy() for k, v in loaded.items()})
    (folder / "case.json").write_text(json.dumps({"input_size_list": sizes, "mxnet": mx.__version__}))


# ---- small symbols: every converted op with MXNet's own attributes ------------------------------------------
def _conv(S, d):
    c = S.Convolution(d, kernel=(3, 3), num_filter=8, stride=(2, 2), pad=(1, 1), dilate=(2, 2), num_group=2,
                      no_bias=True, name="conv")
    c = S.LeakyReLU(c, act_type="prelu", name="prelu")
    e = S.Deconvolution(c, kernel=(4, 4), stride=(2, 2), pad=(1, 1), adj=(1, 1), dilate=(1, 1), num_filter=6, num_group=2,
                        no_bias=False, name="deconv")
    t = S.Deconvolution(d, kernel=(3, 3), stride=(2, 2), dilate=(1, 1), target_shape=(18, 18), num_filter=4,
                        name="deconv_target")
    c1 = S.Convolution(d, kernel=(1, 1), num_filter=5, name="conv1x1")
    return [S.LeakyReLU(e, act_type="elu", slope=0.3), S.LeakyReLU(t, act_type="leaky", slope=0.1),
            S.LeakyReLU(c1, act_type="rrelu")[0], S.LeakyReLU(c1, act_type="selu"), S.LeakyReLU(c1, act_type="gelu")]


def _pool(S, d):
    p = dict(kernel=(3, 3), stride=(2, 2))
    return [S.Pooling(d, pool_type="max", pooling_convention="full", pad=(1, 1), **p),
            S.Pooling(d, pool_type="avg", pooling_convention="full", **p),
            S.Pooling(d, pool_type="avg", pooling_convention="full", count_include_pad=False, pad=(1, 1), **p),
            S.Pooling(d, pool_type="avg", pad=(1, 1), count_include_pad=False, **p),
            S.Pooling(d, pool_type="avg", pad=(1, 1), **p), S.Pooling(d, pool_type="sum", **p),
            S.Pooling(d, pool_type="lp", p_value=2, **p), S.Pooling(d, pool_type="max", global_pool=True, kernel=(1, 1)),
            S.Pooling(d, pool_type="avg", global_pool=True, kernel=(1, 1)),
            S.Pooling(d, pool_type="sum", global_pool=True, kernel=(1, 1))]


def _shape(S, d):  # d: (1, 6, 4, 5)
    return [S.Reshape(d, shape=(0, -1)), S.Reshape(d, shape=(-3, -2)), S.Reshape(d, shape=(0, -4, 2, -1, -2)),
            S.Reshape(d, shape=(-1, 0), reverse=True), S.Reshape(d, shape=(2, -1, 0)),
            S.transpose(d, axes=(0, 2, 3, 1)), S.transpose(d), S.Flatten(d),
            S.slice_axis(d, axis=2, begin=1, end=None), S.slice_axis(d, axis=-1, begin=-3, end=-1),
            S.slice(d, begin=(None, 1), end=(None, 5), step=(None, 2)),
            S.slice(d, begin=(0, 5, 3), end=(1, None, 0), step=(1, -2, -1)),
            S.Concat(d, S.Pooling(d, kernel=(1, 1), pool_type="max"), dim=1),
            S.concat(d, d * 2, dim=-1)]


def _math(S, d):
    w = S.Variable("scale_weight", shape=(1, 6, 1, 1))
    clipped = S.clip(d, a_min=0.1, a_max=0.8)
    return [S.log(clipped), S.exp(d), S.sqrt(clipped), S.abs(d), S.negative(d), S.square(d),
            d + 1.5, d - 0.5, 2.0 - d, d * 3.0, d / 4.0, 1.0 / clipped, S.broadcast_add(d, w), S.broadcast_sub(d, w),
            S.broadcast_mul(d, w), S.broadcast_div(d, w), S.broadcast_maximum(d, w), S.elemwise_add(d, clipped),
            S.elemwise_sub(d, clipped), S.elemwise_mul(d, clipped), S.elemwise_div(d, clipped), S.add_n(d, clipped, d),
            S.Activation(d, act_type="sigmoid"), S.Activation(d, act_type="tanh"),
            S.Activation(d, act_type="softrelu"), S.Activation(d, act_type="softsign"),
            S.Activation(d, act_type="relu"), S.clip(d, a_min=0, a_max=6), S.softmax(d, axis=1, temperature=2.0),
            S.log_softmax(d), S.SoftmaxActivation(d, mode="channel"), S.SoftmaxActivation(d),
            S.Dropout(d, p=0.3), S.identity(d), S.BlockGrad(d)]


def _dense(S, d):  # d: (1, 6, 4, 5)
    flat = S.FullyConnected(d, num_hidden=7, name="fc_flat")
    last = S.FullyConnected(d, num_hidden=3, flatten=False, name="fc_last")
    nobias = S.FullyConnected(d, num_hidden=4, no_bias=True, name="fc_nobias")
    bn = S.BatchNorm(d, fix_gamma=True, eps=1e-3, name="bn_fixed")
    bn2 = S.BatchNorm(d, fix_gamma=False, use_global_stats=True, eps=2e-5, name="bn_free")
    bn3 = S.BatchNorm(d, axis=-1, fix_gamma=False, name="bn_last")
    out = S.SoftmaxOutput(flat, S.Variable("softmax_label"), name="softmax")
    multi = S.SoftmaxOutput(d, S.Variable("multi_label"), multi_output=True, name="multi")
    whole = S.SoftmaxOutput(d, S.Variable("whole_label"), name="whole")
    kept = S.SoftmaxOutput(d, S.Variable("kept_label"), preserve_shape=True, name="kept")
    return [out, multi, whole, kept, last, nobias, bn, bn2, bn3]


def _resample(S, d, e):  # d: (1, 6, 4, 5), e: (1, 6, 9, 11)
    w = S.Variable("up_weight")
    return [S.Crop(e, d, num_args=2, center_crop=True), S.Crop(e, num_args=1, h_w=(3, 4), offset=(2, 5)),
            S.Crop(e, d, num_args=2, offset=(1, 2)), S.UpSampling(d, scale=2, sample_type="nearest", num_args=1),
            S.UpSampling(d, scale=3, sample_type="nearest", num_args=1),
            S.UpSampling(d, w, scale=2, sample_type="bilinear", num_filter=6, num_args=2)]


OPS = {"conv": (_conv, {"data": (1, 4, 9, 9)}), "pool": (_pool, {"data": (1, 3, 10, 11)}),
       "shape": (_shape, {"data": (1, 6, 4, 5)}), "math": (_math, {"data": (1, 6, 4, 5)}),
       "dense": (_dense, {"data": (1, 6, 4, 5)}), "resample": (_resample, {"data": (1, 6, 4, 5), "big": (1, 6, 9, 11)})}


def symbol_case(folder: pathlib.Path, build, shapes: dict, seed: int) -> None:
    S = mx.sym
    data = {name: S.Variable(name) for name in shapes}
    sym = S.Group(build(S, *data.values()))
    args, _, aux = sym.infer_shape(**shapes)
    rng = np.random.RandomState(seed)
    arg_names, aux_names = sym.list_arguments(), sym.list_auxiliary_states()
    values = {}
    for name, shape in zip(arg_names + aux_names, args + aux):
        if name.endswith("label"):
            values[name] = np.zeros(shape, np.float32)
        elif name.endswith("var") or name.endswith("gamma"):
            values[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            values[name] = rng.uniform(-1, 1, shape).astype(np.float32)
    exe = sym.bind(mx.cpu(), {n: mx.nd.array(values[n]) for n in arg_names}, grad_req="null",
                   aux_states={n: mx.nd.array(values[n]) for n in aux_names})
    outputs = [o.asnumpy() for o in exe.forward(is_train=False)]
    folder.mkdir(parents=True, exist_ok=True)
    sym.save(str(folder / "model-symbol.json"))
    learned = {f"arg:{n}": mx.nd.array(values[n]) for n in arg_names if n not in shapes and not n.endswith("label")}
    learned.update({f"aux:{n}": mx.nd.array(values[n]) for n in aux_names})
    mx.nd.save(str(folder / "model-0000.params"), learned)
    order = [n for n in arg_names if n in shapes]  # the model's inputs in the symbol's argument order
    _write(folder, [values[n] for n in order], outputs, [list(shapes[n][1:]) for n in order])


def formats_case(folder: pathlib.Path) -> None:
    """NDArray files as mxnet writes them: many dtypes (V2), numpy-shape semantics (V3), an unnamed list."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(7)
    arrays = {f"arg:{t}": mx.nd.array(rng.uniform(-100, 100, (2, 3)).astype(t), dtype=t)
              for t in ("float32", "float64", "float16", "uint8", "int8", "int32", "int64")}
    arrays["aux:vector"] = mx.nd.array(np.arange(5, dtype=np.float32))
    mx.nd.save(str(folder / "dtypes.params"), arrays)
    np.savez(folder / "dtypes.npz", **{k: v.asnumpy() for k, v in arrays.items()})
    with mx.util.np_shape(True):
        v3 = {"arg:scalar": mx.nd.array(np.float32(2.5).reshape(())), "arg:matrix": mx.nd.array(np.eye(3))}
        mx.nd.save(str(folder / "v3.params"), v3)
        np.savez(folder / "v3.npz", **{k: v.asnumpy() for k, v in v3.items()})
    mx.nd.save(str(folder / "unnamed.params"), [mx.nd.ones((2,))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    parser.add_argument("--force", action="store_true", help="write the cases even when the stamp is current")
    args = parser.parse_args()
    stamp = args.out / "done.json"
    digest = hashlib.sha256(pathlib.Path(__file__).read_bytes()).hexdigest()
    if not args.force and stamp.exists() and json.loads(stamp.read_text()).get("script") == digest:
        print(f"MXNet reference cases in {args.out} are current")
        return
    shutil.rmtree(args.out, ignore_errors=True)
    mx.random.seed(0)
    for i, (name, size) in enumerate(ZOO.items()):
        gluon_case(args.out / name, vision.get_model(name), size, seed=10 + i)
    gluon_case(args.out / "resnext_like", resnext_like(), 224, seed=30)
    for i, (name, (build, shapes)) in enumerate(OPS.items()):
        symbol_case(args.out / f"ops_{name}", build, shapes, seed=40 + i)
    formats_case(args.out / "formats")
    stamp.write_text(json.dumps({"script": digest, "mxnet": mx.__version__}))
    print(f"MXNet reference cases written to {args.out}")


if __name__ == "__main__":
    main()
