"""A small protobuf text-format writer for Caffe nets, independent of rknn_caffe's schema: the test nets'
.prototxt text comes from here, so a field our importer misnames shows up as a disagreement with OpenCV.

A message is a list of (field, value) pairs (a dict is taken in order); a list value repeats the field; an
``Enum`` value is written bare (``pool: MAX``); strings are quoted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class Enum(str):
    """An enum value, written without quotes."""


@dataclass(frozen=True)
class Style:
    """How a net is laid out: ``indent`` per nesting level, or every layer on one line when ``compact``."""

    indent: str = "  "
    compact: bool = False


def _scalar(value) -> str:
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return repr(value)
    return str(int(value))


def _pairs(message) -> list[tuple[str, object]]:
    items = message.items() if isinstance(message, Mapping) else message
    out = []
    for field, value in items:
        if isinstance(value, (list, tuple)):
            out.extend((field, v) for v in value)
        elif value is not None:
            out.append((field, value))
    return out


def message_text(message, style: Style, depth: int = 0) -> str:
    """The fields of ``message`` (without braces) in ``style``, nested messages included."""
    parts = []
    for field, value in _pairs(message):
        if isinstance(value, Mapping):
            inner = message_text(value, style, depth + 1)
            if style.compact:
                parts.append(f"{field} {{ {inner} }}")
            else:
                pad = style.indent * depth
                parts.append(f"{pad}{field} {{\n{inner}\n{pad}}}")
        else:
            parts.append(f"{field}: {_scalar(value)}" if style.compact
                         else f"{style.indent * depth}{field}: {_scalar(value)}")
    return (" " if style.compact else "\n").join(parts)


def net_text(header: Sequence[tuple[str, object]], layers: Sequence[Mapping], style: Style) -> str:
    """A NetParameter: the ``header`` fields (name, input, ...) then one ``layer { }`` per entry."""
    lines = [message_text(header, Style(style.indent))]
    lines += [message_text([("layer", layer)], style) for layer in layers]
    return "\n".join(lines) + "\n"


def layer(name: str, kind: str, bottom: str | Sequence[str] = (), top: str | Sequence[str] | None = None,
          **params) -> dict:
    """A LayerParameter; ``top`` defaults to the layer's name, params are its ``*_param`` messages."""
    return {"name": name, "type": kind, "bottom": [bottom] if isinstance(bottom, str) else list(bottom),
            "top": [name] if top is None else [top] if isinstance(top, str) else list(top), **params}
