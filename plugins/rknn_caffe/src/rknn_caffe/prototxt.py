"""Read a Caffe network definition (.prototxt, protobuf text format) and where each layer is written."""

from __future__ import annotations

import logging
import os
import re

import attrs
from google.protobuf import text_format

from rknn_caffe.proto import caffe_pb2 as pb
from rknn_core.errors import RknnError

log = logging.getLogger("rknn")
LAYER_FIELDS = ("layer", "layers")  # NetParameter's layer lists: current and legacy (V1)


@attrs.define
class LayerSource:
    """Where one layer block stands in the .prototxt: its first line (1-based) and its text."""

    line: int
    text: str


def read_prototxt(path: str) -> tuple[pb.NetParameter, dict[str, list[LayerSource]]]:
    """The parsed NetParameter and, for ``layer`` and ``layers``, the source of each block in order."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise RknnError(f"Caffe model file '{path}' does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise RknnError(f"'{path}' is not a readable text .prototxt: {type(exc).__name__}: {exc}") from None
    net = pb.NetParameter()
    try:
        text_format.Parse(text, net)
    except text_format.ParseError as exc:
        if "has no field named" not in str(exc):
            raise RknnError(f"'{path}' is not a valid Caffe .prototxt: line {exc}") from None
        # a field of another Caffe fork: read the rest, the layer's converter sees its text (LayerSource)
        log.warning("'%s' line %s; that field is ignored", path, exc)
        net = pb.NetParameter()
        text_format.Parse(text, net, allow_unknown_field=True)
    sources = layer_blocks(text)
    for field in LAYER_FIELDS:
        if len(sources[field]) != len(getattr(net, field)):  # a block written in a form the scanner does not know
            sources[field] = [LayerSource(0, "")] * len(getattr(net, field))
    return net, sources


TOKEN = re.compile(r"#[^\n]*|\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|[A-Za-z_]\w*|\S")


def layer_blocks(text: str) -> dict[str, list[LayerSource]]:
    """The top-level ``layer { ... }`` and ``layers { ... }`` blocks of a text NetParameter, in order."""
    found: dict[str, list[LayerSource]] = {field: [] for field in LAYER_FIELDS}
    depth, line, counted = 0, 1, 0
    previous = None  # the last token at depth 0 (comments and ':' skipped)
    opened = None  # (field, start offset, line) of the block being read
    for match in TOKEN.finditer(text):
        token = match.group()
        if token.startswith("#") or token == ":":
            continue
        line += text.count("\n", counted, match.start())
        counted = match.start()
        if token == "{":
            if depth == 0 and previous is not None and previous.group() in LAYER_FIELDS:
                opened = (previous.group(), previous.start(), line - text.count("\n", previous.start(), match.start()))
            depth += 1
        elif token == "}":
            depth -= 1
            if depth == 0 and opened:
                found[opened[0]].append(LayerSource(opened[2], text[opened[1]:match.end()]))
                opened = None
        previous = match if depth == 0 else None
    return found
