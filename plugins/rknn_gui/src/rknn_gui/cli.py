"""``rknn gui``: serve the workbench for the current folder on 127.0.0.1 with a fresh access token."""

from __future__ import annotations

import argparse
import os
import sys
import webbrowser
from collections.abc import Sequence

from rknn_gui.errors import GuiError
from rknn_gui.security import check_bind_host, new_token

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8808


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rknn gui", description=(
        "The visual workbench: every toolkit step from a browser, with the model graph, modelled layer times and "
        "quantization errors. Files are read and written only inside the folder it is started in."))
    parser.add_argument("--host", default=None, help=f"address to listen on (default {DEFAULT_HOST}; another "
                                                     "address is reachable from other machines)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free one)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser; only print the URL")
    return parser


def url_of(host: str, port: int, token: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?token={token}"


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until interrupted; returns the exit code."""
    args = _parser().parse_args(argv)
    host = args.host or DEFAULT_HOST
    try:
        check_bind_host(host, explicit=args.host is not None)
    except GuiError as exc:
        print(f"E {exc}", file=sys.stderr)
        return 2
    import socket

    import uvicorn

    from rknn_gui.app import create_app
    from rknn_gui.workspace import Workspace

    token = new_token()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, args.port))
    except OSError as exc:
        print(f"E cannot listen on {host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    app = create_app(Workspace(os.getcwd()), token, host)
    url = url_of(host, port, token)
    print(f"rknn gui: workspace {os.getcwd()}\nopen {url}", flush=True)
    if not args.no_browser:
        webbrowser.open(url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
