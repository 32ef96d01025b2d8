"""The agent's wire protocol: length-prefixed, checksummed, versioned frames carrying one message each.

A frame is a 16-byte header and a payload::

    magic "RKNF" | u16 protocol version | u16 flags (0) | u32 payload length | u32 CRC-32 of the payload

A payload is a message: ``u32 length | JSON object | binary blobs``. Arrays and byte strings travel as
blobs; the JSON names them (``{"__nd__": i, "dtype": "<f4", "shape": [1, 3]}``, ``{"__bytes__": i}``)
and lists each blob's ``[offset, length]`` under ``"blobs"``. A frame whose header is wrong, whose
payload is longer than the receiver accepts, cut short or fails its checksum is refused
(:class:`ProtocolError`) and the connection is closed: after such a frame the stream cannot be trusted.
"""

from __future__ import annotations

import json
import socket
import struct
import zlib
from typing import Any

import numpy as np

MAGIC = b"RKNF"
PROTOCOL_VERSION = 1
HEADER = struct.Struct("<4sHHII")
LENGTH = struct.Struct("<I")
DEFAULT_MAX_FRAME = 256 * 1024 * 1024  # the largest payload accepted unless told otherwise
FRAME_TIMEOUT = 30.0  # seconds a started frame may take to arrive completely
_ARRAY_KINDS = "biuf"  # bool, integers, floats: never object or string arrays


class ProtocolError(Exception):
    """A frame or message that breaks the protocol; the connection must be closed."""


class ConnectionClosed(ProtocolError):
    """The peer closed the connection between frames."""


def encode(message: dict[str, Any]) -> bytes:
    """One message (JSON values, numpy arrays, bytes) as a payload."""
    blobs: list[bytes] = []

    def pack(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in _ARRAY_KINDS:
                raise ProtocolError(f"cannot send an array of dtype {value.dtype}")
            blobs.append(np.ascontiguousarray(value).tobytes())
            return {"__nd__": len(blobs) - 1, "dtype": value.dtype.str, "shape": list(value.shape)}
        if isinstance(value, (bytes, bytearray, memoryview)):
            blobs.append(bytes(value))
            return {"__bytes__": len(blobs) - 1}
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, dict):
            return {str(k): pack(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [pack(v) for v in value]
        return value

    head = pack(message)
    offsets, at = [], 0
    for blob in blobs:
        offsets.append([at, len(blob)])
        at += len(blob)
    text = json.dumps({**head, "blobs": offsets}, separators=(",", ":")).encode("utf-8")
    return LENGTH.pack(len(text)) + text + b"".join(blobs)


def decode(payload: bytes) -> dict[str, Any]:
    """The message in a payload; any inconsistency is a :class:`ProtocolError`."""
    if len(payload) < LENGTH.size:
        raise ProtocolError("message too short for its JSON length")
    (size,) = LENGTH.unpack_from(payload)
    start = LENGTH.size + size
    if start > len(payload):
        raise ProtocolError(f"message JSON length {size} exceeds the payload ({len(payload)} bytes)")
    try:
        head = json.loads(payload[LENGTH.size:start].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"message JSON is malformed: {exc}") from None
    if not isinstance(head, dict) or not isinstance(head.get("blobs", []), list):
        raise ProtocolError("a message must be a JSON object with a list of blobs")
    blobs = head.pop("blobs", [])
    data = memoryview(payload)[start:]

    def blob(index: Any) -> memoryview:
        if not isinstance(index, int) or not 0 <= index < len(blobs):
            raise ProtocolError(f"message names blob {index!r}, which it does not carry")
        entry = blobs[index]
        if (not isinstance(entry, list) or len(entry) != 2 or not all(isinstance(v, int) and v >= 0 for v in entry)
                or entry[0] + entry[1] > len(data)):
            raise ProtocolError(f"blob {index} has a bad extent {entry!r}")
        return data[entry[0]:entry[0] + entry[1]]

    def unpack(value: Any) -> Any:
        if isinstance(value, dict) and "__nd__" in value:
            return _array(blob(value["__nd__"]), value.get("dtype"), value.get("shape"))
        if isinstance(value, dict) and "__bytes__" in value:
            return bytes(blob(value["__bytes__"]))
        if isinstance(value, dict):
            return {k: unpack(v) for k, v in value.items()}
        if isinstance(value, list):
            return [unpack(v) for v in value]
        return value

    return unpack(head)


def _array(raw: memoryview, dtype: Any, shape: Any) -> np.ndarray:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ProtocolError(f"array dtype {dtype!r} is not a numpy dtype") from None
    if dt.kind not in _ARRAY_KINDS or not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ProtocolError(f"array dtype {dtype!r} / shape {shape!r} is not allowed")
    if int(np.prod(shape, dtype=np.int64)) * dt.itemsize != len(raw):
        raise ProtocolError(f"array of shape {shape} and dtype {dt} does not match its {len(raw)} bytes")
    return np.frombuffer(raw, dtype=dt).reshape(shape).copy()


def frame(payload: bytes) -> bytes:
    """The frame carrying ``payload``."""
    return HEADER.pack(MAGIC, PROTOCOL_VERSION, 0, len(payload), zlib.crc32(payload)) + payload


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(frame(encode(message)))


def _read(sock: socket.socket, count: int, what: str) -> bytes:
    chunks, got = [], 0
    while got < count:
        chunk = sock.recv(min(count - got, 1 << 20))
        if not chunk:
            raise ProtocolError(f"truncated frame: the connection closed after {got} of the {count} bytes of its {what}")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def receive(sock: socket.socket, max_frame: int = DEFAULT_MAX_FRAME, frame_timeout: float = FRAME_TIMEOUT,
            idle_timeout: float | None = None) -> dict[str, Any]:
    """The next message. Waits up to ``idle_timeout`` (None: forever) for a frame to start, then up to
    ``frame_timeout`` for the rest of it (``socket.timeout`` when either passes)."""
    sock.settimeout(idle_timeout)
    first = sock.recv(1)
    if not first:
        raise ConnectionClosed("the connection was closed")
    sock.settimeout(frame_timeout if idle_timeout is None else max(frame_timeout, idle_timeout))
    try:
        head = first + _read(sock, HEADER.size - 1, "header")
        magic, version, _flags, length, crc = HEADER.unpack(head)
        if magic != MAGIC:
            raise ProtocolError(f"not an rknn-server frame (magic {magic!r})")
        if version != PROTOCOL_VERSION:
            raise ProtocolError(f"frame of protocol version {version}; this side speaks version {PROTOCOL_VERSION}")
        if length > max_frame:
            raise ProtocolError(f"frame of {length} bytes refused: larger than the limit of {max_frame} bytes")
        payload = _read(sock, length, "payload")
    finally:
        sock.settimeout(idle_timeout)
    if zlib.crc32(payload) != crc:
        raise ProtocolError("frame refused: its checksum does not match its payload")
    return decode(payload)
