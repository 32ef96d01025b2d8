"""Rockchip RV1109 and RV1126 (one compatibility family, ``rv1126``) for the rknn toolkit."""

__version__ = "0.1.0"
