"""The PC side of the protocol: one connection to an agent, each request answered within a timeout."""

from __future__ import annotations

import os
import socket
from typing import Any

from rknn_core.errors import RknnError
from rknn_server import __version__, protocol

DEFAULT_TIMEOUT = 60.0  # seconds an agent may take to answer one request (RKNN_DEVICE_TIMEOUT)


def request_timeout() -> float:
    """``RKNN_DEVICE_TIMEOUT`` in seconds, else the default."""
    text = os.environ.get("RKNN_DEVICE_TIMEOUT")
    if text is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise RknnError(f"RKNN_DEVICE_TIMEOUT='{text}' must be a positive number of seconds")
    return value


class AgentConnection:
    """A connected agent: ``hello`` first (protocol and agent versions), then ``request``."""

    def __init__(self, sock: socket.socket, where: str, timeout: float | None = None):
        self.sock, self.where = sock, where
        self.timeout = request_timeout() if timeout is None else timeout
        self.device: dict[str, Any] = {}

    def hello(self) -> dict[str, Any]:
        self.device = self.request("hello", protocol=protocol.PROTOCOL_VERSION, client=f"rknn-server {__version__}")
        return self.device

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """The agent's answer to one request; a refusal, a closed connection or no answer within the
        timeout is an :class:`RknnError` saying which."""
        try:
            protocol.send(self.sock, {"op": op, **fields})
            reply = protocol.receive(self.sock, idle_timeout=self.timeout)
        except TimeoutError:
            self.close()
            raise RknnError(f"the device agent at {self.where} did not answer {op} within {self.timeout:g} s "
                            f"(RKNN_DEVICE_TIMEOUT); the connection is closed") from None
        except (protocol.ProtocolError, OSError) as exc:
            self.close()
            raise RknnError(f"the device agent at {self.where} closed the connection during {op} (was it stopped "
                            f"or killed?): {exc}") from None
        if not reply.get("ok"):
            if reply.get("fatal"):
                self.close()
            raise RknnError(f"device {self.device.get('device_id', self.where)}: {reply.get('error', 'refused')}")
        return reply

    def close(self) -> None:
        if self.sock is None:
            return
        try:
            self.sock.settimeout(1.0)
            protocol.send(self.sock, {"op": "bye"})
        except OSError:
            pass
        self.sock.close()
        self.sock = None

    @property
    def closed(self) -> bool:
        return self.sock is None
