"""Registers the transports (tcp, adb, ntb) and the device targets that run models on a connected
device's agent (init_runtime(target=chip, device_id=...))."""

from functools import partial

from rknn_core.hookspecs import hookimpl
from rknn_core.records import Target, Transport

RKNN_PLUGIN_API = (1, 1)  # the rknn-core plugin API versions this plugin works with

# the Rockchip chips whose boards run the agent, by family (the chip plugins declare the same families)
DEVICE_FAMILIES = {"rk1808": ("rk1806", "rk1808", "rk3399pro"), "rv1126": ("rv1109", "rv1126")}


def _device_runtime(family, model, registry, device_id=None, **options):
    from rknn_server.remote import DeviceRuntime

    return DeviceRuntime(model, registry, family, device_id, **options)


def _transport(module):
    def list_devices():
        from importlib import import_module

        return import_module(f"rknn_server.transports.{module}").list_devices()

    def connect(device_id, timeout):
        from importlib import import_module

        return import_module(f"rknn_server.transports.{module}").connect(device_id, timeout)

    return list_devices, connect


@hookimpl
def rknn_targets():
    return [Target(f"{family}-device", family, chips, partial(_device_runtime, family),
                   doc=f"A connected {'/'.join(chips)} board (or an emulated one) running rknn-server")
            for family, chips in DEVICE_FAMILIES.items()]


@hookimpl
def rknn_transports():
    docs = {"tcp": "agents listed in RKNN_DEVICES or ~/.config/rknn/devices, reached over TCP",
            "adb": "boards the adb server lists, reached through an adb port forward",
            "usb": "Rockchip USB devices (vendor id 0x2207) listed with pyusb: list_devices' ntb devices"}
    names = {"tcp": "tcp", "adb": "adb", "usb": "ntb"}
    records = []
    for module, name in names.items():
        list_devices, connect = _transport(module)
        records.append(Transport(name, connect, list_devices, doc=docs[module]))
    return records
