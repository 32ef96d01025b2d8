"""Typed reads of MXNet attribute strings: ``"(3, 3)"``, ``"[1,2]"``, ``"3"``, ``"True"``, ``"None"``, ``"1e-05"``.

Every reader takes the node's attribute dict; a value that does not parse raises ``RknnError`` naming the
attribute and the text (the importer adds the node, the op and the plugin version).
"""

from __future__ import annotations

import math
import re

from rknn_core.errors import RknnError

_MISSING = object()
_TRUE, _FALSE = ("true", "1"), ("false", "0")


def _text(attrs: dict[str, str], key: str, default):
    value = attrs.get(key)
    if value is None or value.strip() in ("", "None"):
        if default is _MISSING:
            raise RknnError(f"needs the attribute '{key}'")
        return default
    return value.strip()


def _fail(key: str, text: str, expected: str) -> RknnError:
    return RknnError(f"attribute {key}={text!r} is not {expected}")


def _number(key: str, text: str, kind, shown: str | None = None):
    """``kind(text)``; an integer may be written as a whole float (``"2.0"``) or a Python 2 long (``"2L"``);
    errors show ``shown`` (the whole attribute) when given."""
    shown = text if shown is None else shown
    if kind is int and re.fullmatch(r"[+-]?\d+L?", text):
        return int(text.rstrip("L"))
    try:
        value = float(text)
    except ValueError:
        raise _fail(key, shown, "a number") from None
    if not math.isfinite(value):
        raise _fail(key, shown, "a finite number")
    if kind is int:
        if not value.is_integer():
            raise _fail(key, shown, "an integer")
        return int(value)
    return value


def opt_ints(attrs: dict[str, str], key: str, default=_MISSING) -> tuple[int | None, ...]:
    """A tuple of integers, ``None`` where the text says ``None`` (``"(None, 2)"``); one number is a 1-tuple."""
    text = _text(attrs, key, default)
    if not isinstance(text, str):
        return text
    body = text.strip()
    if body[:1] in "([" and body[-1:] in ")]":
        body = body[1:-1]
    parts = [p.strip() for p in body.split(",")]
    if parts and parts[-1] == "":
        parts.pop()  # "(3,)"
    if any(p == "" for p in parts):
        raise _fail(key, text, "a tuple of integers")
    return tuple(None if p == "None" else _number(key, p, int, text) for p in parts)


def ints(attrs: dict[str, str], key: str, default=_MISSING) -> tuple[int, ...]:
    """A tuple of integers: ``"(3, 3)"``, ``"[3]"``, ``"3"``; ``"()"`` is empty."""
    values = opt_ints(attrs, key, default)
    if any(v is None for v in values):
        raise _fail(key, attrs[key], "a tuple of integers")
    return values


def integer(attrs: dict[str, str], key: str, default=_MISSING) -> int:
    text = _text(attrs, key, default)
    return _number(key, text, int) if isinstance(text, str) else text


def opt_integer(attrs: dict[str, str], key: str) -> int | None:
    """An integer, or ``None`` when absent or ``"None"``."""
    return integer(attrs, key, None)


def number(attrs: dict[str, str], key: str, default=_MISSING) -> float:
    text = _text(attrs, key, default)
    return _number(key, text, float) if isinstance(text, str) else text


def boolean(attrs: dict[str, str], key: str, default: bool) -> bool:
    text = _text(attrs, key, default)
    if isinstance(text, bool):
        return text
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise _fail(key, text, "a boolean (True/False/1/0)")


def choice(attrs: dict[str, str], key: str, options: tuple[str, ...], default: str) -> str:
    """One of ``options`` (compared without case; MXNet writes e.g. ``"max"``, ``"NCHW"``)."""
    text = _text(attrs, key, default)
    for option in options:
        if text.lower() == option.lower():
            return option
    raise _fail(key, text, "one of " + ", ".join(options))
