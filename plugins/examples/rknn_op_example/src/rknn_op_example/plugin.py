"""The plugin module the ``rknn`` entry point names: the op (``rknn_ops``) and the converters that import
it from TFLite and TensorFlow models (``rknn_converters``).

Keep this module cheap to import: the toolkit imports every plugin when it builds its registry.
"""

from __future__ import annotations

from rknn_core.hookspecs import hookimpl
from rknn_core.records import Converter, OpDef

RKNN_PLUGIN_API = (1, 1)  # the rknn-core plugin API versions this plugin works with


@hookimpl
def rknn_ops():
    from rknn_op_example import mish

    return [OpDef("Mish", mish.infer, mish.kernel, mish.cost, min_inputs=1, max_inputs=1,
                  quant_kernel=mish.quant_kernel, doc="Mish activation, x * tanh(softplus(x)) (ONNX opset 18).")]


@hookimpl
def rknn_converters():
    from rknn_op_example import converters

    return [Converter("tflite", "custom:Mish", converters.from_tflite, doc="TFLite custom op Mish"),
            Converter("tensorflow", "Mish", converters.from_tensorflow, doc="TensorFlow op Mish")]
