"""Which devices the installed transports reach, and choosing one by ``device_id``."""

from __future__ import annotations

from rknn_core.devices import reachable
from rknn_core.errors import RknnError
from rknn_core.plugins import Registry
from rknn_core.records import Transport


def _listing(found: dict[str, list[str]]) -> str:
    return "; ".join(f"{name}: {', '.join(ids) or 'none'}" for name, ids in found.items()) or "no transport plugin"


def choose(registry: Registry, device_id: str | None) -> tuple[Transport, str]:
    """The transport and id of the device to use: ``device_id``, or the only device found."""
    found = reachable(registry)
    transports = registry.table("transports")
    places = [(name, i) for name, ids in found.items() for i in ids if device_id is None or i == device_id]
    if len(places) == 1:
        return transports[places[0][0]], places[0][1]
    if not places and device_id is None:
        raise RknnError(f"init_runtime: no device found ({_listing(found)}); connect a board running rknn-server, "
                        f"or start an emulated one with `rknn serve --emulate rk1808` and list it in RKNN_DEVICES "
                        f"(docs/devices.md)")
    if not places:
        raise RknnError(f"init_runtime: device '{device_id}' not found; devices found: {_listing(found)}")
    if device_id is None:
        raise RknnError(f"init_runtime: several devices found ({_listing(found)}); choose one with device_id")
    raise RknnError(f"init_runtime: device '{device_id}' is reachable through several transports "
                    f"({', '.join(n for n, _ in places)}); list it under one only")
