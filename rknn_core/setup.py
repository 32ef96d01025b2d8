"""Builds the compiled kernels; everything else is in pyproject.toml."""

from setuptools import Extension, setup

SOURCES = ["src/rknn_core/_native.c", "src/rknn_core/native/pool.c", "src/rknn_core/native/gemm.c"]

setup(ext_modules=[Extension("rknn_core._native", SOURCES, depends=["src/rknn_core/native/pool.h",
                                                                     "src/rknn_core/native/gemm.h"],
                             extra_compile_args=["-O3", "-std=gnu11"], extra_link_args=["-pthread"])])
