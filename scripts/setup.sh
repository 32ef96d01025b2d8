#!/usr/bin/env bash
# One-command set-up: creates .venv/ and installs the core, every plugin and the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -r requirements-dev.txt
python -m pip install --quiet --no-deps --no-build-isolation \
    -e rknn_core -e plugins/rknn_onnx -e plugins/targets -e plugins/examples/rknn_op_example
python -m pip check
echo "set-up done: activate with '. .venv/bin/activate'"
