"""The built-in op registry: every module here lists its ``OPS``."""

from __future__ import annotations

import importlib

from rknn_core.records import OpDef

MODULES = ("elementwise", "conv", "pool", "nn", "matmul", "tensor", "generate", "reduce", "resize", "quantize")


def builtin_ops() -> list[OpDef]:
    """Every op the core ships."""
    ops: list[OpDef] = []
    for module in MODULES:
        ops.extend(importlib.import_module(f"rknn_core.ops.{module}").OPS)
    return ops
