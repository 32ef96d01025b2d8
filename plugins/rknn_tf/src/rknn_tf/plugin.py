"""Registers the TensorFlow frontend (``load_tensorflow``) with the toolkit."""

from rknn_core.hookspecs import hookimpl
from rknn_core.records import Frontend


def _load(**kwargs):
    from rknn_tf.importer import load_tensorflow  # protobuf and the schema load only when used

    return load_tensorflow(**kwargs)


@hookimpl
def rknn_frontends():
    return [Frontend("tf", "load_tensorflow", _load,
                     doc="Frozen TensorFlow GraphDef .pb files (TF1 and frozen TF2 graphs), NHWC in and out.")]
