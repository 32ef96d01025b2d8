#!/usr/bin/env bash
# The test command: lint, then the whole suite (heavy cases excluded; run them with `nox -s heavy`).
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
ruff check .
python -m pytest -n 2 -m "not heavy" "$@"
