"""rknn-server: the device agent and the PC side that reaches it (docs/devices.md)."""

__version__ = "0.1.0"
