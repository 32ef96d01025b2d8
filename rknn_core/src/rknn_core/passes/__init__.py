"""Built-in graph passes; each module defines one ``PASS``."""

from __future__ import annotations

import importlib

from rknn_core.records import PassSpec

MODULES = ("fold_constants", "remove_identity", "eliminate_transposes", "fold_flatten_transpose", "fold_pad",
           "fold_batchnorm", "fold_channel_affine", "fuse_hardswish", "fold_residual_scale", "fuse_activation",
           "merge_horizontal", "fuse_epilogue", "fold_preprocess")


def builtin_passes() -> list[PassSpec]:
    return [importlib.import_module(f"rknn_core.passes.{m}").PASS for m in MODULES]
