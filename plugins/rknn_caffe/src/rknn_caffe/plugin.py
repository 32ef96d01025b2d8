"""Registers the Caffe frontend (``load_caffe``), its layer converters and its own ops with the toolkit."""

from rknn_core.hookspecs import hookimpl
from rknn_core.records import Converter, Frontend

RKNN_PLUGIN_API = (1, 1)  # the rknn-core plugin API versions this plugin works with


def _load(registry=None, **kwargs):
    from rknn_caffe.importer import load_caffe  # protobuf and the schema load only when used

    return load_caffe(registry=registry, **kwargs)


@hookimpl
def rknn_converters():
    from rknn_caffe import layers_io, layers_nn, layers_ssd, layers_tensor, lstm

    tables = (layers_io.CONVERTERS, layers_nn.CONVERTERS, layers_tensor.CONVERTERS, layers_ssd.CONVERTERS,
              lstm.CONVERTERS)
    return [Converter("caffe", kind, convert, doc=f"Caffe {kind} layer") for table in tables
            for kind, convert in table.items()]


@hookimpl
def rknn_ops():
    from rknn_caffe import detection_output, lstm

    return [*detection_output.OPS, *lstm.OPS]


@hookimpl
def rknn_frontends():
    return [Frontend("caffe", "load_caffe", _load,
                     doc="Caffe .prototxt + .caffemodel (current and legacy V1 layers), NCHW in and out.")]
