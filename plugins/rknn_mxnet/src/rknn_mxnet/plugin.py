"""Registers the MXNet frontend (``load_mxnet``) and its op converters with the toolkit."""

from rknn_core.hookspecs import hookimpl
from rknn_core.records import Converter, Frontend

RKNN_PLUGIN_API = (1, 1)  # the rknn-core plugin API versions this plugin works with


def _load(registry=None, **kwargs):
    from rknn_mxnet.importer import load_mxnet  # numpy-only, but imported only when used

    return load_mxnet(registry=registry, **kwargs)


@hookimpl
def rknn_converters():
    from rknn_mxnet import ops_math, ops_nn, ops_tensor

    tables = (ops_nn.CONVERTERS, ops_math.CONVERTERS, ops_tensor.CONVERTERS)
    return [Converter("mxnet", op, convert, doc=f"MXNet {op}") for table in tables for op, convert in table.items()]


@hookimpl
def rknn_frontends():
    return [Frontend("mxnet", "load_mxnet", _load,
                     doc="MXNet symbol .json + .params (Gluon export, Module checkpoints), NCHW in and out; no mxnet "
                         "needed.")]
