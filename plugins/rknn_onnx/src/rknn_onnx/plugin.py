"""Registers the ONNX frontend (``load_onnx``) with the toolkit."""

from rknn_core.hookspecs import hookimpl
from rknn_core.records import Frontend

RKNN_PLUGIN_API = (1, 1)  # the rknn-core plugin API versions this plugin works with


def _load(registry=None, **kwargs):
    from rknn_onnx.importer import load_onnx  # onnx is imported only when a model is loaded

    return load_onnx(registry=registry, **kwargs)


@hookimpl
def rknn_frontends():
    return [Frontend("onnx", "load_onnx", _load, doc="ONNX .onnx models of every opset (1 to 8 upgraded with onnx's version converter).")]
