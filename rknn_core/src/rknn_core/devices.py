"""The devices the installed transport plugins reach (``RKNN.list_devices``, device choice)."""

from __future__ import annotations

import logging

from rknn_core.errors import RknnError
from rknn_core.plugins import Registry

log = logging.getLogger("rknn")


def reachable(registry: Registry) -> dict[str, list[str]]:
    """{transport name: device ids}, ``adb`` and ``ntb`` always present; a transport that cannot list
    (no adb server, no libusb) says why in a ``W`` line and lists none."""
    transports = registry.table("transports")
    if not transports:
        log.warning("no device transport plugin is installed; only the simulator is available "
                    "(pip install plugins/rknn_server)")
    found: dict[str, list[str]] = {"adb": [], "ntb": []}
    for name, transport in sorted(transports.items()):
        try:
            found[name] = [str(i) for i in transport.list_devices()]
        except RknnError as exc:
            log.warning("list_devices (%s): %s", name, exc)
    return found
