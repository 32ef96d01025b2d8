"""Mish from other frameworks: a TFLite custom op (custom_code ``Mish``) and a TensorFlow op type ``Mish``.

Each converter turns one framework op into the IR op ``Mish`` (see ``mish.py``); docs/plugins.md
describes the ``ctx`` and ``op`` each frontend passes.
"""

from __future__ import annotations

from rknn_core.errors import RknnError


def from_tflite(ctx, op) -> None:
    """TFLite ``CUSTOM`` op ``Mish``: one float input, one output of the same shape, no options."""
    if len(op.inputs) != 1 or len(op.outputs) != 1:
        raise RknnError(f"custom op Mish takes one input and one output, got {len(op.inputs)} and {len(op.outputs)}")
    ctx.emit("Mish", [ctx.name(0)], [ctx.output(0)])


def from_tensorflow(ctx, node) -> None:
    """TensorFlow ``Mish`` node: elementwise, so it stays in whichever layout its input is held."""
    if len(node.inputs) != 1:
        raise RknnError(f"Mish takes one input, got {len(node.inputs)}")
    x = node.inputs[0]
    layout = ctx.layout(x)
    ctx.result(node.name, "Mish", [ctx.get(x, layout)], {}, layout)
