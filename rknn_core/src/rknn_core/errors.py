"""The one exception type the pipeline raises for user-facing failures, and a helper for its messages."""

from __future__ import annotations

from collections.abc import Sequence


class RknnError(Exception):
    """A failure the user can act on; its message is shown as an ``E`` log line."""


def first_few(items: Sequence[str], shown: int = 8) -> str:
    """The first ``shown`` items joined by commas, then how many more there are: ``'a', 'b' and 3 more``."""
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more
