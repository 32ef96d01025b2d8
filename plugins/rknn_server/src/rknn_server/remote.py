"""The PC-side runtime of ``init_runtime(target=chip)``: the model is sent to the device's agent,
which runs it; outputs, perf, memory and versions come back over the protocol."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np

from rknn_core import fileformat
from rknn_core.errors import RknnError
from rknn_core.model import RknnModel
from rknn_core.platforms import platform_families
from rknn_core.plugins import Registry
from rknn_server.client import AgentConnection, request_timeout
from rknn_server.devices import choose


def model_bytes(model: RknnModel) -> bytes:
    """The model as its .rknn file's bytes."""
    with tempfile.TemporaryDirectory(prefix="rknn-send-") as folder:
        path = os.path.join(folder, "model.rknn")
        fileformat.save(model, path)
        with open(path, "rb") as f:
            return f.read()


def connect(registry: Registry, device_id: str | None) -> AgentConnection:
    """A greeted connection to the chosen device's agent."""
    timeout = request_timeout()
    transport, chosen = choose(registry, device_id)
    sock, where = transport.connect(chosen, timeout)
    connection = AgentConnection(sock, where, timeout)
    connection.hello()
    return connection


class DeviceRuntime:
    """run / perf / memory / sdk_version on a connected device, for the core's Toolkit."""

    def __init__(self, model: RknnModel, registry: Registry, family: str, device_id: str | None = None,
                 perf_debug: bool = False, eval_mem: bool = False, async_mode: bool = False):
        self.model = model
        self.connection = connect(registry, device_id)
        device = self.connection.device
        chip_family = platform_families(registry).get(device.get("chip"), device.get("family"))
        if chip_family is not None and chip_family != family:
            self.connection.close()
            raise RknnError(f"init_runtime: device '{device.get('device_id')}' is a {device.get('chip')} (family "
                            f"{chip_family}), not a chip of the {family} family the target names")
        reply = self.connection.request("load", model=model_bytes(model), name=model.graph.name,
                                        perf_debug=perf_debug, eval_mem=eval_mem, async_mode=async_mode)
        self.handle = reply["handle"]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.connection.request("run", handle=self.handle, feeds=feeds)["outputs"]

    def perf(self, feeds: dict[str, np.ndarray] | None) -> dict[str, Any]:
        result = self.connection.request("perf", handle=self.handle, feeds=feeds)["perf"]
        if "layers" in result:  # JSON keys are strings; layer ids are integers
            result["layers"] = {int(k): v for k, v in result["layers"].items()}
        return result

    def memory(self) -> dict[str, Any]:
        return self.connection.request("memory", handle=self.handle)["memory"]

    def sdk_version(self) -> str:
        """The guide's block: ``RKNN VERSION:`` then the API and DRV lines."""
        reply = self.connection.request("version", handle=self.handle)
        return f"RKNN VERSION:\nRKNNAPI: API: {reply['api_version']}\nRKNNAPI: DRV: {reply['drv_version']}"

    def close(self) -> None:
        if not self.connection.closed:
            try:
                self.connection.request("release", handle=self.handle)
            except RknnError:
                pass
            self.connection.close()
