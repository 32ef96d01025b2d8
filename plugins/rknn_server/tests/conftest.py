"""Agents as real subprocesses on loopback (``rknn serve``), always killed in teardown, and small models."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from rknn.api import RKNN
from rknn_core.testing import make_model, save_model

START_TIMEOUT = 30.0


class AgentProcess:
    """A running agent: ``port``, ``device_id``, ``entry`` (its RKNN_DEVICES entry)."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None):
        command = [sys.executable, "-m", "rknn_core.cli", "serve", "--port", "0", *args]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT)
        line = self.proc.stdout.readline() if ready else ""
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"the agent did not start: {line!r} {self.proc.stderr.read()!r}")
        address = line.split(" on ", 1)[1].split()[0]
        self.port = int(address.rsplit(":", 1)[1])
        self.device_id = line.split("as device '", 1)[1].split("'", 1)[0]
        self.entry = f"{self.device_id}=127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()


@pytest.fixture
def start_agent() -> Iterator[Callable[..., AgentProcess]]:
    """``start_agent('--emulate', 'rk1808', ...)`` starts one; every one started is killed at the end."""
    started: list[AgentProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> AgentProcess:
        agent = AgentProcess(list(args), env)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        if agent.proc.poll() is None:
            os.kill(agent.proc.pid, 18)  # SIGCONT, in case a test stopped it
        agent.stop()


@pytest.fixture(autouse=True)
def no_outside_devices(monkeypatch, tmp_path):
    """Only the devices a test names: no devices file, no adb server of this machine."""
    monkeypatch.setenv("RKNN_DEVICES", "")
    monkeypatch.setenv("RKNN_DEVICES_FILE", str(tmp_path / "no-devices-file"))
    monkeypatch.setenv("ADB_SERVER_SOCKET", "tcp:127.0.0.1:9")  # discard port: nothing listens


def conv_model(folder: str, seed: int = 0, layers: int = 4) -> tuple[str, np.ndarray]:
    """An ONNX Conv/Relu chain (NCHW 1x3x16x16) and an input for it."""
    from onnx import helper

    rng = np.random.default_rng(seed)
    nodes, inits, prev, channels = [], {}, "x", 3
    for i in range(layers):
        inits[f"w{i}"] = (rng.standard_normal((8, channels, 3, 3)) * 0.3).astype(np.float32)
        nodes += [helper.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        prev, channels = f"r{i}", 8
    nodes.append(helper.make_node("Sigmoid", [prev], ["y"]))
    x = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
    path = save_model(make_model(nodes, {"x": x}, ["y"], inits), folder)
    return path, x


def build_rknn(onnx_path: str, out: str, quantize_with: np.ndarray | None = None) -> str:
    """The ONNX model built (float, or u8 calibrated on one sample) and exported to ``out``."""
    rknn = RKNN()
    assert rknn.load_onnx(onnx_path) == 0
    if quantize_with is None:
        assert rknn.build(do_quantization=False) == 0
    else:
        sample = os.path.join(os.path.dirname(out), "sample.npy")
        np.save(sample, quantize_with.transpose(0, 2, 3, 1)[0])
        dataset = os.path.join(os.path.dirname(out), "dataset.txt")
        with open(dataset, "w") as f:
            f.write("sample.npy\n")
        assert rknn.build(do_quantization=True, dataset=dataset) == 0
    assert rknn.export_rknn(out) == 0
    rknn.release()
    return out


def simulate(rknn_path: str, x: np.ndarray) -> list[np.ndarray]:
    """The PC simulator's outputs for the NHWC input ``x``."""
    rknn = RKNN()
    assert rknn.load_rknn(rknn_path) == 0 and rknn.init_runtime() == 0
    outputs = rknn.inference([x], data_type="float32")
    rknn.release()
    return outputs


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict:
    """A float and a u8 model of the same Conv chain, their NHWC input, and the simulator's outputs."""
    folder = tmp_path_factory.mktemp("models")
    path, x = conv_model(str(folder))
    nhwc = x.transpose(0, 2, 3, 1)
    float_model = build_rknn(path, str(folder / "float.rknn"))
    u8_model = build_rknn(path, str(folder / "u8.rknn"), quantize_with=x)
    return {"float": float_model, "u8": u8_model, "x": nhwc,
            "float_ref": simulate(float_model, nhwc), "u8_ref": simulate(u8_model, nhwc)}


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)
