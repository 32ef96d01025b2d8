"""Rockchip boards on USB (vendor id 0x2207), found with pyusb: the ``ntb`` devices of list_devices.

The vendor's NTB link protocol is not public, so this transport lists those devices but does not run
models over USB; a board runs them through its agent over adb or tcp. pyusb needs libusb
(``apt-get install libusb-1.0-0``).
"""

from __future__ import annotations

import socket

from rknn_core.errors import RknnError

ROCKCHIP_VENDOR_ID = 0x2207


def _usb_core():
    try:
        import usb.core
    except ImportError:
        raise RknnError("listing USB (ntb) devices needs pyusb: pip install pyusb (and apt-get install "
                        "libusb-1.0-0)") from None
    return usb.core


def _serial(device) -> str:
    """The device's serial number, or bus-address when it cannot be read (permissions)."""
    import usb.util

    try:
        if device.iSerialNumber:
            return usb.util.get_string(device, device.iSerialNumber)
    except (ValueError, NotImplementedError, OSError, usb.core.USBError):
        pass
    return f"usb-{device.bus}-{device.address}"


def list_devices() -> list[str]:
    """Serials of the connected Rockchip USB devices."""
    core = _usb_core()
    try:
        found = core.find(find_all=True, idVendor=ROCKCHIP_VENDOR_ID)
        return [_serial(d) for d in found]
    except core.NoBackendError:
        raise RknnError("listing USB (ntb) devices needs libusb, which pyusb cannot find: apt-get install "
                        "libusb-1.0-0") from None


def connect(device_id: str, timeout: float) -> tuple[socket.socket, str]:
    raise RknnError(f"device '{device_id}' is connected over USB (ntb mode), whose link protocol this toolkit "
                    f"does not speak; switch the board to adb mode or list its agent in RKNN_DEVICES (docs/devices.md)")
