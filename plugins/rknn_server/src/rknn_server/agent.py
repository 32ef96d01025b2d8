"""The device agent process (``rknn-server`` / ``rknn serve``): listens on one interface and port and
serves each client on its own thread; one scheduler runs the NPU work of all of them.

On a board it runs models with this package's runtime (the core's kernels) and measures their times;
``--emulate rk1808`` makes it an emulated device of that chip on the PC, whose clock is the chip's
performance model (rknn_targets.npu); ``--vendor-lib`` adds the board vendor's runtime library for
models the vendor's toolkit built.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Sequence
from typing import Any

from rknn_core.errors import RknnError
from rknn_core.platforms import platform_families, targets_for
from rknn_core.plugin_list import core_version
from rknn_core.plugins import default_registry
from rknn_server import __version__, protocol
from rknn_server.scheduler import Scheduler, Trace
from rknn_server.session import Session
from rknn_server.vendor import load_library

log = logging.getLogger("rknn.server")
DEFAULT_PORT = 7808  # the port the agent listens on, and the one adb forwards to on a board


class Agent:
    """The agent's state shared by its sessions."""

    def __init__(self, chip_name: str | None, device_id: str, pace: float = 0.0, trace: str | None = None,
                 max_frame: int = protocol.DEFAULT_MAX_FRAME, vendor_lib: str | None = None):
        self.registry = default_registry()
        self.chip_name, self.chip = (chip_name.lower(), _chip(chip_name.lower(), self.registry)) if chip_name else (None, None)
        self.device_id, self.max_frame, self.vendor_lib = device_id, max_frame, vendor_lib
        self._library = None
        self.workdir = tempfile.mkdtemp(prefix="rknn-server-")  # the agent's own files; clients name none
        self.scheduler = Scheduler(Trace(trace, device_id), pace)

    def describe(self) -> dict:
        """The handshake's answer: versions and what this device is."""
        family = platform_families(self.registry).get(self.chip_name) if self.chip_name else None
        return {"protocol": protocol.PROTOCOL_VERSION, "agent": __version__, "core": core_version(),
                "device_id": self.device_id, "chip": self.chip_name, "family": family,
                "emulated": self.chip is not None, "vendor_runtime": self.vendor_lib is not None}

    def versions(self) -> dict:
        """get_sdk_version's API and driver lines for models run by this package's runtime."""
        driver = f"emulated {self.chip_name} NPU (performance model)" if self.chip else "CPU (the core's kernels)"
        return {"api_version": f"{__version__} (rknn-server, rknn-core {core_version()})",
                "drv_version": f"{__version__} ({driver})"}

    def vendor_library(self) -> Any:
        if self.vendor_lib is None:
            raise RknnError("this agent runs no vendor runtime library: start it with --vendor-lib PATH "
                            "(librknn_runtime.so on the board)")
        if self._library is None:
            self._library = load_library(self.vendor_lib)
        return self._library


def _chip(name: str, registry: Any) -> Any:
    for target in targets_for(name, registry):
        if target.chip is not None:
            return target.chip
    known = sorted(p for p in platform_families(registry) if any(t.chip for t in targets_for(p, registry)))
    raise RknnError(f"cannot emulate '{name}': no installed target plugin models it (modelled chips: "
                    f"{', '.join(known) or 'none'}; pip install plugins/targets/rk18xx or plugins/targets/rv11xx)")


def serve(agent: Agent, host: str, port: int, ready: Any = None) -> None:
    """Accept clients on ``host:port`` forever, each on its own thread. ``ready(address)`` is called once
    listening (the address has the port chosen when ``port`` is 0)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((host, port))
        server.listen(16)
        if ready is not None:
            ready(server.getsockname()[:2])
        while True:
            conn, peer = server.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = f"{peer[0]}:{peer[1]}"
            threading.Thread(target=Session(agent, conn, client).serve, name=f"client {client}", daemon=True).start()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rknn serve", description="The rknn device agent: serves models sent by "
                                "init_runtime(target=chip) over tcp or an adb forward (docs/devices.md).")
    p.add_argument("--host", default="127.0.0.1", help="the one interface to listen on (default 127.0.0.1; "
                   "0.0.0.0 serves every interface)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--emulate", metavar="CHIP", help="be an emulated device of this chip (e.g. rk1808): its "
                   "times are the chip's performance model; without it, run on this machine as a board")
    p.add_argument("--device-id", help="the id this device reports (default: the chip and port, or the host name)")
    p.add_argument("--pace", type=float, default=0.0, help="emulated device: take PACE x the modelled time per "
                   "segment in wall time (1 = real time; default 0: as fast as possible)")
    p.add_argument("--trace", default=os.environ.get("RKNN_TRACE"), help="write a Chrome trace of the NPU "
                   "schedule to this file (default: $RKNN_TRACE)")
    p.add_argument("--max-frame", type=int, default=protocol.DEFAULT_MAX_FRAME, help="largest request in bytes")
    p.add_argument("--vendor-lib", help="the board vendor's runtime library (librknn_runtime.so) for vendor-built models")
    p.add_argument("-v", "--verbose", action="store_true", help="log every client and protocol error")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``rknn-server`` / ``rknn serve``: prints ``rknn-server listening on HOST:PORT`` once ready."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname).1s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        agent = Agent(args.emulate, args.device_id or "", args.pace, args.trace, args.max_frame, args.vendor_lib)
    except RknnError as exc:
        print(f"E {exc}", file=sys.stderr)
        return 1

    def ready(address: tuple) -> None:
        if not agent.device_id:  # named after the chip and the port actually bound
            agent.device_id = f"{args.emulate.lower()}-emu-{address[1]}" if args.emulate else socket.gethostname()
            agent.scheduler.trace.device = agent.device_id
        print(f"rknn-server {__version__} listening on {address[0]}:{address[1]} as device '{agent.device_id}'"
              + (f" (emulated {agent.chip_name})" if agent.chip else ""), flush=True)

    try:
        serve(agent, args.host, args.port, ready)
    except OSError as exc:
        print(f"E rknn-server cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
