"""Boards reached through the adb server (the ``adb`` program's daemon on the PC), speaking its
smart-socket protocol on its local port: ``host:devices`` lists the boards, and
``host-serial:<id>:forward:tcp:0;tcp:<agent port>`` forwards a fresh local port to the agent on the
board. The server's address is ``ADB_SERVER_SOCKET`` (``tcp:host:port``, as adb reads it), else
``127.0.0.1:$ANDROID_ADB_SERVER_PORT`` (default 5037); the agent's port on the board is
``RKNN_AGENT_PORT`` (default 7808).
"""

from __future__ import annotations

import os
import socket

from rknn_core.errors import RknnError

DEFAULT_ADB_PORT = 5037
DEFAULT_AGENT_PORT = 7808


def server_address() -> tuple[str, int]:
    spec = os.environ.get("ADB_SERVER_SOCKET")
    if spec:
        kind, _, rest = spec.partition(":")
        host, _, port = rest.rpartition(":")
        if kind != "tcp" or not port.isdigit():
            raise RknnError(f"ADB_SERVER_SOCKET='{spec}' is not tcp:host:port")
        return host or "127.0.0.1", int(port)
    return "127.0.0.1", int(os.environ.get("ANDROID_ADB_SERVER_PORT", DEFAULT_ADB_PORT))


def agent_port() -> int:
    return int(os.environ.get("RKNN_AGENT_PORT", DEFAULT_AGENT_PORT))


def _read_exact(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise RknnError("the adb server closed the connection in the middle of an answer")
        data += chunk
    return data


def _status(sock: socket.socket, request: str) -> None:
    status = _read_exact(sock, 4)
    if status == b"FAIL":
        raise RknnError(f"adb server refused '{request}': {_read_string(sock)}")
    if status != b"OKAY":
        raise RknnError(f"adb server answered '{request}' with {status!r}, not OKAY/FAIL")


def _read_string(sock: socket.socket) -> str:
    length = _read_exact(sock, 4)
    try:
        size = int(length, 16)
    except ValueError:
        raise RknnError(f"adb server sent a bad length {length!r}") from None
    return _read_exact(sock, size).decode("utf-8", errors="replace")


def _open(request: str, timeout: float) -> socket.socket:
    """A connection to the adb server with ``request`` sent and its first OKAY read."""
    host, port = server_address()
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise RknnError(f"no adb server at {host}:{port} ({exc.strerror or exc}); start it with `adb start-server`") from None
    try:
        data = request.encode()
        sock.sendall(b"%04x" % len(data) + data)
        _status(sock, request)
    except (OSError, RknnError):
        sock.close()
        raise
    return sock


def devices(timeout: float = 2.0) -> list[str]:
    """Serials of the boards the adb server has in the ``device`` state."""
    with _open("host:devices", timeout) as sock:
        text = _read_string(sock)
    return [fields[0] for fields in (line.split() for line in text.splitlines()) if len(fields) >= 2 and fields[1] == "device"]


def list_devices() -> list[str]:
    """``devices()``, or none when no adb server runs (list_devices must work without adb)."""
    try:
        return devices()
    except RknnError:
        return []


def forward(serial: str, remote_port: int, timeout: float) -> int:
    """Forward a fresh local port to ``remote_port`` on the board; returns the local port."""
    request = f"host-serial:{serial}:forward:tcp:0;tcp:{remote_port}"
    with _open(request, timeout) as sock:
        _status(sock, request)  # the forward itself (the first OKAY accepted the device)
        port = _read_string(sock)
    if not port.isdigit():
        raise RknnError(f"adb server did not say which local port it forwards to board '{serial}' (got {port!r}); "
                        f"an adb of version 1.0.36 or later is needed")
    return int(port)


def connect(device_id: str, timeout: float) -> tuple[socket.socket, str]:
    """A socket to the agent on board ``device_id`` through an adb forward, and where it is."""
    remote = agent_port()
    local = forward(device_id, remote, timeout)
    where = f"adb device {device_id} (127.0.0.1:{local} -> board port {remote})"
    try:
        return socket.create_connection(("127.0.0.1", local), timeout=timeout), where
    except OSError as exc:
        raise RknnError(f"{where}: cannot connect ({exc.strerror or exc}); is rknn-server running on the board?") from None
