"""MXNet's symbol JSON (``Symbol.save``, Gluon's ``export``): nodes, their inputs and their attributes.

The file is nnvm's graph JSON: ``nodes`` (topologically ordered; each with ``op`` — ``"null"`` for a
variable —, ``name``, ``inputs`` as ``[node, output, version]`` entries and the operator's parameters as
strings), ``arg_nodes`` and ``heads`` (the outputs). Parameters live under ``attrs`` (MXNet >= 0.9.5),
``attr`` or ``param`` (older files); keys of the form ``__x__`` are annotations (``__lr_mult__``,
``__shape__``) and are kept apart.
"""

from __future__ import annotations

import json
import os
from typing import Any

import attrs

from rknn_core.errors import RknnError


@attrs.frozen
class MxNode:
    """One node of a symbol: ``inputs`` are ``(node index, output index)`` pairs."""

    index: int
    op: str
    name: str
    attrs: dict[str, str]
    inputs: tuple[tuple[int, int], ...]
    annotations: dict[str, str] = attrs.field(factory=dict)

    @property
    def is_variable(self) -> bool:
        return self.op == "null"

    def where(self, path: str) -> str:
        return f"'{path}' node {self.index} '{self.name}' ({self.op})"


@attrs.frozen
class MxSymbol:
    nodes: tuple[MxNode, ...]
    heads: tuple[tuple[int, int], ...]
    version: int | None  # mxnet_version of the writer, e.g. 10901, when recorded


def read_symbol(path: str) -> MxSymbol:
    """The nodes and outputs of a symbol .json file; errors name the file and the faulty node."""
    path = os.fspath(path)
    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RknnError(f"'{name}' is not an MXNet symbol file (not JSON: {exc})") from None
    return parse_symbol(doc, name)


def parse_symbol(doc: Any, name: str = "<symbol>") -> MxSymbol:
    """``read_symbol`` on decoded JSON; ``name`` names the file in errors."""
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list) or "heads" not in doc:
        raise RknnError(f"'{name}' is not an MXNet symbol file (a JSON object with 'nodes' and 'heads')")
    nodes = tuple(_node(raw, i, name, len(doc["nodes"])) for i, raw in enumerate(doc["nodes"]))
    heads = tuple(_entry(e, len(nodes), f"'{name}' heads") for e in _list(doc["heads"], f"'{name}' heads"))
    if not heads:
        raise RknnError(f"'{name}' has no heads (outputs)")
    version = (doc.get("attrs") or {}).get("mxnet_version")
    version = int(version[1]) if isinstance(version, list) and len(version) == 2 else None
    return MxSymbol(nodes, heads, version)


def _node(raw: Any, index: int, name: str, count: int) -> MxNode:
    if not isinstance(raw, dict) or not isinstance(raw.get("op"), str) or not isinstance(raw.get("name"), str):
        raise RknnError(f"'{name}' node {index} is not an object with 'op' and 'name'")
    where = f"'{name}' node {index} '{raw['name']}' ({raw['op']})"
    merged: dict[str, str] = {}
    for key in ("param", "attr", "attrs"):
        table = raw.get(key) or {}
        if not isinstance(table, dict):
            raise RknnError(f"{where}: '{key}' is not an object")
        merged.update({str(k): str(v) for k, v in table.items()})
    params = {k: v for k, v in merged.items() if not (k.startswith("__") and k.endswith("__"))}
    notes = {k: v for k, v in merged.items() if k not in params}
    inputs = tuple(_entry(e, index, f"{where} input") for e in _list(raw.get("inputs", []), f"{where} inputs"))
    return MxNode(index, raw["op"], raw["name"], params, inputs, notes)


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise RknnError(f"{where} is not a list")
    return value


def _entry(entry: Any, limit: int, where: str) -> tuple[int, int]:
    """A ``[node, output(, version)]`` entry naming an earlier node."""
    if (not isinstance(entry, list) or len(entry) not in (2, 3)
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in entry)):
        raise RknnError(f"{where} {entry!r} is not a [node, output, version] entry")
    node, output = entry[0], entry[1]
    if not 0 <= node < limit or output < 0:
        raise RknnError(f"{where} {entry!r} names node {node}, which does not come before it")
    return node, output
