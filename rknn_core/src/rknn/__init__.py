"""Vendor-compatible package name: ``from rknn.api import RKNN``."""
