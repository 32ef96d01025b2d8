"""Write the counts of onnx's backend test suite as the toolkit runs it into docs/onnx-conformance.md.

    .venv/bin/python scripts/onnx_conformance.py          # rewrite the generated section
    .venv/bin/python scripts/onnx_conformance.py --check  # exit 1 when the file is out of date

The counts follow the rules of ``rknn_onnx.conformance`` (tests/test_onnx_backend.py runs them, and every
test counted as run must pass there); tests/test_onnx_conformance_doc.py checks the file is current.
"""

from __future__ import annotations

import pathlib
import sys
import warnings

import onnx

from rknn_onnx import conformance

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "onnx-conformance.md"


def survey() -> dict:
    """Per kind of onnx test: how many run and why the others are left out."""
    with warnings.catch_warnings():  # onnx's case generators overflow casts on purpose
        warnings.simplefilter("ignore", RuntimeWarning)
        return conformance.survey(conformance.core_ops())


def current_document(counts: dict) -> tuple[str, str]:
    """The document as it is and as ``counts`` say it should be."""
    text = DOC.read_text(encoding="utf-8")
    return text, conformance.replace_generated(text, conformance.render(counts, onnx.__version__))


def main(argv: list[str]) -> int:
    text, wanted = current_document(survey())
    if "--check" in argv:
        if text != wanted:
            print(f"{DOC} is out of date: run scripts/onnx_conformance.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(wanted, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
