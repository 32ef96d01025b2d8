"""MXNet (symbol .json + .params) frontend for the rknn toolkit."""

__version__ = "0.1.0"
