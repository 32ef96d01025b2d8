"""Registers the TensorFlow frontend (``load_tensorflow``) and its op converters with the toolkit."""

from rknn_core.hookspecs import hookimpl
from rknn_core.records import Converter, Frontend

RKNN_PLUGIN_API = (1, 1)  # the rknn-core plugin API versions this plugin works with


def _load(registry=None, **kwargs):
    from rknn_tf.importer import load_tensorflow  # protobuf and the schema load only when used

    return load_tensorflow(registry=registry, **kwargs)


@hookimpl
def rknn_converters():
    from rknn_tf import ops_math, ops_nn, ops_tensor

    return [Converter("tensorflow", op, convert, doc=f"TensorFlow {op}")
            for op, convert in {**ops_math.CONVERTERS, **ops_nn.CONVERTERS, **ops_tensor.CONVERTERS}.items()]


@hookimpl
def rknn_frontends():
    return [Frontend("tf", "load_tensorflow", _load,
                     doc="Frozen TensorFlow GraphDef .pb files (TF1 and frozen TF2 graphs), NHWC in and out.")]
