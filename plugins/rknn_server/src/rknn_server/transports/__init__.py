"""How the PC reaches an agent: ``tcp`` (listed addresses), ``adb`` (a port forward through the adb
server) and ``ntb`` (Rockchip USB devices, listed with pyusb). Each module has ``list_devices()`` and
``connect(device_id, timeout)`` returning a connected socket; plugin.py registers them as Transports."""
