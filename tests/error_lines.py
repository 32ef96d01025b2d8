"""The ``E`` lines that a test's RKNN calls printed to stderr (captured by pytest's ``capsys``)."""

from __future__ import annotations


def e_lines(capsys, *words: str) -> str:
    """The captured ``E`` lines, joined; there must be one, each word must be in them, and no traceback nor
    the facade's catch-all may be printed."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and "failed unexpectedly" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("E ")]
    assert lines, f"no E line in {err!r}"
    text = "\n".join(lines)
    for word in words:
        assert word in text, (word, text)
    return text


def last_error(capsys) -> str:
    """The last captured ``E`` line (see ``e_lines``)."""
    return e_lines(capsys).splitlines()[-1]


def expect_error(capsys, *words: str) -> str:
    """The captured ``E`` lines, lower-cased; each word must be in them (case-insensitive)."""
    text = e_lines(capsys).lower()
    for word in words:
        assert word.lower() in text, f"{word!r} not in {text!r}"
    return text
