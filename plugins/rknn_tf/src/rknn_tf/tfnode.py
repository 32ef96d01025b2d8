"""A TF node as the converters see it: name, op, data inputs (tensor keys) and plain attributes."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.define
class TfNode:
    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any]

    def attr(self, key: str, default: Any = None) -> Any:
        value = self.attrs.get(key)
        return default if value is None else value
