"""Rockchip RK1806, RK1808 and RK3399Pro (one compatibility family, ``rk1808``) for the rknn toolkit."""

__version__ = "0.1.0"
