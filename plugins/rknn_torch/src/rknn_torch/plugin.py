"""Registers the PyTorch frontend (``load_pytorch``) and its aten op converters with the toolkit."""

from rknn_core.hookspecs import hookimpl
from rknn_core.records import Converter, Frontend

RKNN_PLUGIN_API = (1, 1)  # the rknn-core plugin API versions this plugin works with


def _load(registry=None, **kwargs):
    from rknn_torch.importer import load_pytorch  # torch loads only when a model is imported

    return load_pytorch(registry=registry, **kwargs)


@hookimpl
def rknn_converters():
    from rknn_torch import ops_math, ops_nn, ops_tensor

    return [Converter("pytorch", op, convert, doc=f"PyTorch {op}")
            for op, convert in {**ops_math.CONVERTERS, **ops_nn.CONVERTERS, **ops_tensor.CONVERTERS}.items()]


@hookimpl
def rknn_frontends():
    return [Frontend("torch", "load_pytorch", _load,
                     doc="TorchScript .pt files (traced or scripted), read from the TorchScript graph; NCHW in and out.")]
