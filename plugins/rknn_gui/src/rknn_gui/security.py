"""Who may talk to the server: a random token (in the URL, a header or the cookie set from it), a
Host header naming the bound host (against DNS rebinding), and a loopback bind unless asked."""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from rknn_gui.errors import GuiError

COOKIE = "rknn_gui_token"
HEADER = b"x-rknn-token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def new_token() -> str:
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind_host(host: str, explicit: bool) -> None:
    """A non-loopback address is served only when the user named it (``--host``)."""
    if not is_loopback(host) and not explicit:
        raise GuiError(f"refusing to listen on '{host}': it is reachable from other machines; "
                       f"give --host {host} explicitly to do that")


def allowed_hosts(host: str) -> frozenset[str]:
    """Host header names accepted: the bound host, and every loopback name when it is loopback."""
    names = {host.strip("[]").lower()}
    if is_loopback(host):
        names.update(LOOPBACK_NAMES)
    return frozenset(names)


def _host_name(value: str) -> str:
    """``'127.0.0.1:8888'`` -> ``127.0.0.1``; ``'[::1]:80'`` -> ``::1``."""
    if value.startswith("["):
        return value[1:value.find("]")].lower() if "]" in value else value.lower()
    return value.rsplit(":", 1)[0].lower() if value.count(":") == 1 else value.lower()


class Guard:
    """ASGI middleware: refuses requests with a foreign Host header or without the token."""

    def __init__(self, app, token: str, host: str):
        self.app, self.token, self.hosts = app, token, allowed_hosts(host)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        host = _host_name(headers.get(b"host", b"").decode("latin-1"))
        if host not in self.hosts:
            return await _refuse(send, 403, f"host '{host}' is not served here (DNS rebinding protection); "
                                            f"open the URL rknn gui printed")
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        given = query or headers.get(HEADER, b"").decode("latin-1") or _cookie(headers)
        if not (given and hmac.compare_digest(given.encode(), self.token.encode())):
            return await _refuse(send, 403, "a valid token is needed: open the URL with ?token=... that rknn gui printed")
        if query:  # later requests of the page (scripts, fetches) carry the cookie
            send = _with_cookie(send, self.token)
        return await self.app(scope, receive, send)


def _cookie(headers: dict) -> str:
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
    except Exception:  # a malformed cookie header is simply no token
        return ""
    return cookie[COOKIE].value if COOKIE in cookie else ""


def _with_cookie(send, token: str):
    async def wrapped(message):
        if message["type"] == "http.response.start":
            value = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict".encode()
            message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", value)]}
        await send(message)

    return wrapped


async def _refuse(send, status: int, message: str) -> None:
    body = json.dumps({"error": f"E {message}"}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
