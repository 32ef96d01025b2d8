"""PyTorch TorchScript importer plugin for the rknn toolkit (``load_pytorch``)."""

__version__ = "0.1.0"
