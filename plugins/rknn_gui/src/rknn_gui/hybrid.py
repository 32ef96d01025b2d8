"""Keeping layers in float: the cfg that ``hybrid_quantization_step1`` wrote, with those layers in
``customized_quantize_layers`` (docs/quantization.md, Editing the cfg), written for the user."""

from __future__ import annotations

import re
from pathlib import Path

from rknn_gui.errors import GuiError

AS_WRITTEN = "customized_quantize_layers: {}"


def float_line(layers: list[str]) -> str:
    """The ``customized_quantize_layers`` line keeping ``layers`` in float."""
    for layer in layers:
        if not re.fullmatch(r"[A-Za-z0-9_./:-]+", layer):
            raise GuiError(f"layer name '{layer}' cannot be written into the cfg as it is")
    return "customized_quantize_layers: {" + ", ".join(f"'{layer}': float32" for layer in layers) + "}"


def keep_float(source: Path, target: Path, layers: list[str]) -> None:
    """Write ``target``: step 1's cfg ``source`` with ``layers`` kept in float."""
    text = source.read_text(encoding="utf-8")
    if AS_WRITTEN not in text:
        raise GuiError(f"'{source.name}' is not as hybrid_quantization_step1 wrote it (no '{AS_WRITTEN}' line)")
    target.write_text(text.replace(AS_WRITTEN, float_line(layers), 1), encoding="utf-8")


def keep_float_code(source: str, target: str, layers: list[str]) -> str:
    """The same edit as script code."""
    return (f"with open({source!r}, encoding='utf-8') as f:\n"
            f"    cfg = f.read()\n"
            f"with open({target!r}, 'w', encoding='utf-8') as f:\n"
            f"    f.write(cfg.replace({AS_WRITTEN!r}, {float_line(layers)!r}, 1))\n")
