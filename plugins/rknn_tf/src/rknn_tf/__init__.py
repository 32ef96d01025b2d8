"""TensorFlow frozen-graph (.pb) frontend for the rknn toolkit."""

__version__ = "0.1.0"
