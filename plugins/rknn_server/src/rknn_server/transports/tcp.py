"""Agents reached over the network: listed in ``RKNN_DEVICES`` and in a devices file.

An entry is ``[id=]host:port`` (``id`` defaults to ``host:port``); ``RKNN_DEVICES`` holds entries
separated by commas or spaces, the file (``RKNN_DEVICES_FILE``, else ``~/.config/rknn/devices``) one
per line, ``#`` starting a comment.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from rknn_core.errors import RknnError


def devices_file() -> Path:
    return Path(os.environ.get("RKNN_DEVICES_FILE") or Path.home() / ".config" / "rknn" / "devices")


def parse(text: str, source: str) -> dict[str, tuple[str, int]]:
    """Entries of ``text`` as {id: (host, port)}; a malformed entry is an error naming ``source``."""
    found: dict[str, tuple[str, int]] = {}
    for line in text.splitlines():
        for entry in line.split("#", 1)[0].replace(",", " ").split():
            device_id, _, address = entry.rpartition("=")
            host, sep, port = address.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise RknnError(f"{source}: '{entry}' is not a device entry; write [id=]host:port, e.g. board1=192.168.1.20:7808")
            found[device_id or address] = (host.strip("[]"), int(port))
    return found


def configured() -> dict[str, tuple[str, int]]:
    """Every listed agent: the devices file first, then ``RKNN_DEVICES`` (which wins on an id in both)."""
    found: dict[str, tuple[str, int]] = {}
    path = devices_file()
    if path.is_file():
        found.update(parse(path.read_text(encoding="utf-8"), str(path)))
    found.update(parse(os.environ.get("RKNN_DEVICES", ""), "RKNN_DEVICES"))
    return found


def list_devices() -> list[str]:
    return list(configured())


def connect(device_id: str, timeout: float) -> tuple[socket.socket, str]:
    """A socket connected to the listed agent, and where it is."""
    host, port = configured()[device_id]
    try:
        return socket.create_connection((host, port), timeout=timeout), f"{host}:{port}"
    except OSError as exc:
        raise RknnError(f"device '{device_id}': no agent answers at {host}:{port} ({exc.strerror or exc}); start "
                        f"one there with `rknn serve --host <interface> --port {port}`") from None
