"""Faults: malformed frames are refused, an agent killed or stopped mid-inference gives -1 in time,
a client that leaves does not disturb the others, the agent listens only where it is told."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import zlib

import numpy as np
import pytest

from rknn.api import RKNN
from rknn_server import protocol
from rknn_server.client import AgentConnection


def _connect(agent) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", agent.port), timeout=10)
    sock.settimeout(10)
    return sock


def _greeted(agent) -> AgentConnection:
    connection = AgentConnection(_connect(agent), f"127.0.0.1:{agent.port}", timeout=10)
    connection.hello()
    return connection


def _refusal(sock: socket.socket) -> str:
    """The agent's last word on a broken frame; then it closes the connection."""
    reply = protocol.receive(sock, idle_timeout=10)
    assert reply["ok"] is False and reply["fatal"] is True
    try:
        assert sock.recv(1) == b""  # closed (or reset, when the agent left part of the frame unread)
    except ConnectionResetError:
        pass
    return reply["error"]


def test_messages_round_trip_arrays_and_bytes():
    message = {"op": "run", "feeds": {"x": np.arange(6, dtype=np.float32).reshape(2, 3)},
               "model": b"\x00\x01", "nested": [np.int8(-3), {"u": np.array([1, 2], np.uint8)}]}
    back = protocol.decode(protocol.encode(message))
    np.testing.assert_array_equal(back["feeds"]["x"], message["feeds"]["x"])
    assert back["feeds"]["x"].dtype == np.float32 and back["model"] == b"\x00\x01"
    assert back["nested"][0] == -3 and back["nested"][1]["u"].tolist() == [1, 2]
    payload = protocol.encode({"a": np.zeros(1, np.float32)})
    with pytest.raises(protocol.ProtocolError, match=r"blob 0 has a bad extent \[0, 4\]"):
        protocol.decode(payload[:-1])
    for bad in ({"__nd__": 0, "dtype": "O", "shape": [1]}, {"__nd__": 0, "dtype": "<f4", "shape": [-1]}):
        head = json.dumps({"a": bad, "blobs": [[0, 8]]}).encode()
        with pytest.raises(protocol.ProtocolError, match="is not allowed"):
            protocol.decode(protocol.LENGTH.pack(len(head)) + head + bytes(8))


def test_bad_checksum_truncated_oversized_and_foreign_frames_are_refused(start_agent):
    agent = start_agent("--emulate", "rk1808", "--max-frame", "4096")
    payload = protocol.encode({"op": "hello", "protocol": protocol.PROTOCOL_VERSION})

    with _connect(agent) as sock:
        sock.sendall(protocol.HEADER.pack(protocol.MAGIC, 1, 0, len(payload), zlib.crc32(payload) ^ 1) + payload)
        assert "checksum does not match" in _refusal(sock)
    with _connect(agent) as sock:
        sock.sendall(protocol.HEADER.pack(protocol.MAGIC, 1, 0, 5000, 0))
        assert "5000 bytes refused: larger than the limit of 4096 bytes" in _refusal(sock)
    with _connect(agent) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert "not an rknn-server frame" in _refusal(sock)
    with _connect(agent) as sock:
        sock.sendall(protocol.HEADER.pack(protocol.MAGIC, 99, 0, len(payload), zlib.crc32(payload)) + payload)
        assert "protocol version 99; this side speaks version 1" in _refusal(sock)
    with _connect(agent) as sock:  # a frame cut short: the client goes away in the middle of it
        sock.sendall(protocol.frame(payload)[:30])
        sock.shutdown(socket.SHUT_WR)
        assert "truncated frame" in _refusal(sock)

    connection = _greeted(agent)  # the agent still serves everyone else
    assert connection.device["device_id"] == agent.device_id and connection.device["protocol"] == 1
    assert connection.device["agent"] == "0.1.0" and connection.device["chip"] == "rk1808"
    connection.close()


def test_requests_before_the_handshake_and_another_protocol_version_are_refused(start_agent):
    agent = start_agent("--emulate", "rk1808")
    with _connect(agent) as sock:
        protocol.send(sock, {"op": "run", "handle": 1})
        assert protocol.receive(sock)["error"] == "the first request must be the handshake (hello)"
        protocol.send(sock, {"op": "hello", "protocol": 7})
        assert "the client speaks protocol version 7; this agent (rknn-server 0.1.0) speaks version 1" in \
            protocol.receive(sock)["error"]
        protocol.send(sock, {"op": "hello", "protocol": 1})
        assert protocol.receive(sock)["ok"] is True
        protocol.send(sock, {"op": "load", "model": b"RKNNOPEN" + b"\0" * 100})
        error = protocol.receive(sock)["error"]
        assert error.startswith("the sent model is truncated or has trailing bytes"), error


def test_the_agent_never_opens_a_path_the_client_names(start_agent, models):
    agent = start_agent("--emulate", "rk1808")
    connection = _greeted(agent)
    with pytest.raises(Exception, match="load needs the model file's bytes"):
        connection.request("load", model=models["float"])  # a path, not the model
    connection.close()


def test_an_agent_killed_mid_inference_gives_minus_one_in_time(models, start_agent, monkeypatch, capsys):
    agent = start_agent("--emulate", "rk1808", "--pace", "2000")  # 2000x the modelled time: seconds per inference
    monkeypatch.setenv("RKNN_DEVICES", agent.entry)
    rknn = RKNN()
    assert rknn.load_rknn(models["float"]) == 0 and rknn.init_runtime(target="rk1808") == 0
    threading.Timer(0.5, os.kill, (agent.proc.pid, signal.SIGKILL)).start()
    start = time.monotonic()
    assert rknn.inference([models["x"]], data_type="float32") is None
    assert time.monotonic() - start < 5
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("E ")][-1]
    assert error.startswith(f"E the device agent at 127.0.0.1:{agent.port} closed the connection during run "
                            f"(was it stopped or killed?)")
    assert rknn.inference([models["x"]], data_type="float32") is None  # later calls fail at once too
    rknn.release()


def stop_process(pid: int) -> None:
    """SIGSTOP ``pid`` and wait until it is stopped (kill returns before the process stops: it could still
    answer one request)."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] in ("T", "t"):
                return
        time.sleep(0.001)
    raise AssertionError(f"process {pid} did not stop")


def test_an_agent_that_stops_answering_times_out(models, start_agent, monkeypatch, capsys):
    agent = start_agent("--emulate", "rk1808")
    monkeypatch.setenv("RKNN_DEVICES", agent.entry)
    monkeypatch.setenv("RKNN_DEVICE_TIMEOUT", "1")
    rknn = RKNN()
    assert rknn.load_rknn(models["float"]) == 0 and rknn.init_runtime(target="rk1808") == 0
    stop_process(agent.proc.pid)
    start = time.monotonic()
    assert rknn.inference([models["x"]], data_type="float32") is None
    assert 0.9 < time.monotonic() - start < 4
    assert (f"E the device agent at 127.0.0.1:{agent.port} did not answer run within 1 s (RKNN_DEVICE_TIMEOUT)"
            in capsys.readouterr().err)
    rknn.release()


def test_a_client_that_leaves_mid_job_does_not_disturb_another(models, start_agent, monkeypatch):
    agent = start_agent("--emulate", "rk1808", "--pace", "300")
    monkeypatch.setenv("RKNN_DEVICES", agent.entry)
    with open(models["float"], "rb") as f:
        data = f.read()
    leaver = _greeted(agent)
    handle = leaver.request("load", model=data)["handle"]
    feeds = {"x": np.ascontiguousarray(models["x"].transpose(0, 3, 1, 2))}
    protocol.send(leaver.sock, {"op": "run", "handle": handle, "feeds": feeds})
    leaver.sock.close()  # gone without waiting for the answer
    stayer = RKNN()
    assert stayer.load_rknn(models["float"]) == 0 and stayer.init_runtime(target="rk1808") == 0
    for _ in range(2):
        np.testing.assert_array_equal(stayer.inference([models["x"]], data_type="float32")[0], models["float_ref"][0])
    stayer.release()
    assert agent.proc.poll() is None


def test_the_agent_listens_only_on_the_interface_it_is_told(start_agent):
    agent = start_agent("--emulate", "rk1808", "--host", "127.0.0.2")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", agent.port), timeout=2)
    with socket.create_connection(("127.0.0.2", agent.port), timeout=2) as sock:
        protocol.send(sock, {"op": "hello", "protocol": 1})
        assert protocol.receive(sock, idle_timeout=10)["device_id"] == agent.device_id
