"""TensorFlow Lite frontend for the rknn toolkit (reads .tflite flatbuffers without tensorflow)."""

__version__ = "0.1.0"
