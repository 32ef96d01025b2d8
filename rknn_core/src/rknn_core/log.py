"""Logging in the vendor style: ``E message`` for errors, ``W``/``I``/``D`` for the rest."""

from __future__ import annotations

import logging
import sys

LOGGER_NAME = "rknn"
_LETTERS = {logging.ERROR: "E", logging.WARNING: "W", logging.INFO: "I", logging.DEBUG: "D"}


class _LetterFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        letter = _LETTERS.get(record.levelno, "E" if record.levelno > logging.ERROR else "D")
        return f"{letter} {record.getMessage()}"


def configure(verbose: bool = False, verbose_file: str | None = None) -> logging.Logger:
    """Send the toolkit's log to stderr (``W`` and up, all with ``verbose``) and to ``verbose_file``."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if getattr(handler, "_rknn", False):
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose else logging.WARNING)
    handlers: list[logging.Handler] = [console]
    if verbose and verbose_file:
        handlers.append(logging.FileHandler(verbose_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(_LetterFormatter())
        handler._rknn = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    return logger
