"""``from rknn.api import RKNN`` works as with the vendor toolkit."""

from rknn_core.api import RKNN

__all__ = ["RKNN"]
