"""Builds the compiled kernels; everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("rknn_core._native", ["src/rknn_core/_native.c"],
                             extra_compile_args=["-O3"])])
