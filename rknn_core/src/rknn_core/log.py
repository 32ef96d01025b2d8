"""Logging in the vendor style: ``E message`` for errors, ``W``/``I``/``D`` for the rest."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator

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


class _Collector(logging.Handler):
    """Hands each record at its level and up to ``keep``."""

    def __init__(self, level: int, keep: Callable[[logging.LogRecord], None]) -> None:
        super().__init__(level)
        self._keep = keep

    def emit(self, record: logging.LogRecord) -> None:
        self._keep(record)


@contextlib.contextmanager
def _collecting(level: int, keep: Callable[[logging.LogRecord], None]) -> Iterator[None]:
    """Gives ``keep`` the toolkit's records at ``level`` and up while the block runs (the ``rknn`` logger
    does not propagate, so pytest's caplog cannot see them); lowers the logger's level meanwhile if needed."""
    logger, handler = logging.getLogger(LOGGER_NAME), _Collector(level, keep)
    saved, lower = logger.level, level < logger.getEffectiveLevel()
    if lower:
        logger.setLevel(level)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        if lower:
            logger.setLevel(saved)


@contextlib.contextmanager
def collect_records(level: int = logging.DEBUG) -> Iterator[list[logging.LogRecord]]:
    """The records the toolkit logs at ``level`` and up inside the block, in order (the list grows as they come)."""
    records: list[logging.LogRecord] = []
    with _collecting(level, records.append):
        yield records


@contextlib.contextmanager
def collect_errors() -> Iterator[list[str]]:
    """The messages of the ``E`` lines the toolkit logs inside the block, in order (the list grows as they come)."""
    lines: list[str] = []
    with _collecting(logging.ERROR, lambda record: lines.append(record.getMessage())):
        yield lines
