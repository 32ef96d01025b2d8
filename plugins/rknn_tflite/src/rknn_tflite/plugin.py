"""Registers the TFLite frontend (``load_tflite``), its integer ops and its op converters with the toolkit."""

from rknn_core.hookspecs import hookimpl
from rknn_core.records import Converter, Frontend

RKNN_PLUGIN_API = (1, 1)  # the rknn-core plugin API versions this plugin works with


def _load(registry=None, **kwargs):
    from rknn_tflite.importer import load_tflite  # the schema package is imported only when a model is loaded

    return load_tflite(registry=registry, **kwargs)


@hookimpl
def rknn_ops():
    from rknn_tflite import integer_elementwise, integer_hard_swish, integer_mean, integer_pool, integer_products

    return (integer_elementwise.OPS + integer_hard_swish.OPS + integer_mean.OPS + integer_pool.OPS
            + integer_products.OPS)


@hookimpl
def rknn_converters():
    from rknn_tflite import ops_nn, ops_tensor

    return [Converter("tflite", op, convert, doc=f"TFLite builtin {op}")
            for op, convert in {**ops_nn.CONVERTERS, **ops_tensor.CONVERTERS}.items()]


@hookimpl
def rknn_frontends():
    return [Frontend("tflite", "load_tflite", _load,
                     doc="TensorFlow Lite .tflite models: float32, float16 weights, uint8/int8 quantized.")]
