"""The usb (ntb) transport: Rockchip devices through pyusb, and clear messages without pyusb or libusb."""

from __future__ import annotations

import sys

import pytest

from rknn.api import RKNN
from rknn_core.errors import RknnError
from rknn_server.transports import usb


def _libusb_found() -> bool:
    import usb.core

    try:
        usb.core.find()
    except usb.core.NoBackendError:
        return False
    return True


def test_listing_without_libusb_says_what_to_install(capsys):
    pytest.importorskip("usb")
    if _libusb_found():
        assert all(isinstance(serial, str) for serial in usb.list_devices())  # whatever Rockchip devices are here
        return
    with pytest.raises(RknnError, match="needs libusb, which pyusb cannot find: apt-get install libusb-1.0-0"):
        usb.list_devices()
    assert RKNN().list_devices() == ([], [])  # the other transports still list; a W line says why
    assert "W list_devices (ntb): listing USB (ntb) devices needs libusb" in capsys.readouterr().err


def test_listing_without_pyusb_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "usb", None)
    monkeypatch.setitem(sys.modules, "usb.core", None)
    with pytest.raises(RknnError, match=r"needs pyusb: pip install pyusb \(and apt-get install libusb-1.0-0\)"):
        usb.list_devices()


def test_an_ntb_device_cannot_run_models_and_says_how_to_reach_it():
    with pytest.raises(RknnError, match="connected over USB \\(ntb mode\\).*adb mode or list its agent in RKNN_DEVICES"):
        usb.connect("TB-RK1808S0", timeout=1)
