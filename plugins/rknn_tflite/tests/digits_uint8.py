"""A real trained uint8 classifier: a small MobileNet-style Keras CNN trained for a few seconds on
scikit-learn's digits (8x8 pictures upscaled to 32x32 RGB), quantized by TFLite's converter with uint8
input and output (the model takes pictures normalized to [-1, 1], so its input quantization is about
zero point 127.5, scale 1/127.5). Generated once with tensorflow and cached in
``.cache/models/tflite_generated``: ``digits_uint8.tflite``, ``digits_test.npz`` (20 held-out pictures,
uint8 HWC, and their labels) and ``digits_calib/`` (PNG pictures for a vendor dataset file)."""

from __future__ import annotations

import os
import pathlib

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[3]
FOLDER = ROOT / ".cache" / "models" / "tflite_generated"
MODEL, TEST, CALIB = FOLDER / "digits_uint8.tflite", FOLDER / "digits_test.npz", FOLDER / "digits_calib"
HELD_OUT = 20


def _pictures() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    big = np.kron(digits.images, np.ones((4, 4)))  # 8x8 -> 32x32, values 0..16
    pictures = np.repeat((big * (255 / 16)).round().astype(np.uint8)[..., None], 3, axis=-1)
    return pictures, digits.target


def generate() -> None:
    """Train, convert and write the cached files (needs tensorflow)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import tensorflow as tf

    pictures, labels = _pictures()
    x = pictures.astype(np.float32) / 127.5 - 1
    train = slice(HELD_OUT, None)
    tf.keras.utils.set_random_seed(0)
    layers = tf.keras.layers
    model = tf.keras.Sequential([
        tf.keras.Input((32, 32, 3)),
        layers.Conv2D(16, 3, strides=2, padding="same", activation="relu6"),
        layers.DepthwiseConv2D(3, padding="same", activation="relu6"),
        layers.Conv2D(32, 1, activation="relu6"),
        layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6"),
        layers.Conv2D(32, 1, activation="relu6"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(10),
    ])
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[train], labels[train], epochs=8, batch_size=64, verbose=0)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[i:i + 1]] for i in range(HELD_OUT, HELD_OUT + 100))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    FOLDER.mkdir(parents=True, exist_ok=True)
    CALIB.mkdir(exist_ok=True)
    for i in range(HELD_OUT, HELD_OUT + 8):
        Image.fromarray(pictures[i]).save(CALIB / f"calib{i}.png")
    np.savez(TEST, pictures=pictures[:HELD_OUT], labels=labels[:HELD_OUT])
    MODEL.write_bytes(converter.convert())  # last: its presence means the set is complete


if __name__ == "__main__":
    generate()
    print(MODEL, MODEL.stat().st_size)
