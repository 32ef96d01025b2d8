"""Convert Keras application models to .tflite for the TFLite plugin's tests (run: python tflite_models.py).

Writes ``.cache/models/tflite_generated/{app}_float.tflite`` (float32) and ``{app}_int8.tflite``
(full-integer post-training quantization: int8 weights, activations, input and output, calibrated on
``{app}_calib.npy``, a few seeded pictures), plus ``{app}_input.npy`` (a float NHWC picture in [-1, 1]).
Generation needs tensorflow; the files are reused afterwards.
"""

from __future__ import annotations

import pathlib

import numpy as np
from tf_models import TFLITE_CACHE, keras_app, keras_image, tf

APPS = ("mobilenet", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "resnet50", "densenet121", "inception_v3")


def tflite_models(apps=APPS, folder: pathlib.Path = TFLITE_CACHE) -> dict[str, pathlib.Path]:
    """Paths of the generated models, ``{app}_float`` and ``{app}_int8``, generating missing ones."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for app in apps:
        float_path, int8_path = folder / f"{app}_float.tflite", folder / f"{app}_int8.tflite"
        paths[f"{app}_float"], paths[f"{app}_int8"] = float_path, int8_path
        if float_path.is_file() and int8_path.is_file():
            continue
        t = tf()
        model, size = keras_app(app)
        calib = np.concatenate([keras_image(size, seed=s) for s in range(8)])
        np.save(folder / f"{app}_calib.npy", calib)
        np.save(folder / f"{app}_input.npy", keras_image(size))
        converter = t.lite.TFLiteConverter.from_keras_model(model)
        float_path.write_bytes(converter.convert())
        converter = t.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [t.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda calib=calib: ([x[None]] for x in calib)
        converter.target_spec.supported_ops = [t.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = t.int8
        converter.inference_output_type = t.int8
        int8_path.write_bytes(converter.convert())
    return paths


if __name__ == "__main__":
    for name, path in tflite_models().items():
        print(name, path, path.stat().st_size)
