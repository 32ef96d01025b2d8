"""The adb transport against a stand-in adb server on loopback (the smart-socket protocol: host:devices,
host-serial:<id>:forward:tcp:0;tcp:<port>), forwarding to an emulated agent as adbd would to a board."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

from rknn.api import RKNN
from rknn_core.errors import RknnError
from rknn_server.transports import adb


class StandInAdbServer:
    """Answers host:devices with ``boards`` ({serial: agent port or None for an offline board}) and sets up
    forwards from a fresh loopback port to the board's agent; ``requests`` records what it was asked."""

    def __init__(self, boards: dict[str, int | None]):
        self.boards, self.requests = boards, []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _reply(conn: socket.socket, text: str, status: bytes = b"OKAY") -> None:
        data = text.encode()
        conn.sendall(status + b"%04x" % len(data) + data)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            size = int(conn.recv(4), 16)
            request = conn.recv(size).decode()
            self.requests.append(request)
            if request == "host:devices":
                listing = "".join(f"{s}\t{'device' if p else 'offline'}\n" for s, p in self.boards.items())
                self._reply(conn, listing)
                return
            serial, _, rest = request.removeprefix("host-serial:").partition(":forward:")
            if serial not in self.boards or not rest.startswith("tcp:0;tcp:"):
                self._reply(conn, f"device '{serial}' not found", b"FAIL")
                return
            conn.sendall(b"OKAY")  # the transport to the device is chosen
            listener = socket.create_server(("127.0.0.1", 0))
            threading.Thread(target=self._forward, args=(listener, self.boards[serial]), daemon=True).start()
            self._reply(conn, str(listener.getsockname()[1]))

    def _forward(self, listener: socket.socket, board_port: int) -> None:
        with listener:
            while True:
                local, _ = listener.accept()
                remote = socket.create_connection(("127.0.0.1", board_port))
                for a, b in ((local, remote), (remote, local)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def adb_server(monkeypatch):
    servers = []

    def start(boards: dict[str, int | None]) -> StandInAdbServer:
        server = StandInAdbServer(boards)
        servers.append(server)
        monkeypatch.setenv("ADB_SERVER_SOCKET", f"tcp:127.0.0.1:{server.port}")
        return server

    yield start
    for server in servers:
        server.close()


def test_vendor_script_through_adb(models, start_agent, adb_server, monkeypatch, capsys):
    agent = start_agent("--emulate", "rk1808", "--device-id", "515e9b401c060c0b")
    server = adb_server({"515e9b401c060c0b": agent.port, "XGOR2N4EZR": None})
    monkeypatch.setenv("RKNN_AGENT_PORT", str(agent.port))  # the agent's port "on the board"
    rknn = RKNN()
    assert rknn.list_devices() == (["515e9b401c060c0b"], [])  # the offline board is not listed
    assert "all device(s) with adb mode:\n['515e9b401c060c0b']" in capsys.readouterr().out
    assert rknn.load_rknn(models["u8"]) == 0
    assert rknn.init_runtime(target="rk1808", device_id="515e9b401c060c0b", perf_debug=True) == 0
    assert f"host-serial:515e9b401c060c0b:forward:tcp:0;tcp:{agent.port}" in server.requests
    np.testing.assert_array_equal(rknn.inference([models["x"]], data_type="float32")[0], models["u8_ref"][0])
    perf = rknn.eval_perf([models["x"]], is_print=False)
    assert perf["chip"] == "rk1808" and perf["layers"] and perf["total_time"] > 0
    rknn.release()


def test_adb_errors_are_clear(adb_server, monkeypatch):
    monkeypatch.setenv("ADB_SERVER_SOCKET", "tcp:127.0.0.1:9")
    assert adb.list_devices() == []  # no adb server: no adb devices, no error
    with pytest.raises(RknnError, match=r"no adb server at 127.0.0.1:9 .*adb start-server"):
        adb.devices()
    adb_server({"board": 1})
    with pytest.raises(RknnError, match=r"adb server refused 'host-serial:other:forward:tcp:0;tcp:7808': device 'other' not found"):
        adb.forward("other", 7808, timeout=5)
    monkeypatch.setenv("ADB_SERVER_SOCKET", "unix:/tmp/adb")
    with pytest.raises(RknnError, match="ADB_SERVER_SOCKET='unix:/tmp/adb' is not tcp:host:port"):
        adb.server_address()
