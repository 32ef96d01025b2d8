"""Darknet .cfg files: ``[section]`` headers with ``key=value`` options, read as darknet reads them.

Whitespace anywhere on a line is ignored, ``#`` and ``;`` start a comment line, the first section is
``[net]`` (or ``[network]``) and every later section is one layer, numbered from 0 as darknet's
``layers=`` and ``from=`` indices count. Every section and option keeps its line number so that
errors can point into the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import attrs

from rknn_core.errors import RknnError

# darknet's short names for section types
ALIASES = {"network": "net", "conv": "convolutional", "conn": "connected", "max": "maxpool",
           "avg": "avgpool", "soft": "softmax"}
_REQUIRED: Any = object()


@attrs.define
class Section:
    """One ``[type]`` section: its layer index (-1 for ``[net]``), where it starts and its options."""

    type: str
    index: int
    line: int
    file: str
    options: dict[str, tuple[str, int]] = attrs.field(factory=dict)  # key -> (value, line)

    def where(self) -> str:
        """``layer 3 [maxpool] (line 27 of 'yolov3-tiny.cfg')``."""
        name = "section" if self.index < 0 else f"layer {self.index}"
        return f"{name} [{self.type}] (line {self.line} of '{self.file}')"

    def error(self, message: str, key: str | None = None) -> RknnError:
        """An error naming this section, and the option's own line when ``key`` is given."""
        at = f", option '{key}' on line {self.options[key][1]}" if key in self.options else ""
        return RknnError(f"{self.where()}{at}: {message}")

    def has(self, key: str) -> bool:
        return key in self.options

    def _get(self, key: str, default: Any, parse: Callable[[str], Any], kind: str) -> Any:
        if key not in self.options:
            if default is _REQUIRED:
                raise self.error(f"needs the option '{key}'")
            return default
        text = self.options[key][0]
        try:
            return parse(text)
        except ValueError:
            raise self.error(f"'{key}={text}' is not {kind}", key) from None

    def int(self, key: str, default: Any = _REQUIRED) -> int:
        return self._get(key, default, int, "an integer")

    def float(self, key: str, default: Any = _REQUIRED) -> float:
        return self._get(key, default, float, "a number")

    def str(self, key: str, default: Any = _REQUIRED) -> str:
        return self._get(key, default, str, "text")

    def ints(self, key: str, default: Any = _REQUIRED) -> list[int]:
        return self._get(key, default, lambda t: [int(v) for v in t.split(",") if v], "a list of integers")

    def floats(self, key: str, default: Any = _REQUIRED) -> list[float]:
        return self._get(key, default, lambda t: [float(v) for v in t.split(",") if v], "a list of numbers")

    def refuse(self, key: str, allowed: Any) -> None:
        """Refuse an option the importer does not implement unless it has its neutral value ``allowed``."""
        if key in self.options and self.options[key][0] != str(allowed):
            raise self.error(f"'{key}={self.options[key][0]}' is not supported (only {key}={allowed})", key)


def parse_cfg(text: str, file: str) -> tuple[Section, list[Section]]:
    """The ``[net]`` section and the layer sections of a .cfg text; ``file`` names it in errors."""
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = "".join(raw.split())
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if not line.endswith("]") or len(line) < 3:
                raise RknnError(f"line {number} of '{file}': '{raw.strip()}' is not a [section] header")
            kind = line[1:-1].lower()
            kind = ALIASES.get(kind, kind)
            index = -1 if not sections else len(sections) - 1
            sections.append(Section(kind, index, number, file))
            continue
        if not sections:
            raise RknnError(f"line {number} of '{file}': option '{raw.strip()}' comes before the first [section]")
        key, sep, value = line.partition("=")
        if not sep or not key or not value:
            raise RknnError(f"line {number} of '{file}' in {sections[-1].where()}: '{raw.strip()}' is not "
                            f"a key=value option")
        sections[-1].options[key] = (value, number)
    if not sections:
        raise RknnError(f"'{file}' holds no [net] section and no layers: is it a darknet .cfg file?")
    if sections[0].type != "net":
        raise RknnError(f"'{file}' must start with a [net] section, not {sections[0].where()}")
    if len(sections) == 1:
        raise RknnError(f"'{file}' has a [net] section but no layers")
    return sections[0], sections[1:]


def read_cfg(path: str) -> tuple[Section, list[Section]]:
    """Parse a .cfg file; a missing or unreadable file is an error naming it."""
    if not os.path.isfile(path):
        raise RknnError(f"darknet model '{path}' does not exist")
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError as exc:
        raise RknnError(f"darknet model '{path}' cannot be read: {exc}") from None
    return parse_cfg(text, os.path.basename(path))
