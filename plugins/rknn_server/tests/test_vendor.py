"""The vendor runtime binding (ctypes over rknn_api.h's public C API) against a stand-in library built
here from tests/standin/rknn_standin.c, directly and through an agent started with --vendor-lib."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rknn_core.errors import RknnError
from rknn_server.client import AgentConnection
from rknn_server.vendor import VendorModel, load_library

SOURCE = Path(__file__).parent / "standin" / "rknn_standin.c"


@pytest.fixture(scope="module")
def standin_lib(tmp_path_factory) -> str:
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler to build the stand-in runtime library")
    out = tmp_path_factory.mktemp("standin") / "librknn_runtime.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o", str(out), str(SOURCE)],
                   check=True, timeout=60)
    return str(out)


def _model(n: int, scale: float) -> bytes:
    return b"STANDIN1" + struct.pack("<If", n, scale)


def test_the_binding_runs_a_model_through_the_c_api(standin_lib):
    model = VendorModel(load_library(standin_lib), _model(5, 2.5))
    assert model.shapes() == {"inputs": [(1, 5)], "outputs": [(1, 5)]}
    assert model.inputs[0].name == b"input" and model.outputs[0].size == 20
    x = np.arange(5, dtype=np.float32).reshape(1, 5)
    np.testing.assert_array_equal(model.run([x])[0], x * 2.5)
    np.testing.assert_array_equal(model.run([np.full((1, 5), 4, np.uint8)])[0], np.full((1, 5), 10.0))
    assert model.run_time_us() == 15
    assert model.sdk_version() == ("1.3.2 (standin build)", "1.3.2 (standin driver)")
    with pytest.raises(RknnError, match="the model takes 1 inputs, 2 were given"):
        model.run([x, x])
    with pytest.raises(RknnError, match="rknn_inputs_set failed: RKNN_ERR_INPUT_INVALID"):
        model.run([np.zeros((1, 4), np.float32)])
    model.close()
    with pytest.raises(RknnError, match="rknn_init failed: RKNN_ERR_MODEL_INVALID"):
        VendorModel(load_library(standin_lib), b"RKNN\0\0\0\0 not ours")


def test_a_library_without_the_api_is_refused(tmp_path):
    with pytest.raises(RknnError, match="cannot load the vendor runtime library"):
        load_library(str(tmp_path / "missing.so"))
    libc = next((p for p in ("/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6") if Path(p).exists()), None)
    if libc:
        with pytest.raises(RknnError, match="is not an RKNN runtime library: it lacks rknn_init"):
            load_library(libc)


def test_the_agent_runs_vendor_models_with_its_library(standin_lib, start_agent):
    agent = start_agent("--vendor-lib", standin_lib, "--device-id", "board")
    connection = AgentConnection(socket.create_connection(("127.0.0.1", agent.port), timeout=10), "agent", timeout=10)
    assert connection.hello()["vendor_runtime"] is True and connection.device["chip"] is None
    handle = connection.request("load", kind="vendor", model=_model(3, -1.0))["handle"]
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    np.testing.assert_array_equal(connection.request("run", handle=handle, feeds=[x])["outputs"][0], -x)
    assert connection.request("perf", handle=handle)["perf"] == {"total_time": 13}
    assert connection.request("version", handle=handle)["drv_version"] == "1.3.2 (standin driver)"
    connection.close()

    plain = start_agent("--device-id", "plain")
    other = AgentConnection(socket.create_connection(("127.0.0.1", plain.port), timeout=10), "agent", timeout=10)
    other.hello()
    with pytest.raises(RknnError, match="this agent runs no vendor runtime library: start it with --vendor-lib"):
        other.request("load", kind="vendor", model=_model(3, 1.0))
    other.close()
